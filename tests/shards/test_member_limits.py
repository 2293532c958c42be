"""Bounded memory (issue 8, item 7): a member over its size limit fails its sample, and its
data are skipped without being held: read and dropped in chunks from a stream, passed over
on a memory map."""

from __future__ import annotations

import gzip
import mmap
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shards.members import OTHER_LIMIT, TEXT_LIMIT, limit_problem, size_limit
from shards.tario import MemoryReader, iter_samples
from tests.shards.tarbuild import archive, header, member

GiB = 1 << 30
REPO = Path(__file__).resolve().parents[2]


class _Zeros:
    """A stream: `head`, then `count` zero bytes made on demand, then `tail`."""

    def __init__(self, head: bytes, count: int, tail: bytes):
        self._parts = [head, None, tail]
        self._zeros = count
        self.largest_read = 0

    def read(self, n: int) -> bytes:
        self.largest_read = max(self.largest_read, n)
        while self._parts:
            part = self._parts[0]
            if part is None:
                if self._zeros:
                    take = min(n, self._zeros)
                    self._zeros -= take
                    return bytes(take)
                self._parts.pop(0)
                continue
            if part:
                self._parts[0] = part[n:]
                return part[:n]
            self._parts.pop(0)
        return b""


def test_limits_depend_on_the_last_suffix():
    assert size_limit("k.txt") == size_limit("k.v2.JSON") == size_limit("k.cls") == TEXT_LIMIT
    assert size_limit("k.jpg") == size_limit("k.tar.npy") == size_limit("README") == OTHER_LIMIT
    assert TEXT_LIMIT < OTHER_LIMIT
    assert limit_problem("k.txt", TEXT_LIMIT) is None
    assert limit_problem("k.txt", GiB) == (
        "member k.txt is 1,073,741,824 bytes, over the 16 MiB limit for text members"
    )


@pytest.mark.parametrize(
    ("name", "size"), [(b"k.txt", TEXT_LIMIT + 1), (b"k.jpg", OTHER_LIMIT + 1)]
)
def test_an_oversized_member_fails_its_sample_and_is_skipped_in_chunks(name, size):
    head = member(b"a.jpg", b"A") + member(b"k.cls", b"1") + header(name, size)
    tail = bytes(-size % 512) + archive(member(b"z.jpg", b"Z"))
    stream = _Zeros(head, size, tail)
    samples = list(iter_samples(stream))
    assert [(s.key, s.error is None) for s in samples] == [("a", True), ("k", False), ("z", True)]
    assert f"member {name.decode()} is {size:,} bytes, over the" in samples[1].error
    (cls, big) = samples[1].members
    assert (big.size, big.data, bytes(cls.data)) == (size, b"", b"1")
    assert stream.largest_read <= 1 << 20


def test_an_oversized_member_on_a_memory_map_is_passed_over(tmp_path):
    path = tmp_path / "holey.tar"
    with open(path, "wb") as f:
        f.write(member(b"a.jpg", b"A") + header(b"k.txt", GiB))
        f.seek(GiB, os.SEEK_CUR)  # a hole: the file holds 1 GiB of zeros without storing them
        f.write(archive(member(b"z.jpg", b"Z")))
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        reader = MemoryReader(mapped)
        samples = list(iter_samples(reader))
        assert [(s.key, s.error is None) for s in samples] == [
            ("a", True),
            ("k", False),
            ("z", True),
        ]
        samples = None
        reader.release()


def _huge_caption_gz(path: Path) -> None:
    """A 1 MB .tar.gz holding a 1 GiB caption: gzip members concatenated, the zeros one
    compressed MiB repeated (a valid multi-member gzip stream)."""
    zeros = gzip.compress(bytes(1 << 20), mtime=0)
    with open(path, "wb") as f:
        f.write(gzip.compress(member(b"a.jpg", b"A") + header(b"a.txt", GiB), mtime=0))
        f.write(zeros * 1024)
        f.write(
            gzip.compress(archive(member(b"b.jpg", b"B") + member(b"b.txt", b"short")), mtime=0)
        )


PEAK_SCRIPT = """
import sys
from shards.tario import iter_samples
with open(sys.argv[1], "rb") as f:
    for sample in iter_samples(f):
        print(sample.key, sample.error)
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print("peak_kib", line.split()[1])
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_a_1_gib_caption_in_a_1_mb_tar_gz_reads_in_small_memory(tmp_path):
    path = tmp_path / "huge-caption.tar.gz"
    _huge_caption_gz(path)
    assert path.stat().st_size < 2 << 20
    result = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "a member a.txt is 1,073,741,824 bytes, over the 16 MiB limit for text members"
    )
    assert lines[1] == "b None"
    peak_mib = int(lines[2].split()[1]) / 1024
    assert peak_mib < 200, f"peak memory {peak_mib:.0f} MiB"
