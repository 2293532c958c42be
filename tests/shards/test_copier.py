"""`copy_kept` (issue 13): the indexed path copies safe members verbatim (the rule of
`shards.tarindex`, worked out again here from what `tarfile` reports) and writes the others as
the per-sample reader and `TarWriter` do; it trusts a recorded layout only as far as the
headers it checks, stays deterministic, and fails clearly: kept samples missing, a full disk."""

from __future__ import annotations

import errno
import gzip
import io
import lzma
import mmap
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import fsspec
import numpy as np
import pytest
import webdataset as wds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shards.copier
from curation.errors import CurateError
from curation.storage import Folder
from shards.copier import _plain_descriptor, copy_kept, copy_samples, record_layout
from shards.tarindex import Layout, index_shard, ustar_headers
from shards.tario import ShardFormatError, TarWriter, iter_samples, ustar_header
from tests.runs import REPO
from tests.shards.tarbuild import archive, header, member, pax, record, written

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


BLOCK = 512
_NUMBERS = re.compile(rb"0000[0-7]{3}\0[0-7]{7}\0[0-7]{7}\0[0-7]{11}\0[0-7]{11}\0")
_DEVICES = re.compile(rb"([0-7]{7}\0|\0{8}){2}")
_TIME = re.compile(r"[0-9]*\.?[0-9]*")


def _fields_ok(block: bytes) -> bool:
    return bool(
        _NUMBERS.fullmatch(block[100:148]) and _DEVICES.fullmatch(block[329:345])
    )  # mode without sticky/setid bits, uid, gid, size, mtime; devices


def _nul_after(data: bytes, end: int) -> bool:
    return not data[end : end + -end % BLOCK].strip(b"\0")


def _verbatim(data: bytes, info: tarfile.TarInfo) -> bool:
    """The verbatim rule, from what `tarfile` reports of a member of a shard the index took."""
    head, end = info.offset_data - BLOCK, info.offset_data + info.size
    if not _fields_ok(data[head : head + BLOCK]) or not _nul_after(data, end):
        return False
    if info.offset == head:
        return True  # no pax header
    block = data[info.offset : info.offset + BLOCK]
    name = block[:100].split(b"\0", 1)[0]
    records = info.pax_headers
    return (
        _fields_ok(block)
        and _nul_after(data, info.offset + BLOCK + int(block[124:135], 8))
        and bool(name) and not name.startswith(b"/") and b".." not in name
        and all(32 <= c < 127 for c in name)
        and set(records) <= {"mtime", "atime", "ctime", "path", "size"}
        and all(_TIME.fullmatch(records[k]) for k in ("mtime", "atime", "ctime") if k in records)
    )  # fmt: skip


def _rule_bytes(path: Path, keep) -> bytes:
    """What the output rule asks for: each kept member's input bytes when it is verbatim,
    else `TarWriter`'s; then the end blocks and padding to a record."""
    data, wanted = path.read_bytes(), set(np.asarray(keep).tolist())
    with tarfile.open(path) as tar:
        infos = {m.name: m for m in tar if m.isreg()}
    parts = []
    for sample in iter_samples(io.BytesIO(data)):
        for m in sample.members if sample.position in wanted else []:
            info, size = infos[m.name], len(m.data)
            if _verbatim(data, info):
                parts.append(data[info.offset : info.offset_data + size + -size % BLOCK])
            else:
                parts.append(ustar_header(m.name, size) + bytes(m.data) + bytes(-size % BLOCK))
    body = b"".join(parts)
    return body + bytes(2 * BLOCK + -(len(body) + 2 * BLOCK) % 10240)


def _members(data: bytes) -> list[tuple[str, bytes]]:
    return [(m.name, bytes(m.data)) for s in iter_samples(io.BytesIO(data)) for m in s.members]


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


def test_the_index_writes_what_the_rule_says_and_the_members_the_reader_reads(tmp_path):
    for label, path in _shards(tmp_path).items():
        layout = _layout(path)
        assert layout is not None, label
        for keep in _keeps(layout.samples):
            data, method = _copied(path, keep)
            assert method == "index"
            assert data == _rule_bytes(path, keep), (label, keep)
            assert _members(data) == _members(_per_sample(path, keep)), (label, keep)


