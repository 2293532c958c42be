"""Streaming tar reading and deterministic tar writing, without decoding any member.

A small reader of our own (rather than `tarfile`'s stream mode) because resharding is a byte
copy: parsing each 512-byte header and slicing the data is all the work there is, and owning
the loop lets a truncated or corrupt shard keep every sample before the damage.
"""

from __future__ import annotations

import gzip
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

BLOCK = 512
RECORD = 20 * BLOCK
FIXED_MTIME = 0
GZIP_MAGIC = b"\x1f\x8b"
_REGULAR = {tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE}
_KEY_RE = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")
_ZERO_BLOCK = bytes(BLOCK)
_USTAR_MAX_SIZE = 8**11 - 1
# Fields of our fixed ustar header around name, size and checksum: mode 0644, uid/gid 0,
# mtime FIXED_MTIME, regular file, empty link name, owner names and device numbers (as
# `tarfile` writes them, so both give the same bytes).
_MODE_IDS = b"0000644\0" + b"0000000\0" * 2
_MTIME = b"%011o\0" % FIXED_MTIME
_AFTER_CHECKSUM = b"0" + bytes(100) + b"ustar\x0000" + bytes(80 + 155 + 12)
_TAIL_SUM = sum(_AFTER_CHECKSUM)


class ShardFormatError(Exception):
    """The tar stream is damaged; everything read before `offset` is intact. `member` names
    the regular file whose data was cut short, when its header was still readable."""

    def __init__(self, message: str, offset: int, member: str | None = None):
        super().__init__(f"{message} at byte {offset}")
        self.offset = offset
        self.member = member


@dataclass(frozen=True)
class Member:
    name: str
    data: bytes  # a memoryview when read through MemoryReader


@dataclass
class Sample:
    """The members sharing one webdataset key, in archive order."""

    key: str
    position: int
    members: list[Member] = field(default_factory=list)
    error: str | None = None

    def get(self, *extensions: str) -> Member | None:
        """The first member whose (lower-cased) last suffix is one of `extensions`: a key
        with dots (`photo.v2.jpg` is key `photo`, extension `v2.jpg`) still has its image
        found, as webdataset's decoders dispatch on the last suffix."""
        wanted = {e.lower() for e in extensions}
        for member in self.members:
            if split_key(member.name)[1].lower().rsplit(".", 1)[-1] in wanted:
                return member
        return None

    @property
    def unsafe_names(self) -> list[str]:
        return [m.name for m in self.members if not is_safe_name(m.name)]

    @property
    def nbytes(self) -> int:
        return sum(len(m.data) for m in self.members)


def split_key(name: str) -> tuple[str, str]:
    """webdataset's rule: the key is the path up to the first dot of the file name."""
    match = _KEY_RE.match(name)
    if match is None:
        return name, ""
    return match.group(1), match.group(2)


def is_safe_name(name: str) -> bool:
    """A relative path that stays inside the folder it is extracted to: no absolute path,
    no `..` component. Members named otherwise are never copied into an output shard."""
    return (
        bool(name) and not name.startswith("/") and "\0" not in name
        and ".." not in name.split("/")
    )  # fmt: skip


class _Prefixed:
    """A reader that replays bytes already consumed (for sniffing gzip magic)."""

    def __init__(self, prefix: bytes, stream: BinaryIO):
        self._prefix = prefix
        self._stream = stream

    def read(self, n: int) -> bytes:
        if self._prefix:
            head, self._prefix = self._prefix[:n], self._prefix[n:]
            if len(head) == n:
                return head
            return head + self._stream.read(n - len(head))
        return self._stream.read(n)


