"""Streaming tar reading and deterministic tar writing, without decoding any member.

A small reader of our own (rather than `tarfile`'s stream mode) because resharding is a byte
copy: parsing each 512-byte header and slicing the data is all the work there is, and owning
the loop lets a damaged shard keep every sample before the damage.

What the reader yields (`iter_members`): every member `tarfile` lists, in archive order, with
the name, size and type `tarfile` gives it (pax `path`, GNU long names and the ustar prefix
applied). Regular files carry their data; directories, symbolic and hard links, devices and
fifos carry none (as in `tarfile`, no data blocks follow them); GNU sparse files and members of
unknown type have their stored data skipped. Pax and GNU long-name headers are not members.
`iter_samples` groups the members as webdataset does (`shards.grouping`): directories belong
to no sample; a sample holding any other member that is not a regular file fails, naming the
member and its type. Names keep their exact bytes (not UTF-8: surrogate escapes) and
`Sample.key` is shown safely (`shards.members.display_name`).

Hostile input never hangs and never fails more than it must:
- a header that cannot be decoded (bad checksum, a number field that is not a number, a
  negative size, a cut) makes the shard damaged from there: `ShardFormatError` after every
  sample before it;
- damage confined to one member fails only its sample: a malformed pax record (its data are
  skipped by the header's size), data over the member's size limit (`shards.members`: skipped
  in chunks from a stream, by offset on a memory map, never held), an oversized pax header;
- every loop over header data advances: pax records by their length, headers by whole blocks.

Plain, gzip, xz and bzip2 tars are read alike (`shards.compression`), zstd when `zstandard`
is installed.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from typing import BinaryIO

from shards.compression import DECODE_ERRORS, UnsupportedCompression, decompressed
from shards.grouping import Grouper
from shards.members import (
    DIRECTORY,
    FILE,
    SPARSE,
    Member,
    MiB,
    Sample,
    display_name,
    is_safe_name,
    limit_problem,
)
from shards.tarheader import (
    BLOCK,
    PATH_KEYWORD,
    SIZE_KEYWORD,
    SPARSE_PREFIX,
    ZERO_BLOCK,
    Header,
    HeaderError,
    PaxError,
    parse_header,
    parse_pax,
    relevant,
    sparse_extension_continues,
)

RECORD = 20 * BLOCK
FIXED_MTIME = 0
META_LIMIT = 1 * MiB  # the largest pax header or GNU long name read
_SKIP_CHUNK = 1 * MiB
_REGULAR = {tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE}
_PAX = {tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE}
_GNU_LONG = {tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK}
# Types after which `tarfile` reads no data blocks, whatever the size field says.
_NO_DATA = {
    tarfile.LNKTYPE: "hard link",
    tarfile.SYMTYPE: "symbolic link",
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.DIRTYPE: DIRECTORY,
    tarfile.FIFOTYPE: "fifo",
}
_SPARSE_NAME = b"GNU.sparse.name"
_SPARSE_SIZES = (b"GNU.sparse.realsize", b"GNU.sparse.size")
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
    the member whose data was cut short, when its header was still readable."""

    def __init__(self, message: str, offset: int, member: str | None = None):
        super().__init__(f"{message} at byte {offset}")
        self.offset = offset
        self.member = member


class MemoryReader:
    """Reads over a buffer (a memory-mapped plain tar) that return views, not copies: a kept
    member's bytes are copied once, into the output, and skipped data are never touched."""

    def __init__(self, buffer) -> None:
        self._view = memoryview(buffer)
        self._pos = 0

    def read(self, n: int) -> memoryview:
        chunk = self._view[self._pos : self._pos + n]
        self._pos += len(chunk)
        return chunk

    def skip(self, n: int) -> int:
        skipped = min(n, len(self._view) - self._pos)
        self._pos += skipped
        return skipped

    def peek(self, n: int = 1) -> bytes:
        return bytes(self._view[self._pos : self._pos + n])

    def release(self) -> None:
        """Let the buffer close: no view of it may be used after this."""
        self._view.release()


