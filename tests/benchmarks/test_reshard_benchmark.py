"""The reshard benchmark measures what it says: shards as webdataset writes them (a pax
header on every member, 20-100 KB JPEGs) and in curate's normalised form, and methods that all
copy the same kept samples (the verbatim ones the same bytes as the raw ranges)."""

import mmap
import tarfile

import numpy as np

from benchmarks.reshard import (
    mapped_ranges,
    new_path,
    per_sample,
    raw_ranges,
    sample_ranges,
    settle,
    store_layout,
    write_curate_shards,
    write_webdataset_shards,
)
from shards.tarindex import index_shard
from shards.tario import iter_samples


def _keys(path) -> list[str]:
    with open(path, "rb") as f:
        return [s.key for s in iter_samples(f)]


def test_the_shards_are_realistic_and_every_method_copies_the_same_samples(tmp_path):
    (source,) = write_webdataset_shards(tmp_path, 1.5, 1, seed=0)
    with tarfile.open(source) as tar:
        members = tar.getmembers()
        assert {m.name.rsplit(".", 1)[1] for m in members} == {"jpg", "txt", "json"}
        assert all("mtime" in m.pax_headers for m in members)
        assert all(20_000 <= m.size <= 100_000 for m in members if m.name.endswith(".jpg"))
    count = len(sample_ranges(source))
    (tmp_path / "ours").mkdir()
    (ours,) = write_curate_shards([source], [count], tmp_path / "ours")
    settle([source, ours])
    keep = np.arange(0, count, 2)
    for shard in (source, ours):
        outputs = {}
        for name, method in (("new", new_path), ("per-sample", per_sample)):
            outputs[name] = tmp_path / f"{name}.tar"
            method(shard, keep, outputs[name])
        recorded = tmp_path / "recorded.tar"
        new_path(shard, keep, recorded, store_layout(shard))
        raw = tmp_path / "raw.tar"
        raw_ranges(shard, sample_ranges(shard), keep, raw)
        mapped = tmp_path / "mapped.tar"
        mapped_ranges(shard, sample_ranges(shard), keep, mapped)
        assert outputs["new"].read_bytes() == recorded.read_bytes() == raw.read_bytes()
        assert mapped.read_bytes() == raw.read_bytes()
        expected = [k for i, k in enumerate(_keys(source)) if i in set(keep.tolist())]
        assert _keys(raw) == _keys(outputs["new"]) == _keys(outputs["per-sample"]) == expected
        assert len(raw.read_bytes()) % 10240 == 0
    assert ours.read_bytes() != source.read_bytes()  # the two forms differ
    for shard in (source, ours):  # both copied verbatim: as the raw ranges
        with open(shard, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            assert index_shard(mm).verbatim.all()