def test_a_view_held_elsewhere_does_not_fail_the_shard(tmp_path, monkeypatch):
    """As in a dask worker, whose profiler keeps a finished frame (and its views of the map)
    alive: the layout and the copy still come, and the map goes with the last view."""
    source = _webdataset_shard(tmp_path / "wds.tar")
    held = []
    real = shards.copier.index_shard

    def holding(mm):
        held.append(np.frombuffer(mm, np.uint8))
        return real(mm)

    monkeypatch.setattr(shards.copier, "index_shard", holding)
    assert record_layout(str(source)).samples == 12
    assert _copied(source, range(12))[1] == "index"
    assert len(held) == 2


def test_a_webdataset_shard_kept_whole_is_its_own_bytes_and_our_end(tmp_path):
    source = _webdataset_shard(tmp_path / "wds.tar")
    data, layout = source.read_bytes(), _layout(source)
    assert layout.verbatim.all()  # a pax header with mtime alone before every member
    end = int(layout.end[-1])
    copied = _copied(source, range(12))[0]
    assert copied[:end] == data[:end] and not copied[end:].strip(b"\0")
    assert len(copied) % 10240 == 0


def test_keep_half_gives_each_kept_samples_input_bytes(tmp_path):
    source = _webdataset_shard(tmp_path / "wds.tar")
    data, layout = source.read_bytes(), _layout(source)
    keep = [1, 2, 5, 8, 9, 11]
    spans = [
        data[int(layout.start[layout.sample == k][0]) : int(layout.end[layout.sample == k][-1])]
        for k in keep
    ]
    copied = _copied(source, keep)[0]
    body = b"".join(spans)
    assert copied[: len(body)] == body and not copied[len(body) :].strip(b"\0")


def test_a_shard_curate_wrote_comes_out_identical(tmp_path):
    source = tmp_path / "in.tar"
    source.write_bytes(_per_sample(_webdataset_shard(tmp_path / "wds.tar"), range(12)))
    assert _layout(source).verbatim.all()
    assert _copied(source, range(12))[0] == source.read_bytes()  # keep all: the same bytes
    for keep in _keeps(12):
        assert _copied(source, keep)[0] == _per_sample(source, keep)


def test_the_output_is_a_tar_webdataset_and_tarfile_read(tmp_path):
    source = _webdataset_shard(tmp_path / "wds.tar")
    out = tmp_path / "out.tar"
    with open(out, "wb") as f:
        stats = copy_kept(str(source), np.array([1, 4, 5, 11]), f)
    assert (stats.samples_read, stats.samples_copied, stats.method) == (12, 4, "index")
    assert out.stat().st_size % 10240 == 0
    keys = [s["__key__"] for s in wds.WebDataset(str(out), shardshuffle=False)]
    assert keys == ["000001", "000004", "000005", "000011"]
    samples = list(wds.WebDataset(str(out), shardshuffle=False))
    expected = list(wds.WebDataset(str(source), shardshuffle=False))
    assert [(s["__key__"], s["jpg"], s["txt"]) for s in samples] == [
        (s["__key__"], s["jpg"], s["txt"]) for s in expected if s["__key__"] in keys
    ]
    with tarfile.open(out) as tar, tarfile.open(source) as given:
        inputs = {m.name: m for m in given}
        for m in tar:  # verbatim: the input's own metadata
            assert (m.mtime, m.mode, m.size) == tuple(
                getattr(inputs[m.name], k) for k in ("mtime", "mode", "size")
            )
            assert tar.extractfile(m).read() == given.extractfile(inputs[m.name]).read()


def _with(odd: bytes) -> bytes:
    """Three samples around one odd member (sample 1)."""
    return archive(
        member(b"000.jpg", b"a" * 700),
        member(b"000.txt", b"t"),
        odd,
        member(b"001.txt", b"u" * 30),
        member(b"002.jpg", b"c" * 513),
    )


_MTIME = pax(record("mtime", b"1700000000.25"))


