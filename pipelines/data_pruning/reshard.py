"""reshard: stream each input tar and copy the raw members of its kept samples, in order,
into the output shard of the same index; an img2dataset-style `_stats.json` beside it."""

from __future__ import annotations

import mmap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import numpy as np

from curation.errors import CurateError
from curation.stage import Context
from curation.storage import Folder
from pipelines.data_pruning import schema
from shards.paths import check_unchanged, is_url, open_shard
from shards.tario import GZIP_MAGIC, MemoryReader, ShardFormatError, TarWriter, iter_samples


def output_folder(ctx: Context) -> Folder:
    return Folder(ctx.config.output, ctx.config.storage_options)


@contextmanager
def _source(url: str, storage_options: dict) -> Iterator[BinaryIO]:
    """A local plain tar is memory-mapped (zero-copy reads); anything else is streamed."""
    if is_url(url):
        with open_shard(url, storage_options) as stream:
            yield stream
        return
    with open(url, "rb") as f:
        if f.read(2) == GZIP_MAGIC or f.seek(0, 2) == 0:
            f.seek(0)
            yield f
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            reader = MemoryReader(mapped)
            try:
                yield reader
            finally:
                reader.release()


def copy_kept(source: str, keep: np.ndarray, writer: TarWriter,
              storage_options: dict | None = None) -> tuple[int, int]:  # fmt: skip
    """Copy the samples at positions `keep` (sorted); returns (samples read, samples copied).

    Samples at or after damage in the source were failed at embed time and are never kept,
    so the copy stops at the last kept position."""
    with _source(source, storage_options or {}) as stream:
        read, copied = _copy(stream, keep, writer)
        writer.flush()
    if copied != len(keep):
        raise CurateError(
            f"shard {source} changed since it was embedded: "
            f"{len(keep) - copied} kept samples are missing"
        )
    return read, copied


def _copy(stream: BinaryIO, keep: np.ndarray, writer: TarWriter) -> tuple[int, int]:
    wanted = set(keep.tolist())
    last = int(keep[-1]) if len(keep) else -1
    copied = read = 0
    try:
        for sample in iter_samples(stream):
            read += 1
            if sample.position in wanted:
                writer.add_sample(sample)
                copied += 1
            if sample.position >= last:
                break
    except ShardFormatError:
        pass
    return read, copied


def reshard_shard(ctx: Context, unit: str) -> dict:
    source = ctx.config.shards[int(unit)]
    check_unchanged(source, ctx.config.fingerprints[int(unit)], ctx.config.storage_options)
    keep = schema.read_keep(ctx.run, unit)
    counts = schema.read_counts(ctx.run, unit)
    out = output_folder(ctx)
    start = time.time()
    with out.open_atomic(f"{unit}.tar") as stream:
        writer = TarWriter(stream)
        copy_kept(source, keep, writer, ctx.config.storage_options)
        writer.close()
    end = time.time()
    out.write_json(
        {
            "input_shard": source,
            "count": counts["input"],
            "successes": counts["kept"],
            "pruned": counts["pruned"],
            "failed": counts["failed"],
            "heldout": counts["heldout"],
            "status_dict": counts["reasons"],
            "bytes_written": writer.bytes_written,
        },
        f"{unit}_stats.json",
    )
    return {
        "samples": counts["input"],
        "kept": counts["kept"],
        "bytes": writer.bytes_written,
        "start_time": start,
        "end_time": end,
    }


def clean_outputs(ctx: Context) -> None:
    """Invalidated: the shards this stage wrote are stale."""
    out = output_folder(ctx)
    for name in out.listdir():
        if name.endswith((".tar", "_stats.json")):
            out.remove(name)
