"""select: apply the pruning rate over every valid sample; write per-shard keep-lists and
decisions (every sample: kept, pruned or failed, and why).

Reasons and details become strings one shard at a time, as each shard's decisions are written:
a string per sample for all of them at once would not fit in 2 GB at 10M samples
(docs/benchmarks.md)."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pyarrow as pa

from curation.stage import Context
from pipelines.data_pruning.decide import FAILED, Decision, Detail, decide
from pipelines.data_pruning.duplicates import repeated_keys
from pipelines.data_pruning.layout import read_table, save_array, shard_units, write_table
from pipelines.data_pruning.samples import POSITION_MASK, load_samples

Keys = tuple[pa.ChunkedArray, np.ndarray]  # see _related_keys

DECISION_SCHEMA = pa.schema([
    ("key", pa.string()),
    ("shard", pa.string()),
    ("position", pa.int32()),
    ("id", pa.int64()),
    ("kept", pa.bool_()),
    ("status", pa.string()),
    ("cluster", pa.int32()),
    ("score", pa.float64()),
    ("reason", pa.string()),
    ("detail", pa.string()),
])  # fmt: skip


def select_samples(ctx: Context, unit: str) -> dict:
    units = shard_units(ctx)
    samples = load_samples(ctx.run, units, ctx.config)
    decision = decide(samples, ctx.config)
    keys = [_related_keys(ctx, units, detail.related) for detail in decision.details]
    notes = repeated_keys(ctx.run, units, ctx.config.shards)
    for shard, shard_unit, rows in zip(ctx.config.shards, units, samples.shard_rows(),
                                       strict=True):  # fmt: skip
        embedded = read_table(ctx.run, "embed", f"{shard_unit}.parquet",
                              columns=["key", "position", "id", "error"])  # fmt: skip
        detail = _details(decision.details, keys, rows)
        decisions = _decisions(embedded, decision, rows, detail, samples.clusters.cluster, shard,
                               notes)  # fmt: skip
        keep_positions = embedded["position"].to_numpy()[decision.keep[rows]].astype(np.int32)
        save_array(ctx.run, keep_positions, "select", "keep", f"{shard_unit}.npy")
        write_table(ctx.run, decisions, "select", "decisions", f"{shard_unit}.parquet")
        repeats = sum(i in notes for i in embedded["id"].to_pylist()) if notes else 0
        ctx.run.write_json({**_counts(decisions), "duplicate_keys": repeats},
                           "select", "counts", f"{shard_unit}.json")  # fmt: skip
    ctx.run.write_json({"clusters": decision.clusters, "notes": decision.notes},
                       "select", "selection.json")  # fmt: skip
    return {"samples": len(samples), "kept": int(decision.keep.sum())}


def _related_keys(ctx: Context, units: list[str], related: np.ndarray | None) -> Keys | None:
    """The keys of the samples `related` refers to (ids, -1 for none), read one referred shard
    at a time, and where each id's key is among them (-1 for none)."""
    if related is None:
        return None
    named = np.flatnonzero(related >= 0)
    shard = related[named] >> 32
    order = np.argsort(shard, kind="stable")
    shards, starts = np.unique(shard[order], return_index=True)
    chunks = []
    for s, (start, end) in zip(shards, pairwise([*starts, len(order)]), strict=True):
        keys = read_table(ctx.run, "embed", f"{units[s]}.parquet", columns=["key"])["key"]
        chunks += keys.take(related[named[order[start:end]]] & POSITION_MASK).chunks
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
    status = np.where(failed, "failed", np.where(keep, "kept", "pruned"))
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
        schema=DECISION_SCHEMA,
    )


def _counts(decisions: pa.Table) -> dict:
    status = decisions["status"].to_pylist()
    reasons = decisions["reason"].to_pylist()
    return {
        "input": len(status),
        "kept": status.count("kept"),
        "pruned": status.count("pruned"),
        "failed": status.count("failed"),
        "reasons": {r: reasons.count(r) for r in sorted(set(reasons))},
    }
