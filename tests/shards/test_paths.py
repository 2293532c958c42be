import pytest

from curation.errors import CurateError
from shards.paths import expand_shards


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
