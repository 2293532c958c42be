"""One 512-byte tar header block, and the pax records that may precede it, decoded the way
Python's `tarfile` decodes them, with every hostile field an error instead of a hang.

Pure functions over bytes: the streaming reader (`shards.tario`) and the index of a mapped
shard (`shards.tarindex`) both rest on them.
"""

from __future__ import annotations

import struct
import tarfile
import zlib
from dataclasses import dataclass

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)
# pax keywords that change what the reader reports (the member's name, how many data bytes
# follow, whether it is a sparse file); every other keyword is metadata we never copy.
PATH_KEYWORD = b"path"
SIZE_KEYWORD = b"size"
SPARSE_PREFIX = b"GNU.sparse."
_SIGNED = struct.Struct("148b8x356b")


class HeaderError(ValueError):
    """A header block that cannot be decoded: where the next member starts is unknown."""


class PaxError(ValueError):
    """A pax extended header whose records cannot all be read."""


@dataclass(frozen=True)
class Header:
    name: bytes  # as `tarfile` joins it: ustar prefix, "/", name; no trailing "/" on directories
    size: int  # the size field
    kind: bytes  # the type flag; an old-style directory (regular type, trailing "/") is DIRTYPE
    sparse_size: int | None = None  # an old GNU sparse file's real size
    sparse_extended: bool = False  # an old GNU sparse header continued in the next block


def number(field: bytes) -> int:
    """A numeric field as `tarfile` reads it: octal text, or GNU base-256 (first byte 0x80 for
    a positive number, 0xff for a negative one, big-endian)."""
    lead = field[0]
    if lead == 0x80:
        return int.from_bytes(field[1:], "big")
    if lead == 0xFF:
        return int.from_bytes(field, "big", signed=True)
    text = bytes(field).split(b"\0", 1)[0].strip()
    try:
        return int(text or b"0", 8)
    except ValueError:
        raise HeaderError(f"bad number field {bytes(field)!r}") from None


def byte_sum(block: bytes) -> int:
    """sum(block), fast for ASCII blocks (almost every header): a sum of bytes below 128 over
    512 bytes is under 65521, so Adler-32's first half is exactly it."""
    if block.isascii():
        return ((zlib.adler32(block) & 0xFFFF) - 1) % 65521
    return sum(block)


def checksum_ok(block: bytes) -> bool:
    """The stored checksum is the sum of the block with its checksum field read as spaces;
    like `tarfile`, also accept the signed-byte sum some old tars wrote."""
    stored = number(block[148:156])
    unsigned = byte_sum(block) - byte_sum(block[148:156]) + 8 * 32
    return stored == unsigned or stored == sum(_SIGNED.unpack(block)) + 8 * 32


def _text(field: bytes) -> bytes:
    return field.split(b"\0", 1)[0]


def parse_header(block: bytes) -> Header:
    """The fields the reader needs; raises HeaderError for a bad checksum or number field."""
    if not checksum_ok(block):
        raise HeaderError("bad checksum")
    kind = block[156:157]
    name = _text(block[0:100])
    if kind == tarfile.AREGTYPE and name.endswith(b"/"):
        kind = tarfile.DIRTYPE
    if kind == tarfile.DIRTYPE:
        name = name.rstrip(b"/")
    prefix = _text(block[345:500])
    if prefix and kind not in tarfile.GNU_TYPES:
        name = prefix + b"/" + name
    sparse_size = number(block[483:495]) if kind == tarfile.GNUTYPE_SPARSE else None
    return Header(name, number(block[124:136]), kind, sparse_size, bool(block[482]))


def parse_pax(data: bytes) -> dict[bytes, bytes]:
    """Records of a pax extended header, `LENGTH keyword=value\\n` each, LENGTH counting the
    whole record. Raises PaxError at the first record that is not one; every record read moves
    past at least its own length digits, so no input loops."""
    records: dict[bytes, bytes] = {}
    pos, end = 0, len(data)
    while pos < end:
        if not data[pos:].strip(b"\0"):  # NUL padding after the last record
            break
        space = data.find(b" ", pos, pos + 20)
        digits = data[pos:space] if space > pos else b""
        if not digits.isdigit():
            raise PaxError(f"pax record at byte {pos} does not start with its length")
        stop = pos + int(digits)
        if stop <= space + 1 or stop > end or data[stop - 1] != 0x0A:
            raise PaxError(f"pax record at byte {pos} has a wrong length ({int(digits)})")
        keyword, equals, value = data[space + 1 : stop - 1].partition(b"=")
        if not equals or not keyword:
            raise PaxError(f"pax record at byte {pos} has no keyword=value")
        records[keyword] = value
        pos = stop
    return records


def relevant(records: dict[bytes, bytes]) -> dict[bytes, bytes]:
    """The records that change what the reader reports (a bounded set, so a run of global
    headers cannot grow memory)."""
    return {
        k: v
        for k, v in records.items()
        if k in (PATH_KEYWORD, SIZE_KEYWORD) or k.startswith(SPARSE_PREFIX)
    }


def sparse_extension_continues(block: bytes) -> bool:
    """Whether an old GNU sparse extension block is followed by another."""
    return bool(block[504])
