import fsspec
import pytest

from curation.errors import CurateError
from shards.paths import expand_shards, open_shard


@pytest.fixture
def folder(tmp_path):
    for i in range(3):
        (tmp_path / f"{i:05d}.tar").write_bytes(b"")
    return tmp_path


def test_braces_globs_and_urls_in_order(folder):
    assert expand_shards([str(folder / "{00002..00000}.tar")]) == [
        str(folder / f"{i:05d}.tar") for i in (2, 1, 0)
    ]
    assert expand_shards([str(folder / "*.tar")]) == [
        str(folder / f"{i:05d}.tar") for i in range(3)
    ]
    urls = expand_shards([f"file://{folder}/*.tar"])
    assert urls == [f"file://{folder}/{i:05d}.tar" for i in range(3)]
    assert expand_shards([f"file://{folder}/00001.tar"]) == [f"file://{folder}/00001.tar"]


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("missing.tar", "shard not found"),
        ("*.tgz", "no shards match"),
        ("{00000..00003}.tar", "shard not found"),
    ],
)
def test_bad_patterns_name_the_problem(folder, pattern, message):
    with pytest.raises(CurateError, match=message):
        expand_shards([str(folder / pattern)])


def test_a_shard_listed_twice_is_refused(folder):
    with pytest.raises(CurateError, match="listed twice"):
        expand_shards([str(folder / "00000.tar"), str(folder / "*.tar")])


@pytest.fixture
def s3_shards(s3):
    fs = fsspec.filesystem("s3")
    for i in range(3):
        fs.pipe_file(f"{s3.bucket}/in/{i:05d}.tar", f"shard {i}".encode())
    return s3


def test_s3_globs_braces_and_reads(s3_shards):
    urls = [s3_shards.url("in", f"{i:05d}.tar") for i in range(3)]
    assert expand_shards([s3_shards.url("in", "*.tar")]) == urls
    assert expand_shards([s3_shards.url("in", "{00002..00001}.tar")]) == urls[:0:-1]
    with open_shard(urls[1]) as stream:
        assert stream.read() == b"shard 1"


def test_s3_storage_options_instead_of_the_environment(s3_shards, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    options = {"endpoint_url": s3_shards.endpoint}
    url = s3_shards.url("in", "00000.tar")
    assert expand_shards([url], options) == [url]
    with open_shard(url, options) as stream:
        assert stream.read() == b"shard 0"


@pytest.mark.parametrize(
    ("name", "message"),
    [("in/00009.tar", "shard not found: s3://"), ("in", "shard is not a file: s3://")],
)
def test_s3_bad_shards_name_the_problem(s3_shards, name, message):
    with pytest.raises(CurateError, match=message):
        expand_shards([s3_shards.url(name)])


def test_s3_shards_without_credentials_say_what_to_set(s3_shards, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(CurateError, match=r"^no credentials for s3://.*AWS_ACCESS_KEY_ID"):
        expand_shards([s3_shards.url("in", "00000.tar")], {"skip_instance_cache": True})
