"""`copy_kept` (issue 13): the indexed path over a memory map writes byte for byte what the
per-sample reader and `TarWriter` write, copies shards curate wrote as raw ranges, stays
deterministic, and fails clearly: kept samples missing, a full disk."""

from __future__ import annotations

import errno
import gzip
import io
import lzma
import mmap
import tarfile
from pathlib import Path

import fsspec
import numpy as np
import pytest
import webdataset as wds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curation.errors import CurateError
from curation.storage import Folder
from shards.copier import _plain_descriptor, copy_kept, copy_samples
from shards.tarindex import index_shard, ustar_headers
from shards.tario import ShardFormatError, TarWriter, iter_samples, ustar_header
from tests.shards.tarbuild import archive, header, member, written

RNG = np.random.default_rng(11)


def _webdataset_shard(path: Path, count: int = 12) -> Path:
    """As webdataset (and img2dataset) write them: a pax header with `mtime` per member."""
    with wds.TarWriter(str(path)) as sink:
        for i in range(count):
            sink.write({"__key__": f"{i:06d}", "jpg": RNG.bytes(300 + 97 * i), "txt": "c" * i})
    return path


def _per_sample(path: Path, keep) -> bytes:
    out = io.BytesIO()
    with open(path, "rb") as f:
        copy_samples(f, np.asarray(keep, dtype=np.int64), out)
    return out.getvalue()


def _copied(path, keep) -> tuple[bytes, str]:
    out = io.BytesIO()
    stats = copy_kept(str(path), np.asarray(keep, dtype=np.int64), out)
    assert stats.bytes_written == len(out.getvalue())
    return out.getvalue(), stats.method


def _layout(path: Path):
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        layout = index_shard(mapped)
    return layout