class MemoryReader:
    """Reads over a buffer (an mmap of a local shard) that return views, not copies: the
    reshard copy then moves each kept member's bytes once, from the page cache to the output,
    and never touches a pruned member's data."""

    def __init__(self, buffer) -> None:
        self._view = memoryview(buffer)
        self._pos = 0

    def read(self, n: int) -> memoryview:
        chunk = self._view[self._pos : self._pos + n]
        self._pos += len(chunk)
        return chunk

    def peek(self, n: int = 1) -> bytes:
        return bytes(self._view[self._pos : self._pos + n])

    def release(self) -> None:
        """Let the buffer close: no view of it may be used after this."""
        self._view.release()


def _maybe_gunzip(stream: BinaryIO) -> BinaryIO:
    if hasattr(stream, "peek"):  # buffered: look without consuming
        if stream.peek(2)[:2] == GZIP_MAGIC:
            return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[arg-type]
        return stream
    magic = stream.read(2)
    replay = _Prefixed(magic, stream)
    if magic == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=replay, mode="rb")  # type: ignore[arg-type]
    return replay  # type: ignore[return-value]


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    data = stream.read(n)
    if len(data) == n or not data:
        return data
    chunks = [data]
    got = len(data)
    while got < n:
        more = stream.read(n - got)
        if not more:
            break
        chunks.append(more)
        got += len(more)
    return b"".join(chunks)


def _pax_path(data: bytes) -> str | None:
    """The `path` record of a pax extended header, if any."""
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            return None
        length = int(data[pos:space])
        record = data[space + 1 : pos + length - 1]
        keyword, _, value = record.partition(b"=")
        if keyword == b"path":
            return value.decode("utf-8", "surrogateescape")
        pos += length
    return None


def _octal(field: bytes) -> int:
    """A numeric header field: octal text, or base-256 when the high bit is set (GNU)."""
    if field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    digits = field.split(b"\0", 1)[0].strip()
    return int(digits, 8) if digits else 0


def _parse_header(header: bytes) -> tuple[str, int, bytes]:
    """(name, size, type) of a ustar/GNU/v7 header; checksum verified. Written out rather
    than with `tarfile.TarInfo.frombuf`, which costs as much as copying a 30 KB member."""
    try:
        stored = _octal(header[148:156])
        size = _octal(header[124:136])
    except ValueError as exc:
        raise tarfile.InvalidHeaderError("bad number field") from exc
    if stored != sum(header) - sum(header[148:156]) + 256:
        raise tarfile.InvalidHeaderError("bad checksum")
    name = header[:100].split(b"\0", 1)[0]
    if header[257:263] == b"ustar\0" and header[345] != 0:
        name = header[345:500].split(b"\0", 1)[0] + b"/" + name
    return name.decode("utf-8", "surrogateescape"), size, header[156:157]


def iter_members(stream: BinaryIO) -> Iterator[Member]:
    """Regular-file members in archive order; plain or gzip-compressed tar.

    Raises ShardFormatError after yielding every member that precedes the damage.
    """
    stream = _maybe_gunzip(stream)
    offset = 0
    long_name: str | None = None
    while True:
        try:
            header = _read_exact(stream, BLOCK)
        except (OSError, EOFError) as exc:  # gzip stream cut short
            raise ShardFormatError(f"unreadable data ({exc})", offset) from exc
        if not header or header == _ZERO_BLOCK:
            return
        if len(header) < BLOCK:
            raise ShardFormatError("truncated header", offset)
        try:
            header_name, size, kind = _parse_header(bytes(header))
        except tarfile.HeaderError as exc:
            raise ShardFormatError(f"invalid tar header ({exc})", offset) from exc
        name = (long_name or header_name) if kind in _REGULAR else None
        try:
            data = _read_exact(stream, size)
            _read_exact(stream, -size % BLOCK)
        except (OSError, EOFError) as exc:
            raise ShardFormatError(f"unreadable data ({exc})", offset, name) from exc
        if len(data) < size:
            raise ShardFormatError(f"truncated member {name!r}", offset, name)
        offset += BLOCK + size + (-size % BLOCK)
        if kind == tarfile.GNUTYPE_LONGNAME:
            long_name = bytes(data).rstrip(b"\0").decode("utf-8", "surrogateescape")
        elif kind == tarfile.XHDTYPE:
            long_name = _pax_path(bytes(data)) or long_name
        elif kind in _REGULAR:
            yield Member(name, data)
            long_name = None
        elif kind != tarfile.XGLTYPE:
            long_name = None