@pytest.mark.parametrize(
    "odd",
    [
        pax(record("comment", b"hi")) + member(b"001.jpg", b"b" * 600),
        pax(record("mtime", b"1.5") + record("linkpath", b"x")) + member(b"001.jpg", b"b"),
        pax(record("hdrcharset", b"BINARY")) + member(b"001.jpg", b"b"),
        pax(record("SCHILY.xattr.user.x", b"1")) + member(b"001.jpg", b"b"),
        pax(record("mtime", b"soon")) + member(b"001.jpg", b"b"),
        header(b"001.jpg", 3) + b"bad" + b"\xff" + bytes(508),  # padding not NUL
        pax(record("mtime", b"1")) + header(b"001.jpg", 1) + b"b" + b"x" + bytes(510),
        member(b"001.jpg", b"b", extra={100: b"0004755\0"}),  # setuid
        member(b"001.jpg", b"b", extra={136: b"   1234567 "}),  # mtime not as tarfile writes
        member(b"001.jpg", b"b", extra={329: b"0000001 "}),  # a device number ending in a space
        member(b"././@PaxHeader", b"11 mtime=1\n", b"x", extra={0: b"../up\0"})
        + member(b"001.jpg", b"b"),  # a pax header named to escape, for readers without pax
    ],
)
def test_only_the_members_that_need_it_are_normalised(tmp_path, odd):
    path = tmp_path / "odd.tar"
    path.write_bytes(_with(odd))
    layout = _layout(path)
    assert layout.verbatim.tolist() == [True, True, False, True, True]
    for keep in _keeps(3):
        data = _copied(path, keep)[0]
        assert data == _rule_bytes(path, keep)
        assert _members(data) == _members(_per_sample(path, keep))
    with tarfile.open(tmp_path / "odd.tar") as tar:
        assert tar.getnames() == ["000.jpg", "000.txt", "001.jpg", "001.txt", "002.jpg"]


@pytest.mark.parametrize(
    "odd",
    [
        _MTIME + member(b"001.jpg", b"b") + pax(record("path", b"001.x")) + member(b"001.x"),
        pax(record("size", b"1")) + member(b"001.jpg", b"b"),
        pax(record("path", b"001.jpg") + record("atime", b"2")) + member(b"001.jpg", b"b"),
    ],
)
def test_harmless_pax_records_stay_verbatim(tmp_path, odd):
    path = tmp_path / "pax.tar"
    path.write_bytes(_with(odd))
    layout = _layout(path)
    assert layout.verbatim.all()
    end = int(layout.end[-1])
    assert _copied(path, range(3))[0][:end] == path.read_bytes()[:end]


@pytest.mark.parametrize(
    "odd",
    [
        member("caf\xe9.jpg".encode("latin-1"), b"b"),  # a name not printable ASCII
        member(b"././@LongLink", b"001.jpg\0", b"L") + member(b"001.jpg", b"b"),  # GNU long name
        member(b"001.jpg", b"b", size_field=b"\x80" + (1).to_bytes(11, "big")),  # base-256
        pax(record("path", b"001.png")) + member(b"001.jpg", b"b"),  # a path unlike the name
    ],
)
def test_members_the_index_declines_normalise_the_whole_shard(tmp_path, odd):
    """Such a shard goes through the per-sample reader: every member gets our header."""
    path = tmp_path / "declined.tar"
    path.write_bytes(_with(odd))
    assert _layout(path) is None
    data, method = _copied(path, [0, 1, 2])
    assert (data, method) == (_per_sample(path, [0, 1, 2]), "per-sample")


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
def test_compressed_shards_are_streamed_and_normalised_whole(tmp_path, compress):
    source = _webdataset_shard(tmp_path / "wds.tar")
    packed = tmp_path / "wds.tar.x"
    packed.write_bytes(compress(source.read_bytes()))
    for keep in _keeps(12):
        data, method = _copied(packed, keep)
        assert (data, method) == (_per_sample(source, keep), "per-sample")
        assert _members(data) == _members(_copied(source, keep)[0])