def _keeps(count: int) -> list[list[int]]:
    return [
        list(range(count)),
        list(range(0, count, 2)),
        [count - 1],
        sorted(RNG.choice(count, count // 3, replace=False).tolist()),
        [],
    ]


def _shards(tmp_path: Path) -> dict[str, Path]:
    members = [
        (f"{k:03d}.{e}", RNG.bytes(int(RNG.integers(0, 1500)))) for k in range(9) for e in "ab"
    ]
    shards = {"webdataset": _webdataset_shard(tmp_path / "wds.tar")}
    for label, fmt in (
        ("ustar", tarfile.USTAR_FORMAT),
        ("gnu", tarfile.GNU_FORMAT),
        ("pax", tarfile.PAX_FORMAT),
    ):
        shards[label] = tmp_path / f"{label}.tar"
        shards[label].write_bytes(written(members, fmt))
    shards["with-directories"] = tmp_path / "dirs.tar"
    shards["with-directories"].write_bytes(
        archive(member(b"d/", kind=b"5"), member(b"d/a.jpg", b"1" * 700), member(b"e/", kind=b"5"))
        + b"trailing garbage"
    )
    shards["no-end-blocks"] = tmp_path / "noend.tar"
    shards["no-end-blocks"].write_bytes(
        archive(member(b"a.jpg", b"1"), member(b"b.jpg", b"2"), end=False)
    )
    return shards


def test_the_index_writes_what_the_per_sample_path_writes(tmp_path):
    for label, path in _shards(tmp_path).items():
        layout = _layout(path)
        assert layout is not None, label
        for keep in _keeps(layout.samples):
            data, method = _copied(path, keep)
            assert method == "index"
            assert data == _per_sample(path, keep), (label, keep)


def test_a_shard_curate_wrote_is_copied_as_raw_ranges(tmp_path):
    source = _webdataset_shard(tmp_path / "wds.tar")
    ours = tmp_path / "ours.tar"
    ours.write_bytes(_copied(source, range(12))[0])
    layout = _layout(ours)
    assert layout.normal.all() and not _layout(source).normal.any()
    assert _copied(ours, range(12))[0] == ours.read_bytes()  # keep all: the same bytes
    for keep in _keeps(12):
        assert _copied(ours, keep)[0] == _per_sample(ours, keep)


def test_the_output_is_a_tar_webdataset_and_tarfile_read(tmp_path):
    source = _webdataset_shard(tmp_path / "wds.tar")
    out = tmp_path / "out.tar"
    with open(out, "wb") as f:
        stats = copy_kept(str(source), np.array([1, 4, 5, 11]), f)
    assert (stats.samples_read, stats.samples_copied, stats.method) == (12, 4, "index")
    assert out.stat().st_size % 10240 == 0
    keys = [s["__key__"] for s in wds.WebDataset(str(out), shardshuffle=False)]
    assert keys == ["000001", "000004", "000005", "000011"]
    with tarfile.open(out) as tar:
        assert all((m.mtime, m.mode, m.uid, m.uname) == (0, 0o644, 0, "") for m in tar)


def test_the_same_input_gives_the_same_bytes_even_after_a_killed_run(tmp_path):
    source = _webdataset_shard(tmp_path / "wds.tar", 40)
    keep = np.arange(0, 40, 3)
    first = _copied(source, keep)[0]

    class Killed(io.BytesIO):
        """Takes 3000 bytes, then the process is killed."""

        def write(self, data):
            super().write(bytes(data)[: 3000 - self.tell()])
            raise KeyboardInterrupt

    killed = Killed()
    with pytest.raises(KeyboardInterrupt):
        copy_kept(str(source), keep, killed)
    assert killed.getvalue() == first[:3000]
    assert _copied(source, keep)[0] == first


@pytest.mark.parametrize(
    "irregular",
    [
        member(b"l.jpg", kind=b"2"),  # a symbolic link
        member("caf\xe9.jpg".encode("latin-1"), b"x"),
        member(b"x" * 96 + b".jpg", b"long") + member(b"a.b/.c", b"odd key"),
        member(b"001.a", b"again"),  # a key the shard had before
        member(b"../up.jpg", b"escapes"),
        member(b"u.jpg", kind=b"\0"),  # old-style regular file
        member(b"big.txt") + member(b"k.JPG", b"case") + member(b"k.jpg", b"case"),
    ],
)
def test_irregular_shards_take_the_per_sample_path_and_agree(tmp_path, irregular):
    path = tmp_path / "irregular.tar"
    path.write_bytes(
        archive(member(b"001.a", b"1"), member(b"002.a", b"2"), irregular, member(b"003.a"))
    )
    assert _layout(path) is None
    samples = list(iter_samples(io.BytesIO(path.read_bytes())))
    passing = [s.position for s in samples if s.error is None and not s.unsafe_names]
    data, method = _copied(path, passing)
    assert method == "per-sample"
    assert data == _per_sample(path, passing)


def test_a_kept_sample_that_now_fails_is_a_curate_error(tmp_path):
    path = tmp_path / "changed.tar"
    path.write_bytes(archive(member(b"a.jpg", b"1"), member(b"b.jpg", kind=b"2")))
    with pytest.raises(
        CurateError, match=r"kept sample 1 \(b\) cannot be copied: member b\.jpg is"
    ):
        copy_kept(str(path), np.array([0, 1]), io.BytesIO())


def test_missing_kept_samples_are_a_curate_error(tmp_path):
    source = _webdataset_shard(tmp_path / "wds.tar", 5)
    with pytest.raises(
        CurateError, match="changed since it was embedded: 2 kept samples are missing"
    ):
        copy_kept(str(source), np.array([1, 5, 9]), io.BytesIO())
    cut = tmp_path / "cut.tar"
    cut.write_bytes(source.read_bytes()[:3000])  # damaged: the per-sample path stops there
    with pytest.raises(CurateError, match="kept samples are missing"):
        copy_kept(str(cut), np.array([0, 4]), io.BytesIO())


def test_keep_positions_are_taken_in_order_once(tmp_path):
    source = _webdataset_shard(tmp_path / "wds.tar", 6)
    assert _copied(source, [4, 1, 1, 4])[0] == _copied(source, [1, 4])[0]
    with pytest.raises(CurateError, match="1 kept samples are missing"):
        copy_kept(str(source), np.array([-1, 2]), io.BytesIO())


def test_an_empty_selection_or_shard_writes_an_empty_tar(tmp_path):
    empty = tmp_path / "empty.tar"
    empty.write_bytes(b"")
    assert _copied(empty, []) == (bytes(10240), "per-sample")
    source = _webdataset_shard(tmp_path / "wds.tar", 3)
    assert _copied(source, []) == (bytes(10240), "index")


@pytest.mark.parametrize("compress", [lambda d: gzip.compress(d, mtime=0), lzma.compress])
def test_compressed_shards_are_streamed_and_give_the_same_bytes(tmp_path, compress):
    source = _webdataset_shard(tmp_path / "wds.tar")
    packed = tmp_path / "wds.tar.x"
    packed.write_bytes(compress(source.read_bytes()))
    for keep in _keeps(12):
        assert _copied(packed, keep) == (_copied(source, keep)[0], "per-sample")


def test_a_url_is_streamed_and_gives_the_same_bytes(tmp_path):
    source = _webdataset_shard(tmp_path / "wds.tar")
    with fsspec.open("memory://shards/wds.tar", "wb") as f:
        f.write(source.read_bytes())
    assert _copied("memory://shards/wds.tar", [0, 3, 7]) == (
        _copied(source, [0, 3, 7])[0],
        "per-sample",
    )


def _mapped(path: Path) -> bool:
    return str(path) in Path("/proc/self/maps").read_text()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("shard", ["webdataset", "irregular"])
def test_a_full_disk_is_an_oserror_naming_the_output(tmp_path, shard):
    source = _webdataset_shard(tmp_path / "wds.tar", 30)
    if shard == "irregular":
        source.write_bytes(source.read_bytes()[:-2048] + member(b"l.jpg", kind=b"2") + bytes(1024))
    with open("/dev/full", "wb") as full, pytest.raises(OSError) as raised:
        copy_kept(str(source), np.arange(30), full)
    assert raised.value.errno == errno.ENOSPC
    assert "cannot write /dev/full: No space left on device" in str(raised.value)
    assert not _mapped(source)


class _FillsUp(io.RawIOBase):
    """A stream that takes `room` bytes, then raises ENOSPC."""

    name = "/data/out/00000.tar"

    def __init__(self, room: int):
        self.room = room

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return len(data)


@pytest.mark.parametrize("compressed", [False, True])
def test_a_stream_that_fills_up_is_an_oserror_naming_it(tmp_path, compressed):
    source = _webdataset_shard(tmp_path / "wds.tar", 30)
    if compressed:
        source.write_bytes(gzip.compress(source.read_bytes()))
    with pytest.raises(
        OSError, match=r"cannot write /data/out/00000\.tar: No space left"
    ) as raised:
        copy_kept(str(source), np.arange(30), _FillsUp(1000))
    assert raised.value.errno == errno.ENOSPC
    assert not _mapped(source)


@given(
    names=st.lists(st.text("abcXYZ/._-09", min_size=1, max_size=100), min_size=1, max_size=50),
    sizes=st.lists(st.integers(0, 1 << 24), min_size=50, max_size=50),
)
def test_bulk_headers_are_ustar_header_byte_for_byte(names, sizes):
    names = [n for n in names if len(n.encode()) <= 100]
    sizes = sizes[: len(names)]
    fields = np.array([list(n.encode().ljust(100, b"\0")) for n in names], dtype=np.uint8)
    rows = ustar_headers(fields.reshape(-1, 100), np.array(sizes, dtype=np.int64))
    assert [bytes(r) for r in rows] == [
        ustar_header(n, s) for n, s in zip(names, sizes, strict=True)
    ]


KEYS = st.sampled_from(["a", "b", "c", "dir/d", "e.v2", "F"])
SUFFIXES = st.sampled_from(["jpg", "txt", "json", "cls", "JPG"])


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    members=st.lists(st.tuples(KEYS, SUFFIXES, st.integers(0, 1100)), min_size=0, max_size=14),
    fmt=st.sampled_from(["webdataset", "tarfile", "curate"]),
    keep_seed=st.integers(0, 2**16),
)
def test_any_shard_the_index_takes_it_reads_as_iter_samples_does(tmp_path, members, fmt, keep_seed):
    data = [(f"{key}.{suffix}", bytes([len(key)]) * size) for key, suffix, size in members]
    path = tmp_path / "shard.tar"
    if fmt == "webdataset":
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, payload in data:
                info = tarfile.TarInfo(name)
                info.size, info.mtime = len(payload), 1.5  # a float: a pax mtime record
                tar.addfile(info, io.BytesIO(payload))
        path.write_bytes(buffer.getvalue())
    elif fmt == "tarfile":
        path.write_bytes(written(data))
    else:
        buffer = io.BytesIO()
        writer = TarWriter(buffer)
        for name, payload in data:
            writer.add(name, payload)
        writer.close()
        path.write_bytes(buffer.getvalue())
    samples = list(iter_samples(io.BytesIO(path.read_bytes())))
    layout = _layout(path)
    if layout is not None:
        assert layout.samples == len(samples)
        assert layout.sample.tolist() == [s.position for s in samples for _ in s.members]
    passing = np.array([s.position for s in samples if s.error is None], dtype=np.int64)
    keep = passing[np.random.default_rng(keep_seed).random(len(passing)) < 0.6]
    out, method = _copied(path, keep)
    assert method == ("index" if layout is not None else "per-sample")
    assert out == _per_sample(path, keep)


def test_the_index_takes_the_shards_real_writers_write(tmp_path):
    for path in _shards(tmp_path).values():
        assert _layout(path) is not None
    bad = tmp_path / "bad.tar"
    bad.write_bytes(
        archive(member(b"a.jpg", b"1"), header(b"b.jpg", 1, checksum=b"000001\0 ") + bytes(512))
    )
    assert _layout(bad) is None


def _small_shard() -> bytes:
    buffer = io.BytesIO()
    with wds.TarWriter(buffer) as sink:
        for i in range(6):
            sink.write({"__key__": f"k{i}", "jpg": bytes([i]) * (100 * i), "txt": "t" * i})
    return buffer.getvalue()


SMALL = _small_shard()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cut=st.integers(0, len(SMALL)),
    flips=st.lists(st.tuples(st.integers(0, len(SMALL) - 1), st.integers(0, 255)), max_size=3),
)
def test_a_damaged_shard_never_breaks_the_copy(tmp_path, cut, flips):
    damaged = bytearray(SMALL[:cut])
    for at, value in flips:
        if at < len(damaged):
            damaged[at] = value
    path = tmp_path / "damaged.tar"
    path.write_bytes(bytes(damaged))
    samples, damage = [], None
    try:
        samples.extend(iter_samples(io.BytesIO(bytes(damaged))))
    except ShardFormatError as exc:
        damage = exc
    layout = _layout(path) if damaged else None
    if layout is not None:
        assert damage is None
        assert layout.sample.tolist() == [s.position for s in samples for _ in s.members]
    passing = [s.position for s in samples if s.error is None and not s.unsafe_names]
    assert _copied(path, passing)[0] == _per_sample(path, passing)


def test_the_output_folders_files_are_written_straight_to_their_descriptor(tmp_path):
    """reshard writes through `Folder.open_atomic` (an fsspec local file): the fast path
    must see the plain file under it; an in-memory stream takes the joined writes."""
    with Folder(str(tmp_path)).open_atomic("00000.tar") as stream:
        assert _plain_descriptor(stream) is not None
    assert _plain_descriptor(io.BytesIO()) is None
    with gzip.open(tmp_path / "x.gz", "wb") as compressed:
        assert _plain_descriptor(compressed) is None