class _Grouper:
    """webdataset's grouping: consecutive members with one key form a sample; a repeated
    extension starts a new sample, so a key written twice in a row stays two samples."""

    def __init__(self) -> None:
        self.current: Sample | None = None
        self._seen: set[str] = set()
        self._position = -1

    def place(self, name: str) -> Sample | None:
        """Make the sample of member `name` current; return the sample this closes, if any."""
        key, ext = split_key(name)
        if self.current is not None and key == self.current.key and ext not in self._seen:
            self._seen.add(ext)
            return None
        closed, self._position = self.current, self._position + 1
        self.current, self._seen = Sample(key, self._position), {ext}
        return closed


def iter_samples(stream: BinaryIO) -> Iterator[Sample]:
    """Samples in shard order, grouped by key as webdataset does.

    On damage, ShardFormatError is raised after every intact sample. When the damage cuts a
    member's data, the sample that member belongs to is yielded with `error` set (a member
    that starts a new sample leaves the one before it whole); damage between members leaves
    the sample read so far intact, as webdataset would read it.
    """
    group = _Grouper()
    try:
        for member in iter_members(stream):
            if (closed := group.place(member.name)) is not None:
                yield closed
            group.current.members.append(member)
    except ShardFormatError as exc:
        if exc.member is not None:
            if (closed := group.place(exc.member)) is not None:
                yield closed
            group.current.error = f"shard damaged while reading this sample: {exc}"
        if group.current is not None:
            yield group.current
        raise
    if group.current is not None:
        yield group.current


def _ustar_header(name: str, size: int) -> bytes | None:
    """The header `tarfile` writes for these fields, built directly; None when the name (not
    plain ASCII, or over 100 bytes) or the size needs pax records."""
    if len(name) > 100 or not name.isascii() or size > _USTAR_MAX_SIZE:
        return None
    head = name.encode().ljust(100, b"\0") + _MODE_IDS + b"%011o\0" % size + _MTIME
    checksum = sum(head) + _TAIL_SUM + 8 * 32
    return head + b"%06o\0 " % checksum + _AFTER_CHECKSUM


def _pax_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = FIXED_MTIME
    info.mode = 0o644
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class TarWriter:
    """Writes members with fixed metadata (mtime, owner, mode) so equal input gives equal bytes.

    Headers, data and padding are gathered and written in batches of about 4 MB: one write
    call per batch instead of three per member."""

    BATCH = 4 << 20

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self._pending: list = []
        self._pending_bytes = 0
        self.bytes_written = 0

    def add(self, name: str, data: bytes) -> None:
        if not is_safe_name(name):
            raise ValueError(f"unsafe tar member name {name!r}")
        self._write(_ustar_header(name, len(data)) or _pax_header(name, len(data)))
        self._write(data)
        if len(data) % BLOCK:
            self._write(bytes(BLOCK - len(data) % BLOCK))

    def add_sample(self, sample: Sample) -> None:
        for member in sample.members:
            self.add(member.name, member.data)

    def close(self) -> None:
        """End-of-archive blocks, padded to a whole record as tar(1) writes it."""
        self._write(bytes(2 * BLOCK))
        if self.bytes_written % RECORD:
            self._write(bytes(RECORD - self.bytes_written % RECORD))
        self.flush()

    def _write(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_bytes += len(data)
        self.bytes_written += len(data)
        if self._pending_bytes >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        """Write what is gathered (before the buffers its views point into go away)."""
        self._stream.write(b"".join(self._pending))
        self._pending.clear()
        self._pending_bytes = 0
