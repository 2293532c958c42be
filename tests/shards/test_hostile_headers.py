"""Hostile headers never hang and never fail more than they must: damage confined to one
member fails its sample; a header that cannot be decoded ends the shard there, keeping every
sample before it (issue 8)."""

from __future__ import annotations

import io
import tarfile

import pyarrow as pa
import pytest
import webdataset as wds
from hypothesis import given
from hypothesis import strategies as st

from shards.tarheader import HeaderError, number
from shards.tario import META_LIMIT, ShardFormatError, TarWriter, iter_members, iter_samples
from tests.shards.tarbuild import archive, header, member, padded, pax, record, tarfile_listing

pytestmark = pytest.mark.timeout(20)

BEFORE = member(b"a.jpg", b"A" * 600) + member(b"a.txt", b"first")
AFTER = member(b"c.jpg", b"C") + member(b"c.txt", b"last")


def _samples(data: bytes) -> tuple[list, ShardFormatError | None]:
    samples = []
    try:
        for sample in iter_samples(io.BytesIO(data)):
            samples.append(sample)
    except ShardFormatError as exc:
        return samples, exc
    return samples, None


def _summary(samples) -> list[tuple[str, bool]]:
    return [(s.key, s.error is None) for s in samples]


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        (b"0 path=x.jpg\n", "wrong length (0)"),
        (b"abc path=x.jpg\n", "does not start with its length"),
        (b"-5 path=x.jpg\n", "does not start with its length"),
        (b"99 path=x.jpg\n", "wrong length (99)"),
        (b"3 path=x.jpg\n", "wrong length (3)"),
        (b"14 pathxb.jpg\n", "no keyword=value"),
        (record("mtime", b"1") + b"junk", "does not start with its length"),
    ],
)
def test_a_malformed_pax_record_fails_only_its_member(records, reason):
    data = archive(BEFORE, pax(records), member(b"b.jpg", b"B" * 10), AFTER)
    samples, exc = _samples(data)
    assert exc is None
    assert _summary(samples) == [("a", True), ("b", False), ("c", True)]
    assert samples[1].error.startswith("member b.jpg: its pax header is malformed: pax record")
    assert reason in samples[1].error


def test_a_pax_header_over_its_limit_is_skipped_unread():
    huge = record("comment", b"x" * (META_LIMIT + 10))
    samples, exc = _samples(archive(BEFORE, pax(huge), member(b"b.jpg", b"B"), AFTER))
    assert exc is None
    assert _summary(samples) == [("a", True), ("b", False), ("c", True)]
    assert "pax header is 1,048," in samples[1].error and "over the 1 MiB limit" in samples[1].error


def test_a_pax_size_that_is_not_a_number_ends_the_shard():
    data = archive(BEFORE, pax(record("size", b"12x")), member(b"b.jpg", b"B"), AFTER)
    samples, exc = _samples(data)
    assert "invalid pax size record b'12x'" in str(exc)
    assert _summary(samples) == [("a", True)]


def test_pax_records_for_other_keywords_change_nothing():
    records = record("mtime", b"1.5") + record("comment", b"hi") + record("uname", b"\xff")
    data = archive(BEFORE, pax(records), member(b"b.jpg", b"B"), AFTER)
    samples, exc = _samples(data)
    assert exc is None and _summary(samples) == [("a", True), ("b", True), ("c", True)]


def test_a_global_pax_path_names_every_later_member_as_tarfile_does():
    data = archive(pax(record("path", b"same.jpg"), kind=b"g"), member(b"x.jpg"), member(b"y.jpg"))
    assert [m.name for m in iter_members(io.BytesIO(data))] == ["same.jpg", "same.jpg"]
    assert [m.name for m in iter_members(io.BytesIO(data))] == [
        n for n, _, _ in tarfile_listing(data)
    ]


@pytest.mark.parametrize("value", [700, 0, 2**40])
def test_base256_sizes_are_read(value):
    field = b"\x80" + value.to_bytes(11, "big")
    data = archive(header(b"big.jpg", size_field=field) + padded(b"z" * min(value, 700)))
    if value > 700:  # claims more than the archive holds: cut short
        with pytest.raises(ShardFormatError, match=r"truncated member 'big\.jpg'"):
            list(iter_members(io.BytesIO(data)))
        return
    (only,) = iter_members(io.BytesIO(data))
    assert (only.name, only.size, bytes(only.data)) == ("big.jpg", value, b"z" * value)