def test_a_url_is_streamed_and_normalised_whole(tmp_path):
    source = _webdataset_shard(tmp_path / "wds.tar")
    with fsspec.open("memory://shards/wds.tar", "wb") as f:
        f.write(source.read_bytes())
    assert _copied("memory://shards/wds.tar", [0, 3, 7]) == (
        _per_sample(source, [0, 3, 7]),
        "per-sample",
    )
    assert _copied(f"file://{source}", [0, 3, 7]) == _copied(source, [0, 3, 7])  # local
    assert _stored(record_layout(f"file://{source}")).samples == 12


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
    assert out == (_per_sample(path, keep) if layout is None else _rule_bytes(path, keep))


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
    copied = _copied(path, passing)[0]
    assert _members(copied) == _members(_per_sample(path, passing))
    if layout is None:
        assert copied == _per_sample(path, passing)
    with tarfile.open(fileobj=io.BytesIO(copied)) as tar:  # what went out verbatim reads
        assert tar.getnames() == [name for name, _ in _members(copied)]


def test_the_output_folders_files_are_written_straight_to_their_descriptor(tmp_path):
    """reshard writes through `Folder.open_atomic` (an fsspec local file): the fast path
    must see the plain file under it; an in-memory stream takes the joined writes."""
    with Folder(str(tmp_path)).open_atomic("00000.tar") as stream:
        assert _plain_descriptor(stream) is not None
    assert _plain_descriptor(io.BytesIO()) is None
    with gzip.open(tmp_path / "x.gz", "wb") as compressed:
        assert _plain_descriptor(compressed) is None


def _stored(layout: Layout) -> Layout:
    """The layout as reshard gets it back from the run directory."""
    buffer = io.BytesIO()
    np.save(buffer, layout.records(), allow_pickle=False)
    buffer.seek(0)
    return Layout.from_records(np.load(buffer, allow_pickle=False))


def _to_file(path: Path, source: Path, keep, layout=None):
    with open(path, "wb") as out:
        stats = copy_kept(str(source), np.asarray(keep, dtype=np.int64), out, layout=layout)
    return path.read_bytes(), stats.method


def _refuse(*args, **kwargs):
    raise AssertionError("not to be called")


@pytest.fixture(params=["page cache", "disk"])
def shard_in(request, monkeypatch) -> str:
    """Both ways the kept ranges of a local shard reach a file: views of its populated map
    (the shard in the page cache) and the kernel's range copy (the shard on disk)."""
    cached = request.param == "page cache"
    monkeypatch.setattr(shards.copier, "_in_page_cache", lambda fd, offsets: cached)
    return request.param


def _from_disk(monkeypatch) -> None:
    monkeypatch.setattr(shards.copier, "_in_page_cache", lambda fd, offsets: False)


def test_a_recorded_layout_survives_storage(tmp_path):
    layout = record_layout(str(_webdataset_shard(tmp_path / "wds.tar")))
    back = _stored(layout)
    for name in ("start", "header", "size", "sample", "verbatim", "names", "checksum"):
        assert np.array_equal(getattr(back, name), getattr(layout, name)), name
    assert back.samples == layout.samples == 12
    packed = tmp_path / "wds.tar.gz"
    packed.write_bytes(gzip.compress((tmp_path / "wds.tar").read_bytes()))
    assert record_layout(str(packed)) is None and record_layout("memory://x/y.tar") is None


def test_a_recorded_layout_is_used_instead_of_indexing(tmp_path, monkeypatch, shard_in):
    """From disk nothing is mapped (all verbatim); from the page cache exactly the kept
    members' bytes are faulted into the map."""
    source = _webdataset_shard(tmp_path / "wds.tar", 30)
    layout = _stored(record_layout(str(source)))
    expected = {tuple(k): _copied(source, k)[0] for k in _keeps(30)}
    monkeypatch.setattr(shards.copier, "index_shard", _refuse)
    populated = []
    if shard_in == "disk":
        monkeypatch.setattr(shards.copier._LocalTar, "mapped", _refuse)
    else:
        real = shards.copier._LocalTar.populate
        monkeypatch.setattr(
            shards.copier._LocalTar,
            "populate",
            lambda self, begins, ends: populated.append((begins, ends)) or real(self, begins, ends),
        )
    for keep, data in expected.items():
        populated.clear()
        assert _to_file(tmp_path / "out.tar", source, keep, layout) == (data, "recorded")
        if shard_in == "page cache" and keep:
            members = np.isin(layout.sample, keep)
            kept_bytes = int((layout.end[members] - layout.start[members]).sum())
            [(begins, ends)] = populated
            assert sum(ends) - sum(begins) == kept_bytes