class _Stream:
    """Exact reads and chunked skips over a (decompressed) stream."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream

    def read(self, n: int) -> bytes:
        data = self._stream.read(n)
        if len(data) == n or not data:
            return data
        chunks = [data]
        got = len(data)
        while got < n:
            more = self._stream.read(n - got)
            if not more:
                break
            chunks.append(more)
            got += len(more)
        return b"".join(chunks)

    def skip(self, n: int) -> int:
        skipped = 0
        while skipped < n:
            got = len(self._stream.read(min(_SKIP_CHUNK, n - skipped)))
            if not got:
                break
            skipped += got
        return skipped


class _Walk:
    """The header-by-header walk behind `iter_members`: where it is, and what the pax and GNU
    long-name headers read so far say about the next member."""

    def __init__(self, source: MemoryReader | _Stream):
        self.source = source
        self.offset = 0  # of the next block in the (decompressed) tar stream
        self.start = 0  # of the header being read
        self.global_records: dict[bytes, bytes] = {}
        self._reset()

    def _reset(self) -> None:
        self.records: dict[bytes, bytes] = {}
        self.long_name: bytes | None = None
        self.problem: str | None = None

    def members(self) -> Iterator[Member]:
        while (header := self._header()) is not None:
            if header.kind in _PAX or header.kind in _GNU_LONG:
                self._meta(header)
            else:
                yield self._member(header)

    def _io(self, call, n: int, member: str | None):
        try:
            return call(n)
        except DECODE_ERRORS as exc:
            raise ShardFormatError(f"unreadable data ({exc})", self.start, member) from exc

    def _read(self, n: int, member: str | None = None):
        data = self._io(self.source.read, n, member)
        self.offset += len(data)
        return data

    def _skip(self, n: int, member: str | None = None) -> int:
        skipped = self._io(self.source.skip, n, member)
        self.offset += skipped
        return skipped

    def _header(self) -> Header | None:
        self.start = self.offset
        block = self._read(BLOCK)
        if not block or block == ZERO_BLOCK:
            return None
        if len(block) < BLOCK:
            raise ShardFormatError("truncated header", self.start)
        try:
            header = parse_header(bytes(block))
        except HeaderError as exc:
            raise ShardFormatError(f"invalid tar header ({exc})", self.start) from exc
        if header.size < 0:
            raise ShardFormatError(f"invalid tar header (negative size {header.size})", self.start)
        return header

    def _data(self, size: int, name: str | None, keep: bool):
        """The `size` data bytes that follow (None when not `keep`: skipped), then padding."""
        if keep:
            data = self._read(size, name)
            got = len(data)
        else:
            data, got = None, self._skip(size, name)
        if got < size:
            what = "pax or long-name header" if name is None else display_name(name)
            raise ShardFormatError(f"truncated member {what!r}", self.start, name)
        self._skip(-size % BLOCK, name)
        return data

    def _meta(self, header: Header) -> None:
        """A pax header or GNU long name: notes for the next member (or all, if global)."""
        what = "GNU long name" if header.kind in _GNU_LONG else "pax header"
        if header.size > META_LIMIT:
            self._data(header.size, None, keep=False)
            self.problem = self.problem or (
                f"its {what} is {header.size:,} bytes, over the {META_LIMIT // MiB} MiB limit"
            )
            return
        data = bytes(self._data(header.size, None, keep=True))
        if header.kind == tarfile.GNUTYPE_LONGNAME:
            self.long_name = data.split(b"\0", 1)[0]
        elif header.kind in _PAX:
            try:
                records = relevant(parse_pax(data))
            except PaxError as exc:
                self.problem = self.problem or f"its {what} is malformed: {exc}"
                return
            target = self.global_records if header.kind == tarfile.XGLTYPE else self.records
            target.update(records)

    def _member(self, header: Header) -> Member:
        records = {**self.global_records, **self.records}
        raw = records.get(_SPARSE_NAME) or records.get(PATH_KEYWORD, b"").rstrip(b"/")
        name = (raw or self.long_name or header.name).decode("utf-8", "surrogateescape")
        problem = self.problem and f"member {display_name(name)}: {self.problem}"
        self._reset()
        if header.kind in _NO_DATA:
            return self._without_data(header, name, problem)
        stored = self._stored_size(header, records)
        sparse = any(k.startswith(SPARSE_PREFIX) for k in records)
        if sparse or header.kind == tarfile.GNUTYPE_SPARSE:
            return self._sparse(header, name, stored, records)
        if header.kind not in _REGULAR:
            self._data(stored, name, keep=False)
            kind = f"tar type {header.kind.decode('latin-1')!r}"
            return Member(name, b"", kind, stored, problem or _not_regular(name, kind))
        problem = problem or limit_problem(name, stored)
        data = self._data(stored, name, keep=problem is None)
        return Member(name, b"" if data is None else data, FILE, stored, problem)

    def _stored_size(self, header: Header, records: dict[bytes, bytes]) -> int:
        """Data bytes in the archive: the pax `size` record overrides the header's field."""
        value = records.get(SIZE_KEYWORD)
        if value is None:
            return header.size
        if not value.isdigit():
            raise ShardFormatError(f"invalid pax size record {value[:40]!r}", self.start)
        return int(value)

    def _without_data(self, header: Header, name: str, problem: str | None) -> Member:
        kind = _NO_DATA[header.kind]
        if kind != DIRECTORY:
            problem = problem or _not_regular(name, kind)
        return Member(name, b"", kind, header.size, problem)

    def _sparse(self, header: Header, name: str, stored: int, records: dict) -> Member:
        """Listed with its real size, as `tarfile` does, and failed: curate copies bytes, and
        expanding holes is not a copy."""
        extended = header.sparse_extended
        while extended:  # old GNU format: more sparse maps, one block each, before the data
            block = self._read(BLOCK, name)
            if len(block) < BLOCK:
                what = f"truncated member {display_name(name)!r}"
                raise ShardFormatError(what, self.start, name)
            extended = sparse_extension_continues(block)
        self._data(stored, name, keep=False)
        real = header.sparse_size
        for key in _SPARSE_SIZES:
            if records.get(key, b"").isdigit():
                real = int(records[key])
        problem = f"member {display_name(name)} is a {SPARSE}, which curate does not expand"
        return Member(name, b"", SPARSE, stored if real is None else real, problem)