def test_a_negative_base256_size_ends_the_shard_before_the_member():
    field = b"\xff" * 11 + b"\xfe"  # -2
    samples, exc = _samples(archive(BEFORE, header(b"neg.jpg", size_field=field), AFTER))
    assert "negative size -2" in str(exc)
    assert _summary(samples) == [("a", True)]


@pytest.mark.parametrize(
    "field", [b"12345678901x", b"\x81" + bytes(11), b"\xe9" * 12, b"0o17" + bytes(8)]
)
def test_number_fields_decode_as_tarfile_decodes_them(field):
    try:
        expected = tarfile.nti(field)
    except tarfile.InvalidHeaderError:
        with pytest.raises(HeaderError):
            number(field)
        return
    assert number(field) == expected


@given(st.binary(min_size=8, max_size=12))
def test_number_agrees_with_tarfile_on_any_field(field):
    try:
        expected = tarfile.nti(field)
    except tarfile.InvalidHeaderError:
        with pytest.raises(HeaderError):
            number(field)
        return
    assert number(field) == expected


def test_a_bad_checksum_ends_the_shard_keeping_what_precedes():
    bad = header(b"b.jpg", 1, checksum=b"000001\0 ") + padded(b"B")
    samples, exc = _samples(archive(BEFORE, bad, AFTER))
    assert "invalid tar header (bad checksum)" in str(exc)
    assert exc.offset == len(BEFORE)
    assert _summary(samples) == [("a", True)]


def test_a_bad_header_inside_a_sample_keeps_the_sample_read_so_far():
    bad = header(b"a.cls", 1, size_field=b"not a number")
    samples, exc = _samples(archive(BEFORE, bad))
    assert "bad number field" in str(exc)
    assert [(s.key, s.error, len(s.members)) for s in samples] == [("a", None, 2)]


def test_sparse_extension_blocks_to_the_end_of_the_file_are_a_cut_not_a_loop():
    sparse = header(b"s.jpg", 0, b"S", extra={482: b"\x01", 483: b"%011o\0" % 10})
    endless = bytes(504) + b"\x01" + bytes(7)  # every extension block says another follows
    samples, exc = _samples(BEFORE + sparse + endless * 20)
    assert "truncated member 's.jpg'" in str(exc)
    assert _summary(samples) == [("a", True), ("s", False)]


def test_a_size_past_the_end_is_a_cut_read_in_bounded_chunks():
    samples, exc = _samples(BEFORE + header(b"b.jpg", 1 << 40))
    assert "truncated member 'b.jpg'" in str(exc)
    assert _summary(samples) == [("a", True), ("b", False)]


def test_garbage_after_a_pax_header_ends_the_shard():
    samples, exc = _samples(archive(BEFORE, pax(record("mtime", b"1")), b"\x07" * 512))
    assert "invalid tar header" in str(exc)
    assert _summary(samples) == [("a", True)]


LATIN1 = "caf\udce9"  # b"caf\xe9" read as UTF-8 with surrogateescape


def _latin1_shard() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT, encoding="latin-1"
    ) as tar:
        for name, data in [("caf\xe9.jpg", b"img"), ("caf\xe9.txt", b"cap"), ("b.jpg", b"2")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_latin1_name_keeps_its_bytes_and_has_a_utf8_key():
    first, second = iter_samples(io.BytesIO(_latin1_shard()))
    assert [m.name for m in first.members] == [LATIN1 + ".jpg", LATIN1 + ".txt"]
    assert first.key == "caf\\xe9" and second.key == "b"
    assert pa.array([first.key], pa.string()).to_pylist() == ["caf\\xe9"]


def test_a_latin1_name_is_written_back_byte_for_byte(tmp_path):
    samples = list(iter_samples(io.BytesIO(_latin1_shard())))
    out = tmp_path / "out.tar"
    with open(out, "wb") as f:
        writer = TarWriter(f)
        for sample in samples:
            writer.add_sample(sample)
        writer.close()
    with tarfile.open(out, encoding="latin-1") as tar:
        assert tar.getnames() == ["caf\xe9.jpg", "caf\xe9.txt", "b.jpg"]
    keys = [s["__key__"] for s in wds.WebDataset(str(out), shardshuffle=False)]
    assert keys == [LATIN1, "b"]