def test_a_recorded_layout_with_members_to_normalise_gives_the_same_bytes(
    tmp_path, monkeypatch, shard_in
):
    path = tmp_path / "odd.tar"
    path.write_bytes(_with(pax(record("comment", b"hi")) + member(b"001.jpg", b"b" * 600)))
    layout = _stored(record_layout(str(path)))
    monkeypatch.setattr(shards.copier, "index_shard", _refuse)
    for keep in _keeps(3):
        assert _to_file(tmp_path / "out.tar", path, keep, layout) == (
            _rule_bytes(path, keep),
            "recorded",
        )


def test_without_a_recorded_layout_the_shard_is_indexed(tmp_path, monkeypatch):
    source = _webdataset_shard(tmp_path / "wds.tar")
    indexed = []
    monkeypatch.setattr(
        shards.copier, "index_shard", lambda mm: indexed.append(1) or index_shard(mm)
    )
    assert _to_file(tmp_path / "out.tar", source, [0, 5])[1] == "index"
    assert indexed == [1]


def test_the_page_cache_probe_reads_without_waiting(tmp_path, monkeypatch):
    source = _webdataset_shard(tmp_path / "wds.tar")  # just written: in the page cache
    offsets = shards.copier._spread(np.array([0, 5000]), np.array([1000, 9000]))
    assert len(offsets) == shards.copier._PROBES
    assert all(0 <= at < 1000 or 5000 <= at < 9000 for at in offsets)
    assert sum(at < 1000 for at in offsets) == 2  # spread by bytes: a fifth of 8
    with open(source, "rb") as f:
        assert shards.copier._in_page_cache(f.fileno(), offsets)
        assert not shards.copier._in_page_cache(f.fileno(), [])
        real, reads = os.preadv, []

        def on_disk(fd, buffers, offset, flags=0):
            reads.append(offset)
            if flags & os.RWF_NOWAIT and offset == offsets[3]:
                raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
            return real(fd, buffers, offset, flags)

        monkeypatch.setattr(os, "preadv", on_disk)
        assert not shards.copier._in_page_cache(f.fileno(), offsets)
    assert reads == offsets[:4]  # the first miss decides


def test_where_the_kernel_cannot_populate_the_map_the_bytes_are_the_same(tmp_path, monkeypatch):
    """Before Linux 5.14 `MADV_POPULATE_READ` is EINVAL: the pages fault in as read."""
    source = _webdataset_shard(tmp_path / "wds.tar", 30)
    keeps = _keeps(30)
    expected = [_copied(source, keep)[0] for keep in keeps]
    monkeypatch.setattr(shards.copier, "_in_page_cache", lambda fd, offsets: True)
    monkeypatch.setattr(shards.copier, "POPULATE_READ", 0x7FFF)  # no such advice: EINVAL
    for keep, data in zip(keeps, expected, strict=True):
        assert _to_file(tmp_path / "out.tar", source, keep)[0] == data


