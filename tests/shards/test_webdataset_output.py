"""What we write, webdataset can read, always (issue 8, item 4): a sample webdataset 0.2.x
would reject or merge once written is failed by our reader with the reason, and every
selection of the samples that pass, written by `TarWriter`, reads back with the pinned
webdataset and with `tarfile` as exactly those samples."""

from __future__ import annotations

import io
import itertools
import tarfile

import pytest
import webdataset as wds

from shards.members import split_key
from shards.tario import TarWriter, iter_samples
from tests.shards.tarbuild import archive, member

CASES = {
    "case-only-suffixes": (
        archive(member(b"a.jpg", b"1"), member(b"k.jpg", b"2"), member(b"k.JPG", b"3")),
        {1: "members k.jpg and k.JPG differ only in case: webdataset would reject the sample"},
    ),
    "key-twice-back-to-back": (
        archive(*(member(n, b"x") for n in (b"k.jpg", b"k.cls", b"k.jpg", b"k.cls", b"z.jpg"))),
        {1: "repeats the key of the sample at position 0"},
    ),
    "key-again-later": (
        archive(*(member(n, b"x") for n in (b"d0.jpg", b"d1.jpg", b"d0.jpg", b"d2.jpg"))),
        {2: "repeats the key of the sample at position 0"},
    ),
    "reserved-suffix": (
        archive(member(b"k.jpg", b"1"), member(b"k.__key__", b"other"), member(b"m.jpg", b"2")),
        {0: "member k.__key__ has a suffix webdataset uses for its own field"},
    ),
    "symlink-as-image": (
        archive(member(b"s.jpg", kind=b"2", extra={157: b"elsewhere.jpg"}), member(b"s.cls", b"1")),
        {0: "member s.jpg is a symbolic link, not a regular file: webdataset skips it"},
    ),
    "hard-link-and-fifo": (
        archive(member(b"h.jpg", kind=b"1"), member(b"f.txt", kind=b"6"), member(b"ok.jpg", b"1")),
        {0: "is a hard link", 1: "is a fifo"},
    ),
    "skipped-names-do-not-split": (
        archive(
            member(b"dir/", kind=b"5"),
            member(b"dir/k.jpg", b"1"),
            member(b"README", b"no key"),
            member(b".hidden", b"no key"),
            member(b"__meta__/info.json", b"{}"),
            member(b"dir/k.txt", b"caption"),
            member(b"dir/m.jpg", b"2"),
        ),
        {},
    ),
    "hidden-file-in-a-folder": (  # webdataset's key for dir/.hidden is "dir/"
        archive(member(b"dir/k.jpg", b"1"), member(b"dir/.hidden", b"2"), member(b"dir/k.txt")),
        {2: "repeats the key of the sample at position 0"},
    ),
    "dotted-keys": (
        archive(member(b"photo.v2.jpg", b"1"), member(b"photo.v2.txt", b"t"), member(b"x.jpg")),
        {},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_samples_webdataset_cannot_take_fail_with_the_reason(case):
    data, failures = CASES[case]
    samples = list(iter_samples(io.BytesIO(data)))
    failed = {s.position: s.error for s in samples if s.error}
    assert sorted(failed) == sorted(failures)
    for position, reason in failures.items():
        assert reason in failed[position]


def test_skipped_names_stay_out_of_the_sample_they_sit_in():
    samples = list(iter_samples(io.BytesIO(CASES["skipped-names-do-not-split"][0])))
    assert [(s.key, [m.name for m in s.members]) for s in samples] == [
        ("dir/k", ["dir/k.jpg", "dir/k.txt"]),
        ("dir/m", ["dir/m.jpg"]),
    ]


def _written(samples) -> bytes:
    buffer = io.BytesIO()
    writer = TarWriter(buffer)
    for sample in samples:
        writer.add_sample(sample)
    writer.close()
    return buffer.getvalue()


def _webdataset_keys(path) -> list[tuple[str, list[str]]]:
    """What the pinned webdataset reads (it raises on a duplicate suffix)."""
    return [
        (s["__key__"], sorted(k for k in s if not k.startswith("__")))
        for s in wds.WebDataset(str(path), shardshuffle=False)
    ]


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_selection_of_passing_samples_reads_back_the_same(case, tmp_path):
    passing = [s for s in iter_samples(io.BytesIO(CASES[case][0])) if s.error is None]
    for count in range(1, len(passing) + 1):
        for chosen in itertools.combinations(passing, count):
            path = tmp_path / "out.tar"
            path.write_bytes(_written(chosen))
            expected = [
                (s.key, sorted(split_key(m.name)[1].lower() for m in s.members)) for s in chosen
            ]
            assert _webdataset_keys(path) == expected
            with tarfile.open(path) as tar:
                assert tar.getnames() == [m.name for s in chosen for m in s.members]
            assert [s.key for s in iter_samples(io.BytesIO(path.read_bytes()))] == [
                s.key for s in chosen
            ]


def test_the_pinned_webdataset_does_reject_what_we_fail(tmp_path):
    """The rules guard against real behaviour: written anyway, these raise in webdataset."""
    for case in ("case-only-suffixes", "key-twice-back-to-back"):
        path = tmp_path / f"{case}.tar"
        path.write_bytes(CASES[case][0])
        with pytest.raises(ValueError, match="duplicate file name"):
            list(wds.WebDataset(str(path), shardshuffle=False))
