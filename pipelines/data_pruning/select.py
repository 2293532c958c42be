"""select: apply the pruning rate over every valid sample; write per-shard keep-lists and
decisions (every sample: kept, pruned, failed or held out, and why).

Reasons and details become strings one shard at a time, as each shard's decisions are written:
a string per sample for all of them at once would not fit in 2 GB at 10M samples
(docs/benchmarks.md)."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pyarrow as pa

from curation.stage import Context
from pipelines.data_pruning import schema
from pipelines.data_pruning.criteria import loaders
from pipelines.data_pruning.decide import decide
from pipelines.data_pruning.decision import FAILED, HELDOUT, Decision, Detail
from pipelines.data_pruning.duplicates import repeated_keys
from pipelines.data_pruning.samples import load_samples

Keys = tuple[pa.ChunkedArray, np.ndarray]  # see _related_keys


def select_samples(ctx: Context, unit: str) -> dict:
    units = schema.shard_units(ctx)
    samples = load_samples(ctx.run, units, loaders(ctx.config), ctx.config.holdout)
    decision = decide(samples, ctx.config)
    keys = [_related_keys(ctx, units, detail.related) for detail in decision.details]
    notes = repeated_keys(ctx.run, units, ctx.config.shards)
    for shard, shard_unit, rows in zip(ctx.config.shards, units, samples.shard_rows(),
                                       strict=True):  # fmt: skip
        embedded = schema.read_rows(ctx.run, shard_unit, ["key", "position", "id", "error"])
        detail = _details(decision.details, keys, rows)
        decisions = _decisions(embedded, decision, rows, detail, samples.clusters.cluster, shard,
                               notes)  # fmt: skip
        keep_positions = embedded["position"].to_numpy()[decision.keep[rows]].astype(np.int32)
        repeats = sum(i in notes for i in embedded["id"].to_pylist()) if notes else 0
        counts = {**schema.count_decisions(decisions), "duplicate_keys": repeats}
        schema.write_selection(ctx.run, shard_unit, keep_positions, decisions, counts)
    schema.write_selection_record(ctx.run, {"clusters": decision.clusters,
                                            "notes": decision.notes})  # fmt: skip
    return {"samples": len(samples), "kept": int(decision.keep.sum())}


def _related_keys(ctx: Context, units: list[str], related: np.ndarray | None) -> Keys | None:
    """The keys of the samples `related` refers to (ids, -1 for none), read one referred shard
    at a time, and where each id's key is among them (-1 for none)."""
    if related is None:
        return None
    named = np.flatnonzero(related >= 0)
    shard = schema.id_shard(related[named])
    order = np.argsort(shard, kind="stable")
    shards, starts = np.unique(shard[order], return_index=True)
    chunks = []
    for s, (start, end) in zip(shards, pairwise([*starts, len(order)]), strict=True):
        keys = schema.read_rows(ctx.run, units[s], ["key"])["key"]
        chunks += keys.take(schema.id_position(related[named[order[start:end]]])).chunks
    where = np.full(len(related), -1, dtype=np.int64)
    where[named[order]] = np.arange(len(order))
    return pa.chunked_array(chunks, pa.string()), where


def _details(details: list[Detail], keys: list[Keys | None], rows: slice) -> list[str | None]:
    """A shard's detail texts; one that refers to another sample names it by its key:
    "duplicate of KEY (similarity s)"."""
    texts: list[str | None] = [None] * (rows.stop - rows.start)
    for detail, named in zip(details, keys, strict=True):
        first, last = np.searchsorted(detail.rows, [rows.start, rows.stop])
        words = detail.texts(first, last)
        if named is not None:
            referred, where = named
            index = where[first:last]
            names = referred.take(pa.array(index, mask=index < 0)).to_pylist()
            words = [word if key is None else f"duplicate of {key} ({word})"
                     for key, word in zip(names, words, strict=True)]  # fmt: skip
        for row, word in zip((detail.rows[first:last] - rows.start).tolist(), words, strict=True):
            texts[row] = word
    return texts


def _decisions(embedded: pa.Table, decision: Decision, rows: slice, detail: list[str | None],
               cluster: np.ndarray, shard: str, notes: dict[int, str]) -> pa.Table:  # fmt: skip
    keep, reason = decision.keep[rows], decision.reasons(rows)
    failed = reason == FAILED
    status = np.where(keep, schema.KEPT, schema.PRUNED)
    status = np.where(reason == HELDOUT, schema.HELDOUT, np.where(failed, schema.FAILED, status))
    errors = np.asarray(embedded["error"].to_pylist(), dtype=object)
    detail = np.where(failed, errors, np.asarray(detail, dtype=object))
    for i, sample_id in enumerate(embedded["id"].to_pylist() if notes else []):
        note = notes.get(sample_id)
        if note is not None:
            detail[i] = note if detail[i] is None else f"{detail[i]}; {note}"
    return pa.table(
        {
            "key": embedded["key"],
            "shard": pa.array([shard] * len(embedded), pa.string()),
            "position": embedded["position"],
            "id": embedded["id"],
            "kept": keep,
            "status": status.astype(str),
            "cluster": cluster[rows],
            "score": decision.score[rows],
            "reason": reason.astype(str),
            "detail": pa.array(detail.tolist(), pa.string()),
        },
        schema=schema.DECISION_SCHEMA,
    )