def _same_stat(path: Path, data: bytes) -> None:
    """Replace the file with `data` of the same size, keeping its mtime (what a fingerprint
    cannot see)."""
    stat = path.stat()
    assert len(data) == stat.st_size
    path.write_bytes(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.parametrize("keep", [range(12), [3, 7], [11]])
def test_a_shard_replaced_with_the_same_size_and_mtime_is_refused(tmp_path, keep, shard_in):
    source = _webdataset_shard(tmp_path / "wds.tar")
    layout = record_layout(str(source))
    rng = np.random.default_rng(5)
    with wds.TarWriter(str(tmp_path / "other.tar")) as sink:  # other names, same sizes
        for i in range(12):
            sink.write({"__key__": f"x{i:05d}", "jpg": rng.bytes(300 + 97 * i), "txt": "c" * i})
    _same_stat(source, (tmp_path / "other.tar").read_bytes())
    out = tmp_path / "out.tar"
    with pytest.raises(CurateError, match=rf"shard {source} changed since it was embedded"):
        _to_file(out, source, keep, layout)
    assert out.read_bytes() == b""  # refused before a byte was written


def test_a_shard_cut_short_under_a_recorded_layout_is_refused(tmp_path, shard_in):
    source = _webdataset_shard(tmp_path / "wds.tar")
    layout = record_layout(str(source))
    source.write_bytes(source.read_bytes()[:4096])
    with pytest.raises(CurateError, match=rf"shard {source} changed .* ends before"):
        _to_file(tmp_path / "out.tar", source, np.arange(12), layout)


def _unsupported(*args):
    raise OSError(errno.EXDEV, "Invalid cross-device link")


@pytest.mark.parametrize(
    "missing", [["copy_file_range"], ["copy_file_range", "sendfile"]], ids=["sendfile", "reads"]
)
def test_where_the_kernel_cannot_copy_ranges_the_bytes_are_the_same(tmp_path, monkeypatch, missing):
    source = _webdataset_shard(tmp_path / "wds.tar", 30)
    keeps = _keeps(30)
    expected = [_copied(source, keep)[0] for keep in keeps]
    _from_disk(monkeypatch)
    for name in missing:
        monkeypatch.setattr(os, name, _unsupported)
    for keep, data in zip(keeps, expected, strict=True):
        assert _to_file(tmp_path / "out.tar", source, keep)[0] == data


def test_an_output_opened_to_append_gets_the_same_bytes(tmp_path, shard_in):
    """`copy_file_range` refuses a file opened to append (EBADF): the next way down copies."""
    source = _webdataset_shard(tmp_path / "wds.tar", 30)
    keep = np.arange(0, 30, 2)
    out = tmp_path / "out.tar"
    with open(out, "ab") as f:
        copy_kept(str(source), keep, f)
    assert out.read_bytes() == _copied(source, keep)[0]


def test_short_range_copies_continue_where_they_stopped(tmp_path, monkeypatch):
    source = _webdataset_shard(tmp_path / "wds.tar", 30)
    expected = _copied(source, range(30))[0]
    real, calls = os.copy_file_range, []

    def short(src, dst, count, offset=None):
        calls.append(count)
        return real(src, dst, min(count, 700), offset)

    _from_disk(monkeypatch)
    monkeypatch.setattr(os, "copy_file_range", short)
    assert _to_file(tmp_path / "out.tar", source, range(30))[0] == expected
    assert len(calls) == -(-int(_layout(source).end[-1]) // 700)  # one run, 700 bytes a call


def test_a_killed_copy_into_the_output_folder_runs_again_to_the_same_bytes(
    tmp_path, monkeypatch, shard_in
):
    """As a reshard unit resumes: the killed attempt, part written, leaves no file; the rerun
    writes the bytes an uninterrupted run writes."""
    source = _webdataset_shard(tmp_path / "wds.tar", 40)
    keep, layout = np.arange(0, 40, 3), record_layout(str(source))
    expected = _copied(source, keep)[0]
    name = "writev" if shard_in == "page cache" else "copy_file_range"
    real, calls, allowed = getattr(os, name), [], 0 if name == "writev" else 3

    def killed(fd, *args):
        calls.append(1)
        if len(calls) <= allowed:
            return real(fd, *args)
        if name == "writev":
            real(fd, args[0][:2])
        raise KeyboardInterrupt

    folder = Folder(str(tmp_path / "out"))
    monkeypatch.setattr(os, name, killed)
    with pytest.raises(KeyboardInterrupt), folder.open_atomic("00000.tar") as stream:
        copy_kept(str(source), keep, stream, layout=layout)
    assert list((tmp_path / "out").iterdir()) == [] and len(calls) == allowed + 1
    monkeypatch.setattr(os, name, real)
    with folder.open_atomic("00000.tar") as stream:
        copy_kept(str(source), keep, stream, layout=layout)
    assert (tmp_path / "out" / "00000.tar").read_bytes() == expected


def test_kept_runs_go_in_windows_of_about_a_window_of_bytes(monkeypatch):
    monkeypatch.setattr(shards.copier, "_WINDOW", 100)
    windows = shards.copier._windows
    assert windows(np.array([30, 30, 30, 30, 200, 10, 10])) == [(0, 4), (4, 5), (5, 7)]
    assert windows(np.array([5])) == [(0, 1)] and windows(np.array([], dtype=np.int64)) == []


def _rss_file_kb() -> int:
    """Pages of mapped files this process holds, in kB (`RssFile`)."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"RssFile:\s+(\d+) kB", status).group(1))


def test_a_cached_shard_is_copied_a_window_at_a_time(tmp_path, monkeypatch):
    """Its pages count in the RSS only while their window is copied (a Dask worker's memory
    limit reads the RSS); the bytes are those of one window, and a changed member in a
    later window is still refused."""
    source = tmp_path / "big.tar"
    with wds.TarWriter(str(source)) as sink:  # about 8 MB
        for i in range(64):
            sink.write({"__key__": f"{i:06d}", "jpg": RNG.bytes(120_000 + 7 * i), "txt": "c"})
    layout = record_layout(str(source))
    keep = np.arange(0, 64, 3)
    expected = _to_file(tmp_path / "one.tar", source, keep, layout)[0]
    monkeypatch.setattr(shards.copier, "_in_page_cache", lambda fd, offsets: True)
    monkeypatch.setattr(shards.copier, "_WINDOW", 256 << 10)
    real_flush, peaks = shards.copier._Sink.flush, []

    def flush(self):
        peaks.append(_rss_file_kb())
        real_flush(self)

    monkeypatch.setattr(shards.copier._Sink, "flush", flush)
    before = _rss_file_kb()
    assert _to_file(tmp_path / "out.tar", source, keep, layout)[0] == expected
    assert len(peaks) > 10 and max(peaks) - before < 1024  # kB: a window, not the 8 MB shard
    data = bytearray(source.read_bytes())
    at = int(layout.header[layout.sample == 60][0])
    data[at] ^= 1  # the name of a member in the last window
    _same_stat(source, bytes(data))
    with pytest.raises(CurateError, match=rf"the member at byte {at} is no longer"):
        _to_file(tmp_path / "out.tar", source, keep, layout)


def test_windows_and_chunks_of_any_size_give_the_rule_bytes(tmp_path, monkeypatch, shard_in):
    """Cut between any two runs (a window) or members (a chunk), verbatim and normalised
    members still come out as the rule says: padding never lost or doubled at a cut."""
    monkeypatch.setattr(shards.copier, "_WINDOW", 1)  # every run its own window
    monkeypatch.setattr(shards.copier, "_CHUNK", 2)
    for label, path in _shards(tmp_path).items():
        for keep in _keeps(_layout(path).samples):
            data, method = _to_file(tmp_path / "out.tar", path, keep)
            assert method == "index" and data == _rule_bytes(path, keep), (label, keep)


_CUT_WHILE_COPIED = """
import sys, os, numpy as np
import shards.copier as copier
source, out, when = sys.argv[1:]
layout = copier.record_layout(source)
mapped = copier._LocalTar.mapped

def probe_then_cut(fd, offsets):
    if when == "before the map":
        os.truncate(source, 4096)
    return True

def map_then_cut(self):
    found = mapped(self)
    if when == "after the map":
        os.truncate(source, 4096)
    return found

copier._in_page_cache, copier._LocalTar.mapped = probe_then_cut, map_then_cut
try:
    with open(out, "wb") as f:
        copier.copy_kept(source, np.arange(40), f, layout=layout)
except copier.CurateError as exc:
    print(exc)
"""


@pytest.mark.parametrize("when", ["before the map", "after the map"])
def test_a_shard_cut_short_while_it_is_copied_is_an_error_not_a_crash(tmp_path, when):
    """Past a file's end a view of its map is short (a short output) and a read kills the
    process (SIGBUS): the map's length is checked, and the populate sees a cut made after the
    map. In a child process, so that a crash fails this test, not the suite."""
    source = _webdataset_shard(tmp_path / "wds.tar", 40)
    child = subprocess.run(
        [sys.executable, "-c", _CUT_WHILE_COPIED, str(source), str(tmp_path / "out.tar"), when],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr
    assert child.stdout.startswith(f"shard {source} changed "), child.stdout