def _not_regular(name: str, kind: str) -> str:
    return f"member {display_name(name)} is a {kind}, not a regular file: webdataset skips it"


def _open(stream: BinaryIO | MemoryReader) -> MemoryReader | _Stream:
    if isinstance(stream, MemoryReader):
        return stream
    try:
        return _Stream(decompressed(stream))
    except UnsupportedCompression as exc:
        raise ShardFormatError(str(exc), 0) from exc
    except DECODE_ERRORS as exc:
        raise ShardFormatError(f"unreadable data ({exc})", 0) from exc


def iter_members(stream: BinaryIO | MemoryReader) -> Iterator[Member]:
    """Every member `tarfile` lists, in archive order (see the module docstring); plain or
    compressed tar.

    Raises ShardFormatError after yielding every member that precedes the damage.
    """
    yield from _Walk(_open(stream)).members()


def iter_samples(stream: BinaryIO | MemoryReader) -> Iterator[Sample]:
    """Samples in shard order, grouped by key as webdataset does (`shards.grouping`).

    On damage, ShardFormatError is raised after every intact sample. When the damage cuts a
    member's data, the sample that member belongs to is yielded with `error` set (a member
    that starts a new sample leaves the one before it whole); damage between members leaves
    the sample read so far intact, as webdataset would read it.
    """
    group = Grouper()
    try:
        for member in iter_members(stream):
            if (closed := group.add(member)) is not None:
                yield closed
    except ShardFormatError as exc:
        closed = group.cut(exc.member, f"shard damaged while reading this sample: {exc}")
        if closed is not None:
            yield closed
        if (last := group.finish()) is not None:
            yield last
        raise
    if (last := group.finish()) is not None:
        yield last


def ustar_header(name: str, size: int) -> bytes | None:
    """The header `tarfile` writes for a member of ours (see `TarWriter`), built directly;
    None when the name (not plain ASCII, or over 100 bytes) or the size needs pax records."""
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

    This is the one definition of the form curate writes: per member, `ustar_header` (or
    `tarfile`'s pax header for names and sizes ustar cannot hold: a name that is not UTF-8
    then gets `hdrcharset=BINARY` and its exact bytes), the data, NUL padding to 512 bytes;
    at the end two zero blocks and NUL padding to a multiple of 10240 bytes.

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
        self._write(ustar_header(name, len(data)) or _pax_header(name, len(data)))
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
        """Write what is gathered; the gathered buffers (views into a memory map, perhaps) are
        let go even when the write fails."""
        try:
            self._stream.write(b"".join(self._pending))
        finally:
            self._pending.clear()
            self._pending_bytes = 0
