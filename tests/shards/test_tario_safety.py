"""tario on damaged and hostile input: safe member names, dotted keys, where a cut falls."""

from __future__ import annotations

import io

import pytest

from shards.members import Member, Sample, is_safe_name
from shards.tario import ShardFormatError, TarWriter, iter_samples


@pytest.mark.parametrize("name", ["a.jpg", "dir/a.jpg", "a..b.jpg", "..a.jpg", "x/..y/z.txt"])
def test_relative_names_are_safe(name):
    assert is_safe_name(name)


@pytest.mark.parametrize("name", ["../x", "/etc/x", "a/../../x.jpg", "a/..", "", "a\0.jpg"])
def test_escaping_names_are_unsafe(name):
    assert not is_safe_name(name)


def test_writer_refuses_unsafe_names():
    writer = TarWriter(io.BytesIO())
    with pytest.raises(ValueError, match="unsafe"):
        writer.add("../x.jpg", b"data")


def test_image_of_a_dotted_key_is_found_by_its_last_suffix():
    sample = Sample("photo", 0, [Member("photo.v2.JPG", b"img"), Member("photo.v2.txt", b"t")])
    assert sample.get("jpg") == Member("photo.v2.JPG", b"img")
    assert sample.get("txt") == Member("photo.v2.txt", b"t")
    assert sample.get("png") is None


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    writer = TarWriter(buffer)
    for name, data in members:
        writer.add(name, data)
    writer.close()
    return buffer.getvalue()


def _read(data: bytes) -> tuple[list[Sample], ShardFormatError | None]:
    samples: list[Sample] = []
    try:
        samples.extend(iter_samples(io.BytesIO(data)))
    except ShardFormatError as exc:
        return samples, exc
    return samples, None


MEMBERS = [("a.jpg", b"1" * 700), ("a.txt", b"x"), ("b.jpg", b"2" * 700), ("b.txt", b"y")]


def test_cut_inside_a_new_sample_keeps_the_previous_one_whole():
    data = _tar(MEMBERS)
    cut = data.index(b"b.jpg") + 512 + 100  # 100 bytes into b.jpg's data
    samples, exc = _read(data[:cut])
    assert exc is not None and exc.member == "b.jpg"
    assert [(s.key, s.error is None, len(s.members)) for s in samples] == [
        ("a", True, 2),
        ("b", False, 0),
    ]


def test_cut_inside_a_later_member_of_a_sample_marks_that_sample():
    data = _tar(MEMBERS)
    cut = data.index(b"b.txt") + 512  # b.txt's header read, its data missing
    samples, exc = _read(data[:cut])
    assert exc is not None
    assert [(s.key, s.error is None) for s in samples] == [("a", True), ("b", False)]
    assert [m.name for m in samples[1].members] == ["b.jpg"]


def test_cut_inside_a_header_keeps_the_sample_read_so_far():
    data = _tar(MEMBERS)
    samples, exc = _read(data[: data.index(b"b.jpg") + 100])
    assert exc is not None and exc.member is None
    assert [(s.key, s.error is None) for s in samples] == [("a", True)]
