"""Output names equal input names (nested layouts too) and what img2dataset and from-folder
leave beside the shards comes along (issue 11, item 3)."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq

from tests.builders import write_shards
from tests.runs import decisions, run_prune, samples_by_key


def test_nested_and_eight_digit_names_are_kept(tmp_path, tiny_clip):
    made = write_shards(tmp_path / "made", shards=3, per_shard=12)
    layout = ["train/a/00000000.tar", "train/a/00000001.tar", "train/b/00000000.tar"]
    inputs = []
    for source, name in zip(made, layout, strict=True):
        target = tmp_path / "in" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
        inputs.append(target)
    out = tmp_path / "out"
    summary = run_prune(inputs, out, tiny_clip, clusters=3)
    expected = ["a/00000000.tar", "a/00000001.tar", "b/00000000.tar"]
    assert summary["output_shards"] == expected
    for name, source in zip(expected, inputs, strict=True):
        kept = decisions(out)
        kept = kept[(kept["shard"] == str(source)) & kept["kept"]]["key"].tolist()
        assert list(samples_by_key(out / name)) == kept
        assert json.loads((out / name.replace(".tar", "_stats.json")).read_text())["count"] == 12


def test_img2dataset_metadata_comes_along(tmp_path, tiny_clip):
    shards = write_shards(tmp_path / "in", shards=2, per_shard=20, layout="img2dataset")
    for shard in shards:
        keys = list(samples_by_key(shard))
        rows = {"key": [*keys, "never-downloaded"], "status": ["success"] * len(keys) + ["failed"]}
        pq.write_table(pa.table(rows), shard.with_suffix(".parquet"))
        stats = {"count": 21, "successes": 20, "failed_to_download": 1, "failed_to_resize": 0}
        shard.with_name(shard.stem + "_stats.json").write_text(json.dumps(stats))
    (tmp_path / "in" / "classes.json").write_text(json.dumps({"cat": 0, "dog": 1}))
    out = tmp_path / "out"
    summary = run_prune(shards, out, tiny_clip, clusters=3)
    assert summary["metadata_copied"] == ["classes.json"]
    assert (out / "classes.json").read_text() == (tmp_path / "in" / "classes.json").read_text()
    for shard in shards:
        kept = list(samples_by_key(out / shard.name))
        assert pq.read_table(out / f"{shard.stem}.parquet")["key"].to_pylist() == kept
        stats = json.loads((out / f"{shard.stem}_stats.json").read_text())
        assert stats["successes"] == len(kept) and stats["failed_to_download"] == 1
        assert stats["failed_to_resize"] == 0 and stats["duration"] >= 0
        assert stats["end_time"] >= stats["start_time"]


def test_a_damaged_metadata_file_beside_a_shard_is_noted_not_fatal(tmp_path, tiny_clip):
    """The shard is copied; its parquet, which Arrow cannot read, is left behind and named in
    the shard's stats; the other shard's comes along."""
    shards = write_shards(tmp_path / "in", shards=2, per_shard=12, layout="img2dataset")
    good, damaged = shards
    pq.write_table(pa.table({"key": list(samples_by_key(good))}), good.with_suffix(".parquet"))
    damaged.with_suffix(".parquet").write_bytes(b"PAR1 cut short")
    out = tmp_path / "out"
    run_prune(shards, out, tiny_clip, clusters=3)
    assert (out / f"{good.stem}.parquet").exists() and (out / damaged.name).exists()
    assert not (out / f"{damaged.stem}.parquet").exists()
    stats = json.loads((out / f"{damaged.stem}_stats.json").read_text())
    assert f"{damaged.stem}.parquet is not a parquet file" in stats["metadata_error"]
    assert "metadata_error" not in json.loads((out / f"{good.stem}_stats.json").read_text())
