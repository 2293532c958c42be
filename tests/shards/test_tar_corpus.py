"""Our reader lists every member Python's `tarfile` lists, with the same names, types and
sizes, over a corpus of tricky tars in USTAR, GNU and PAX formats and built by hand."""

from __future__ import annotations

import io
import tarfile

import pytest

from shards.tario import MemoryReader, iter_members
from tests.shards.tarbuild import (
    archive,
    header,
    member,
    padded,
    pax,
    record,
    tarfile_listing,
    written,
)

USTAR, GNU, PAX = tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT
FORMATS = {"ustar": USTAR, "gnu": GNU, "pax": PAX}


def info(name: str, kind: bytes = tarfile.REGTYPE, **fields) -> tarfile.TarInfo:
    result = tarfile.TarInfo(name)
    result.type = kind
    for key, value in fields.items():
        setattr(result, key, value)
    return result


def special_members() -> list:
    return [
        ("a.jpg", b"A" * 700),
        info("adir", tarfile.DIRTYPE),
        info("adir/link.jpg", tarfile.SYMTYPE, linkname="../a.jpg"),
        info("hard.jpg", tarfile.LNKTYPE, linkname="a.jpg"),
        info("pipe.fifo", tarfile.FIFOTYPE),
        info("tty.dev", tarfile.CHRTYPE, devmajor=4, devminor=1),
        info("disk.dev", tarfile.BLKTYPE, devmajor=8, devminor=0),
        ("b.txt", b"after the specials"),
    ]


def old_gnu_sparse(name: bytes, stored: bytes, real_size: int, extended: bool) -> bytes:
    """An old-GNU sparse member ('S'): a map of (offset, size) pairs in the header, more in
    extension blocks, then the stored chunks."""
    fields = {386: b"%011o\0" % 0 + b"%011o\0" % len(stored), 483: b"%011o\0" % real_size}
    if extended:
        fields[482] = b"\x01"
    extension = bytes(512) if extended else b""  # an empty map, and no block after it
    return header(name, len(stored), b"S", extra=fields) + extension + padded(stored)


def pax_sparse(name: str, real_size: int) -> bytes:
    """GNU sparse format 1.0 in pax records: the map is the first block of the data."""
    sparse = tarfile.TarInfo("./GNUSparseFile.0/" + name)
    data = padded(b"1\n0\n5\n") + b"hello"
    sparse.size = len(data)
    sparse.pax_headers = {
        "GNU.sparse.major": "1",
        "GNU.sparse.minor": "0",
        "GNU.sparse.name": name,
        "GNU.sparse.realsize": str(real_size),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=PAX) as tar:
        tar.addfile(sparse, io.BytesIO(data))
        after = tarfile.TarInfo("after.txt")
        after.size = 2
        tar.addfile(after, io.BytesIO(b"ok"))
    return buffer.getvalue()


