"""reshard: stream each input tar and copy the raw members of its kept samples, in order,
into the output shard of the same index; an img2dataset-style `_stats.json` beside it."""

from __future__ import annotations

import time

from curation.stage import Context
from curation.storage import Folder
from pipelines.data_pruning import schema
from shards.copier import copy_kept
from shards.paths import check_unchanged


def output_folder(ctx: Context) -> Folder:
    return Folder(ctx.config.output, ctx.config.storage_options)


def reshard_shard(ctx: Context, unit: str) -> dict:
    source = ctx.config.shards[int(unit)]
    check_unchanged(source, ctx.config.fingerprints[int(unit)], ctx.config.storage_options)
    keep = schema.read_keep(ctx.run, unit)
    counts = schema.read_counts(ctx.run, unit)
    out = output_folder(ctx)
    start = time.time()
    with out.open_atomic(f"{unit}.tar") as stream:
        copied = copy_kept(source, keep, stream, ctx.config.storage_options)
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
            "bytes_written": copied.bytes_written,
        },
        f"{unit}_stats.json",
    )
    return {
        "samples": counts["input"],
        "kept": counts["kept"],
        "bytes": copied.bytes_written,
        "start_time": start,
        "end_time": end,
    }


def clean_outputs(ctx: Context) -> None:
    """Invalidated: the shards this stage wrote are stale (only those: the folder may hold
    files of the user's beside them)."""
    out = output_folder(ctx)
    for name in schema.output_names(ctx.config):
        if name.endswith((".tar", "_stats.json")):
            out.remove(name)
