"""Compressed shards, recognised by their magic bytes as `tarfile` and webdataset read them:
gzip, xz and bzip2 always; zstd when the optional `zstandard` module is importable (curate does
not depend on it)."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from typing import BinaryIO

try:
    import zstandard
except ImportError:  # optional: a zstd shard then fails with a clear reason
    zstandard = None

GZIP_MAGIC = b"\x1f\x8b"
XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# "BZh", the block size digit, then the magic of a first block or of the end of the stream.
_BZ2_BLOCKS = (b"1AY&SY", b"\x17rE8P\x90")
MAGIC_BYTES = 10

# What a decoder raises on a corrupt or cut stream (zlib.error and LZMAError are not OSErrors).
DECODE_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error, lzma.LZMAError)
if zstandard is not None:
    DECODE_ERRORS += (zstandard.ZstdError,)


class UnsupportedCompression(ValueError):
    """A compression the shard uses that this installation cannot read."""


def compression_of(head: bytes) -> str | None:
    """ "gzip", "xz", "bzip2", "zstd", or None for a plain (uncompressed) stream."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(XZ_MAGIC):
        return "xz"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] in _BZ2_BLOCKS:
        return "bzip2"
    return None


class _Prefixed:
    """A reader that replays the bytes already consumed for sniffing."""

    def __init__(self, prefix: bytes, stream: BinaryIO):
        self._prefix = prefix
        self._stream = stream

    def read(self, n: int = -1) -> bytes:
        if not self._prefix:
            return self._stream.read(n)
        if n < 0:
            head, self._prefix = self._prefix, b""
            return head + self._stream.read()
        head, self._prefix = self._prefix[:n], self._prefix[n:]
        if len(head) == n:
            return head
        return head + self._stream.read(n - len(head))


def _decoder(kind: str, stream: BinaryIO) -> BinaryIO:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[arg-type]
    if kind == "xz":
        return lzma.LZMAFile(stream)
    if kind == "bzip2":
        return bz2.BZ2File(stream)
    if zstandard is None:
        raise UnsupportedCompression(
            "zstd-compressed shard: install the zstandard module (curate[zstd]) to read it"
        )
    return zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)


def decompressed(stream: BinaryIO) -> BinaryIO:
    """`stream` itself when it is plain, else a reader of its decompressed bytes."""
    if hasattr(stream, "peek"):  # buffered: look without consuming
        head = stream.peek(MAGIC_BYTES)[:MAGIC_BYTES]
        kind = compression_of(head)
        return stream if kind is None else _decoder(kind, stream)
    head = stream.read(MAGIC_BYTES)
    replay = _Prefixed(head, stream)
    kind = compression_of(head)
    return replay if kind is None else _decoder(kind, replay)  # type: ignore[return-value]
