"""The embed and assign stages of a criterion that reads no embeddings (`--keep-list`): each
shard's rows (key, uid, label, size) read without decoding an image or loading a model, with
no vectors, and every sample in cluster 0."""

from __future__ import annotations

import numpy as np

from curation import progress
from curation.stage import Context
from pipelines.data_pruning import schema
from pipelines.data_pruning.rows import Row, content_tables, row_stats, sample_row, shard_content
from shards.copier import record_layout
from shards.paths import open_shard
from shards.tario import Sample, ShardFormatError, iter_samples


def _row(sample: Sample, config) -> Row:
    """The sample's row; a damaged sample or an unsafe member name fails it (its members would
    be copied as they are)."""
    row = sample_row(sample, config)
    if sample.error:
        row.error = sample.error
    elif sample.unsafe_names:
        row.error = f"unsafe member name: {sample.unsafe_names[0]!r} (absolute or with '..')"
    return row


def _rows(url: str, config) -> tuple[list[Row], str | None]:
    """Every sample's row up to damage in the shard, and the damage."""
    rows: list[Row] = []
    with open_shard(url, config.storage_options) as stream:
        try:
            for sample in iter_samples(stream):
                rows.append(_row(sample, config))
        except ShardFormatError as exc:
            return rows, str(exc)
    return rows, None


def read_shard(ctx: Context, unit: str) -> dict:
    """The shard's sample table, its embeddings of width 0."""
    url, content, new = shard_content(ctx, unit)
    if new:
        rows, shard_error = _rows(url, ctx.config)
        progress.advance(len(rows), 1.0)
        schema.write_content(ctx.run, content, *content_tables(rows, [None] * len(rows)),
                             row_stats(rows, shard_error), record_layout(url))  # fmt: skip
    return schema.link_content(ctx.run, unit, int(unit), content)


def one_cluster(ctx: Context, unit: str) -> dict:
    n = schema.row_count(ctx.run, unit)
    schema.write_assignment(ctx.run, "assign", unit, np.zeros(n, np.int32),
                            np.full(n, np.nan, np.float32))  # fmt: skip
    return {"samples": n}
