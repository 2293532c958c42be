"""reshard: copy the members of each input shard's kept samples, in order, into the output
shard of the same name (verbatim where they are safe: `shards.copier`; a local plain tar
unchanged since embed by the layout embed recorded, without indexing it again); beside it an
img2dataset-style `_stats.json` and, when the input had one (img2dataset, DataComp), its
per-shard `.parquet` filtered to the kept rows."""

from __future__ import annotations

import json
import time

import pyarrow as pa
import pyarrow.compute as pc

from curation import parquet
from curation.errors import CurateError
from curation.stage import Context
from curation.storage import Folder, filesystem
from pipelines.data_pruning import schema
from shards.copier import copy_kept
from shards.paths import check_unchanged

IMG2DATASET_FAILURES = ("failed_to_download", "failed_to_resize")


def output_folder(ctx: Context) -> Folder:
    return Folder(ctx.config.output, ctx.config.storage_options)


def _beside(url: str, suffix: str, storage_options: dict) -> bytes | None:
    """The file next to an input shard with the same stem (`00000_stats.json`...), if any."""
    stem = schema.shard_stem(url)
    fs, path = filesystem(f"{stem}{suffix}", storage_options)
    try:
        with fs.open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, IsADirectoryError):
        return None


def _input_failures(source: str, storage_options: dict) -> dict[str, int]:
    """img2dataset's download failures for this shard, from its own `_stats.json`."""
    found = _beside(source, "_stats.json", storage_options)
    try:
        stats = json.loads(found) if found else {}
    except ValueError:
        stats = {}
    return {k: int(stats.get(k, 0)) if isinstance(stats, dict) else 0
            for k in IMG2DATASET_FAILURES}  # fmt: skip


def _kept_metadata(ctx: Context, unit: str, source: str) -> pa.Table | None:
    """The input's per-shard parquet, only the rows of the kept samples (by key, or by uid).
    Raises CurateError when the file is there but is not parquet."""
    found = _beside(source, ".parquet", ctx.config.storage_options)
    if found is None:
        return None
    table = parquet.table_from_bytes(found, f"{schema.shard_stem(source)}.parquet")
    rows = schema.read_rows(ctx.run, unit, ["position", "key", "uid"])
    kept = pc.is_in(rows["position"], value_set=pa.array(schema.read_keep(ctx.run, unit)))
    for column in ("key", "uid"):
        if column in table.column_names:
            wanted = rows.filter(kept)[column].cast(table[column].type)
            return table.filter(pc.is_in(table[column], value_set=wanted))
    return None


def reshard_shard(ctx: Context, unit: str) -> dict:
    cfg = ctx.config
    source = cfg.shards[int(unit)]
    check_unchanged(source, cfg.fingerprints[int(unit)], cfg.storage_options)
    stem = schema.output_stem(cfg, int(unit))
    keep = schema.read_keep(ctx.run, unit)
    counts = schema.read_counts(ctx.run, unit)
    layout = schema.read_layout(ctx.run, unit)  # recorded at embed: no second index
    out = output_folder(ctx)
    start = time.time()
    with out.open_atomic(f"{stem}.tar") as stream:
        copied = copy_kept(source, keep, stream, cfg.storage_options, layout)
    try:
        metadata, noted = _kept_metadata(ctx, unit, source), {}
    except CurateError as exc:  # the shard is copied; its side file cannot come along
        metadata, noted = None, {"metadata_error": str(exc)}
    if metadata is not None:
        schema.write_table(out, metadata, f"{stem}.parquet")
    end = time.time()
    out.write_json(
        {
            "input_shard": source,
            "count": counts["input"],
            "successes": counts["kept"],
            **_input_failures(source, cfg.storage_options),
            "pruned": counts["pruned"],
            "failed": counts["failed"],
            "heldout": counts["heldout"],
            "status_dict": counts["reasons"],
            "bytes_written": copied.bytes_written,
            "duration": round(end - start, 3),
            "start_time": start,
            "end_time": end,
            **noted,
        },
        f"{stem}_stats.json",
    )
    return {"samples": counts["input"], "kept": counts["kept"], "bytes": copied.bytes_written}


def clean_outputs(ctx: Context) -> None:
    """Invalidated: the shards this stage wrote are stale (only those: the folder may hold
    files of the user's beside them)."""
    out = output_folder(ctx)
    for name in schema.output_names(ctx.config):
        if name.endswith((".tar", "_stats.json", ".parquet")) and name != schema.DECISIONS:
            out.remove(name)
