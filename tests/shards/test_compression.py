"""Compressed shards, recognised by their magic bytes as webdataset and `tarfile` read them,
give the same samples as the plain tar; a cut or corrupt stream is damage, not a traceback."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma

import numpy as np
import pytest

from shards import compression
from shards.compression import compression_of
from shards.tario import ShardFormatError, iter_samples
from tests.shards.tarbuild import written

MEMBERS = [
    (f"{k:03d}.{ext}", f"{k}-{ext}".encode() * 40) for k in range(6) for ext in ("jpg", "txt")
]
PLAIN = written(MEMBERS)
COMPRESS = {
    "gzip": lambda data: gzip.compress(data, mtime=0),
    "xz": lzma.compress,
    "bzip2": lambda data: bz2.compress(data, compresslevel=1),  # 100 kB blocks
}
# Incompressible members, 500 kB in all: bzip2 decodes whole blocks, so a cut only keeps
# what lies in the blocks before it.
_RNG = np.random.default_rng(3)
LARGE = written(
    [(f"{k:03d}.{ext}", _RNG.bytes(20_000)) for k in range(25) for ext in ("jpg", "txt")]
)


def _read(data: bytes) -> list[tuple[str, list]]:
    return [
        (s.key, [(m.name, bytes(m.data)) for m in s.members])
        for s in iter_samples(io.BytesIO(data))
    ]


class _Unbuffered:
    """A stream without `peek` (as some remote files are)."""

    def __init__(self, data: bytes):
        self._stream = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._stream.read(n)


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_compressed_shards_give_the_plain_samples(kind):
    data = COMPRESS[kind](PLAIN)
    assert compression_of(data[:10]) == kind
    assert _read(data) == _read(PLAIN)
    samples = [s.key for s in iter_samples(_Unbuffered(data))]
    assert samples == [s for s, _ in _read(PLAIN)]


@pytest.mark.parametrize("kind", sorted(COMPRESS))
def test_a_cut_compressed_stream_keeps_the_samples_before_the_cut(kind):
    data = COMPRESS[kind](LARGE)
    samples = []
    with pytest.raises(ShardFormatError, match=r"unreadable data|truncated"):
        for sample in iter_samples(io.BytesIO(data[: len(data) * 2 // 3])):
            samples.append(sample)
    plain = _read(LARGE)
    intact = [(s.key, [(m.name, bytes(m.data)) for m in s.members]) for s in samples if not s.error]
    assert intact, "samples before the cut are read"
    for (key, members), (plain_key, plain_members) in zip(intact, plain, strict=False):
        assert key == plain_key  # a cut between members keeps the sample read so far
        assert members == plain_members[: len(members)]


def test_corrupt_deflate_data_is_damage_not_a_zlib_traceback():
    data = bytearray(COMPRESS["gzip"](PLAIN))
    data[20:28] = b"\xff" * 8  # inside the first deflate block: zlib.error, not an OSError
    with pytest.raises(ShardFormatError, match="unreadable data"):
        list(iter_samples(io.BytesIO(bytes(data))))


def test_a_plain_tar_whose_first_name_looks_like_a_magic_is_read_plain():
    data = written([("BZh91AY.jpg", b"x"), ("\x1f.txt", b"y")])
    assert compression_of(data[:10]) is None
    assert [s.key for s in iter_samples(io.BytesIO(data))] == ["BZh91AY", "\x1f"]


def test_zstd_without_zstandard_fails_the_shard_with_the_reason(monkeypatch):
    monkeypatch.setattr(compression, "zstandard", None)
    with pytest.raises(ShardFormatError, match="install the zstandard module"):
        list(iter_samples(io.BytesIO(compression.ZSTD_MAGIC + bytes(100))))


def test_zstd_shards_give_the_plain_samples():
    zstandard = pytest.importorskip("zstandard")
    data = zstandard.ZstdCompressor().compress(PLAIN)
    assert _read(data) == _read(PLAIN)
