"""Shards on the S3 server of the tests, and what a run wrote there, read back (through the
server's endpoint, whatever the environment says)."""

from __future__ import annotations

from pathlib import Path

import fsspec

from tests.builders import write_shards
from tests.runs import comparable
from tests.services import S3Bucket


def s3_filesystem(s3: S3Bucket):
    """A filesystem of the test's server whose listings are never cached (a run adds files)."""
    return fsspec.filesystem("s3", endpoint_url=s3.endpoint, skip_instance_cache=True,
                             use_listings_cache=False)  # fmt: skip


def s3_shards(s3: S3Bucket, local: Path, shards: int, per_shard: int, **kwargs) -> list[str]:
    """Generated shards, written locally and uploaded under `in/`; their URLs."""
    fs = s3_filesystem(s3)
    urls = []
    for path in write_shards(local, shards=shards, per_shard=per_shard, **kwargs):
        fs.pipe_file(f"{s3.bucket}/in/{path.name}", path.read_bytes())
        urls.append(s3.url("in", path.name))
    return urls


def s3_outputs(s3: S3Bucket, *parts: str) -> dict[str, bytes]:
    """Every output file of the run in `parts` except the run directory and the marker, as
    `tests.runs.output_files` reads a local one."""
    fs = s3_filesystem(s3)
    found = {}
    for entry in fs.ls(s3.url(*parts), detail=True):
        name = entry["name"].rsplit("/", 1)[-1]
        if entry["type"] == "file" and not name.startswith("."):
            found[name] = comparable(name, fs.cat_file(entry["name"]))
    return found


def s3_names(s3: S3Bucket, *parts: str) -> list[str]:
    """Every object below `parts`, by name, sorted."""
    return sorted(p.rsplit("/", 1)[-1] for p in s3_filesystem(s3).find(s3.url(*parts)))