def corpus() -> dict[str, bytes]:
    cases = {}
    for label, fmt in FORMATS.items():
        cases[f"{label}-plain"] = written([("a.jpg", b"1" * 100), ("a.cls", b"3")], fmt)
        cases[f"{label}-specials"] = written(special_members(), fmt)
        cases[f"{label}-name-of-100"] = written([("n" * 96 + ".jpg", b"x")], fmt)
        cases[f"{label}-sizes"] = written(
            [("empty.txt", b""), ("block.jpg", b"b" * 512), ("over.jpg", b"o" * 513)], fmt
        )
        cases[f"{label}-latin1"] = written([("caf\xe9.jpg", b"x"), ("b.txt", b"y")], fmt, "latin-1")
    cases["ustar-prefix"] = written([("d" * 60 + "/" + "e" * 60 + "/k.jpg", b"x")], USTAR)
    cases["gnu-longname"] = written([("g" * 150 + ".jpg", b"x"), ("short.jpg", b"y")], GNU)
    cases["gnu-longlink"] = written([info("l.jpg", tarfile.SYMTYPE, linkname="t" * 150)], GNU)
    cases["gnu-latin1-longname"] = written([("\xe9" * 120 + ".jpg", b"x")], GNU, "latin-1")
    cases["gnu-base256-mtime"] = written([info("t.jpg", mtime=2**40), ("u.jpg", b"u")], GNU)
    cases["gnu-negative-mtime"] = written([info("t.jpg", mtime=-1), ("u.jpg", b"u")], GNU)
    cases["pax-path"] = written([("p" * 150 + ".jpg", b"x"), ("q.jpg", b"y")], PAX)
    cases["pax-utf8"] = written([("ünïcode/ключ.jpg", b"x")], PAX)
    cases["pax-binary-hdrcharset"] = written([("caf\udce9.jpg", b"x")], PAX)
    cases["pax-records"] = written(
        [info("m.jpg", mtime=1.5, uid=2**40, uname="ünï", gname="g" * 40), ("n.jpg", b"n")], PAX
    )
    commented = info("c.jpg")
    commented.pax_headers = {"comment": "a note", "hdrcharset": "ISO-IR 10646 2000 UTF-8"}
    cases["pax-comment"] = written([commented], PAX)
    cases["pax-global"] = written([("a.jpg", b"1")], PAX, pax_headers={"comment": "x"})
    cases["pax-sparse-1.0"] = pax_sparse("s.jpg", 4096)
    cases["old-gnu-sparse"] = archive(
        old_gnu_sparse(b"s.jpg", b"chunk", 1 << 20, extended=False),
        old_gnu_sparse(b"t.jpg", b"chunk", 1 << 20, extended=True),
        member(b"after.txt", b"ok"),
    )
    cases["base256-size"] = archive(
        header(b"big.jpg", size_field=b"\x80" + (700).to_bytes(11, "big")) + padded(b"z" * 700),
        member(b"next.txt", b"n"),
    )
    cases["old-style-directory"] = archive(member(b"olddir/", kind=b"\0"), member(b"x.jpg", b"1"))
    cases["contiguous"] = archive(member(b"c.jpg", b"cc", kind=b"7"))
    cases["unknown-type"] = archive(member(b"volume", b"label", kind=b"V"), member(b"v.jpg", b"1"))
    cases["trailing-garbage"] = written([("a.jpg", b"1")], PAX) + b"garbage after the end" * 50
    cases["no-end-blocks"] = archive(member(b"a.jpg", b"1"), member(b"b.jpg", b"2"), end=False)
    cases["pax-then-gnu-longname"] = archive(
        pax(record("mtime", b"1.25")),
        member(b"././@LongLink", b"L" * 120 + b".jpg\0", kind=b"L"),
        member(b"trunc.jpg", b"x"),
    )
    return cases


CORPUS = corpus()


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_members_are_those_tarfile_lists(case):
    data = CORPUS[case]
    ours = [(m.name, m.kind, m.size) for m in iter_members(io.BytesIO(data))]
    assert ours == tarfile_listing(data)


@pytest.mark.parametrize("case", ["pax-specials", "gnu-longname", "base256-size", "pax-global"])
def test_a_memory_map_and_a_stream_give_the_same_members(case):
    data = CORPUS[case]
    from_stream = [(m.name, m.kind, m.size, bytes(m.data)) for m in iter_members(io.BytesIO(data))]
    mapped = [(m.name, m.kind, m.size, bytes(m.data)) for m in iter_members(MemoryReader(data))]
    assert mapped == from_stream


def test_regular_members_carry_their_data_and_others_none():
    members = list(iter_members(io.BytesIO(CORPUS["pax-specials"])))
    assert [(m.kind, bytes(m.data)) for m in members if m.kind == "file"] == [
        ("file", b"A" * 700),
        ("file", b"after the specials"),
    ]
    assert all(m.data == b"" for m in members if m.kind != "file")
    assert [m.problem is None for m in members] == [True, True] + [False] * 5 + [True]


def test_an_empty_file_has_no_members():
    assert list(iter_members(io.BytesIO(b""))) == []
