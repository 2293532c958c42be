"""Tars for tests: written with `tarfile` in each format, or block by block for the hostile
cases `tarfile` will not write."""

from __future__ import annotations

import io
import tarfile

BLOCK = 512

KINDS = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.CONTTYPE: "file",
    tarfile.SYMTYPE: "symbolic link",
    tarfile.LNKTYPE: "hard link",
    tarfile.DIRTYPE: "directory",
    tarfile.FIFOTYPE: "fifo",
    tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
    tarfile.GNUTYPE_SPARSE: "GNU sparse file",
}


def kind_of(info: tarfile.TarInfo) -> str:
    """Our name for the type `tarfile` gives a member."""
    if info.issparse():
        return "GNU sparse file"
    return KINDS.get(info.type, f"tar type {info.type.decode('latin-1')!r}")


def tarfile_listing(data: bytes) -> list[tuple[str, str, int]]:
    """(name, kind, size) of every member `tarfile` lists."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [(m.name, kind_of(m), m.size) for m in tar.getmembers()]


def written(
    members: list[tarfile.TarInfo | tuple[str, bytes]],
    fmt: int = tarfile.PAX_FORMAT,
    encoding: str = "utf-8",
    pax_headers: dict[str, str] | None = None,
) -> bytes:
    """A tar `tarfile` writes: TarInfo members as given (no data), (name, data) as files."""
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer, mode="w", format=fmt, encoding=encoding, pax_headers=pax_headers
    ) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
                continue
            name, data = member
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def header(
    name: bytes,
    size: int = 0,
    kind: bytes = b"0",
    *,
    size_field: bytes | None = None,
    prefix: bytes = b"",
    extra: dict[int, bytes] | None = None,
    checksum: bytes | None = None,
) -> bytes:
    """One ustar header block with a right checksum, unless `checksum` says otherwise;
    `extra` puts bytes at offsets (for fields not named here)."""
    block = bytearray(BLOCK)
    block[0:100] = name.ljust(100, b"\0")[:100]
    block[100:124] = b"0000644\0" + b"0000000\0" * 2
    block[124:136] = b"%011o\0" % size if size_field is None else size_field
    block[136:148] = b"%011o\0" % 0
    block[156:157] = kind
    block[257:265] = b"ustar\x0000"
    block[345:500] = prefix.ljust(155, b"\0")
    for offset, value in (extra or {}).items():
        block[offset : offset + len(value)] = value
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block) if checksum is None else checksum
    return bytes(block)


def padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % BLOCK)


def member(name: bytes, data: bytes = b"", kind: bytes = b"0", **fields) -> bytes:
    """A header and its data, padded; `fields` as for `header`."""
    return header(name, len(data), kind, **fields) + padded(data)


def pax(records: bytes, kind: bytes = b"x") -> bytes:
    """A pax extended (or, with kind "g", global) header holding `records` as they are."""
    return member(b"././@PaxHeader", records, kind)


def record(keyword: str, value: bytes) -> bytes:
    """One well-formed pax record."""
    body = b" " + keyword.encode() + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length).encode() + body) != length:
        length += 1
    return str(length).encode() + body


def archive(*parts: bytes, end: bool = True) -> bytes:
    """Parts in order, then the two zero blocks that end an archive."""
    return b"".join(parts) + (bytes(2 * BLOCK) if end else b"")
