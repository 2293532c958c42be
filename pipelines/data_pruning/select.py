"""select: apply the pruning rate over every valid sample; write per-shard keep-lists and
decisions (every sample: kept, pruned or failed, and why)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from curation.stage import Context
from pipelines.data_pruning.decide import FAILED, Decision, decide
from pipelines.data_pruning.duplicates import repeated_keys
from pipelines.data_pruning.layout import read_table, save_array, shard_units, write_table
from pipelines.data_pruning.samples import POSITION_MASK, load_samples

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
    _name_related(ctx, units, decision)
    notes = repeated_keys(ctx.run, units, ctx.config.shards)
    columns = (decision.keep, decision.reason, decision.detail, decision.score)
    for i, shard_unit in enumerate(units):
        part = [samples.per_shard(c)[i] for c in (*columns, samples.clusters.cluster)]
        rows = read_table(ctx.run, "embed", f"{shard_unit}.parquet",
                          columns=["key", "position", "id", "error"])  # fmt: skip
        decisions = _decisions(rows, *part, ctx.config.shards[i], notes)
        keep_positions = rows["position"].to_numpy()[part[0]].astype(np.int32)
        save_array(ctx.run, keep_positions, "select", "keep", f"{shard_unit}.npy")
        write_table(ctx.run, decisions, "select", "decisions", f"{shard_unit}.parquet")
        repeats = sum(sample_id in notes for sample_id in rows["id"].to_pylist()) if notes else 0
        ctx.run.write_json({**_counts(decisions), "duplicate_keys": repeats},
                           "select", "counts", f"{shard_unit}.json")  # fmt: skip
    ctx.run.write_json({"clusters": decision.clusters, "notes": decision.notes},
                       "select", "selection.json")  # fmt: skip
    return {"samples": len(samples), "kept": int(decision.keep.sum())}


def _name_related(ctx: Context, units: list[str], decision: Decision) -> None:
    """Detail that names the related sample by its key: "duplicate of KEY (similarity s)"."""
    rows = np.flatnonzero(decision.related >= 0)
    related = decision.related[rows]
    for shard in np.unique(related >> 32):
        keys = read_table(ctx.run, "embed", f"{units[shard]}.parquet", columns=["key"])["key"]
        mine = rows[(related >> 32) == shard]
        positions = decision.related[mine] & POSITION_MASK
        for row, key in zip(mine, keys.take(positions).to_pylist(), strict=True):
            decision.detail[row] = f"duplicate of {key} ({decision.detail[row]})"


def _decisions(rows: pa.Table, keep: np.ndarray, reason: np.ndarray, detail: np.ndarray,
               score: np.ndarray, cluster: np.ndarray, shard: str,
               notes: dict[int, str]) -> pa.Table:  # fmt: skip
    failed = reason == FAILED
    status = np.where(failed, "failed", np.where(keep, "kept", "pruned"))
    detail = np.where(failed, np.asarray(rows["error"].to_pylist(), dtype=object), detail)
    for i, sample_id in enumerate(rows["id"].to_pylist() if notes else []):
        note = notes.get(sample_id)
        if note is not None:
            detail[i] = note if detail[i] is None else f"{detail[i]}; {note}"
    return pa.table(
        {
            "key": rows["key"],
            "shard": pa.array([shard] * len(rows), pa.string()),
            "position": rows["position"],
            "id": rows["id"],
            "kept": keep,
            "status": status.astype(str),
            "cluster": cluster,
            "score": score,
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
