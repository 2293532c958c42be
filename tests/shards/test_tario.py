import gzip
import io
import tarfile

import pytest
import webdataset as wds

from shards.members import split_key
from shards.tario import ShardFormatError, TarWriter, iter_members, iter_samples


def make_tar(members: list[tuple[str, bytes]], fmt=tarfile.PAX_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


MEMBERS = [("a.jpg", b"A" * 700), ("a.cls", b"1"), ("b.jpg", b"B" * 10), ("b.txt", b"cap")]


def test_split_key_follows_webdataset():
    assert split_key("dir/abc.seg.png") == ("dir/abc", "seg.png")
    assert split_key("x.jpg") == ("x", "jpg")
    assert split_key("noext") == ("noext", "")


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_members_round_trip(fmt):
    members = [(m.name, m.data) for m in iter_members(io.BytesIO(make_tar(MEMBERS, fmt)))]
    assert members == MEMBERS


def test_long_names_survive_pax_and_gnu():
    name = "d/" + "k" * 150 + ".jpg"
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        (member,) = iter_members(io.BytesIO(make_tar([(name, b"x")], fmt)))
        assert member.name == name


def test_samples_grouped_like_webdataset():
    samples = list(iter_samples(io.BytesIO(make_tar(MEMBERS))))
    assert [(s.key, s.position, [m.name for m in s.members]) for s in samples] == [
        ("a", 0, ["a.jpg", "a.cls"]),
        ("b", 1, ["b.jpg", "b.txt"]),
    ]
    assert samples[0].get("cls").data == b"1"
    reference = list(wds.WebDataset(_write_tmp(make_tar(MEMBERS)), shardshuffle=False))
    assert [r["__key__"] for r in reference] == [s.key for s in samples]


def _write_tmp(data: bytes) -> str:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".tar", delete=False) as f:
        f.write(data)
    return f.name


def test_repeated_extension_starts_a_new_sample():
    data = make_tar([("a.jpg", b"1"), ("a.jpg", b"2")])
    assert [s.position for s in iter_samples(io.BytesIO(data))] == [0, 1]


def test_gzip_shard_is_read_transparently():
    data = gzip.compress(make_tar(MEMBERS))
    assert [m.name for m in iter_members(io.BytesIO(data))] == [n for n, _ in MEMBERS]


def _read_until_error(data: bytes) -> list:
    samples = []
    with pytest.raises(ShardFormatError):
        for sample in iter_samples(io.BytesIO(data)):
            samples.append(sample)
    return samples


B_HEADER = 512 + 1024 + 512 + 512  # offset of b.jpg's header


def test_cut_between_members_keeps_the_samples_read():
    (a,) = _read_until_error(make_tar(MEMBERS)[: B_HEADER + 300])
    assert (a.key, a.error, len(a.members)) == ("a", None, 2)


def test_cut_inside_member_data_marks_its_sample():
    a, b = _read_until_error(make_tar(MEMBERS)[: B_HEADER + 512 + 5])
    assert a.error is None
    assert (b.key, b.position, b.members) == ("b", 1, [])
    assert "truncated member 'b.jpg'" in b.error
    (a,) = _read_until_error(make_tar(MEMBERS)[: 512 + 100])
    assert "truncated member 'a.jpg'" in a.error


def test_garbage_header_is_a_format_error():
    with pytest.raises(ShardFormatError):
        list(iter_members(io.BytesIO(b"not a tar file" * 100)))


def test_writer_is_deterministic_and_readable():
    def write() -> bytes:
        buffer = io.BytesIO()
        writer = TarWriter(buffer)
        for name, data in MEMBERS:
            writer.add(name, data)
        writer.close()
        assert writer.bytes_written == len(buffer.getvalue())
        return buffer.getvalue()

    first = write()
    assert first == write()
    assert len(first) % 10240 == 0
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        assert [(m.name, m.mtime, tar.extractfile(m).read()) for m in tar.getmembers()] == [
            (n, 0, d) for n, d in MEMBERS
        ]


@pytest.mark.parametrize(
    "name", ["a.jpg", "x" * 99 + ".j", "dir/" * 30 + "file.jpg", "y" * 120 + ".jpg", "é.jpg"]
)
def test_writer_headers_match_tarfile(name):
    buffer = io.BytesIO()
    writer = TarWriter(buffer)
    writer.add(name, b"data")
    writer.close()
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uname, info.gname = 4, 0, 0o644, "", ""
    expected = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    assert buffer.getvalue()[: len(expected)] == expected
    assert [m.name for m in iter_members(io.BytesIO(buffer.getvalue()))] == [name]
