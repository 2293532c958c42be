"""select: apply the pruning rate over every valid sample; write per-shard keep-lists and
decisions (every sample: kept, pruned or failed, and why).

Prototypicality is the cosine distance to the nearest centroid that `assign` computed
(Sorscher et al. 2022): keep the hardest (largest) or the easiest (smallest).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.stage import Context
from metrics.selection import kept_count, random_keep, rank_keep
from pipelines.data_pruning.layout import read_table, save_array, shard_units, write_table

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
])

REASONS = {  # (metric, keep) -> (reason when kept, reason when pruned)
    ("prototypicality", "hard"): ("hardest", "too_easy"),
    ("prototypicality", "easy"): ("easiest", "too_hard"),
    ("random", "hard"): ("random_draw", "random_draw"),
    ("random", "easy"): ("random_draw", "random_draw"),
}


def _load(ctx: Context, unit: str) -> pa.Table:
    rows = read_table(ctx.run, "embed", f"{unit}.parquet",
                      columns=["id", "key", "position", "status", "error"])
    assigned = read_table(ctx.run, "assign", f"{unit}.parquet")
    return rows.append_column("cluster", assigned["cluster"]).append_column(
        "score", assigned["distance"].cast(pa.float64()))


def _status_is(table: pa.Table, status: str) -> np.ndarray:
    return pc.equal(table["status"], status).to_numpy(zero_copy_only=False).astype(bool)


def _keep_mask(ctx: Context, ids: np.ndarray, scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    cfg = ctx.config
    target = kept_count(int(valid.sum()), cfg.rate)
    candidates = np.flatnonzero(valid)
    if cfg.metric == "random":
        chosen = random_keep(len(candidates), target, cfg.seed)
    else:
        chosen = rank_keep(scores[candidates], ids[candidates], target, cfg.keep == "hard")
    keep = np.zeros(len(ids), dtype=bool)
    keep[candidates[chosen]] = True
    return keep


def select_samples(ctx: Context, unit: str) -> dict:
    cfg = ctx.config
    units = shard_units(ctx)
    ids, scores, valid, sizes = [], [], [], []
    for shard_unit in units:
        table = _load(ctx, shard_unit)
        ids.append(table["id"].to_numpy())
        scores.append(table["score"].to_numpy(zero_copy_only=False))
        valid.append(_status_is(table, "ok"))
        sizes.append(len(table))
    keep = _keep_mask(ctx, np.concatenate(ids), np.concatenate(scores), np.concatenate(valid))
    kept_reason, pruned_reason = REASONS[(cfg.metric, cfg.keep)]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    for i, shard_unit in enumerate(units):
        shard_keep = keep[offsets[i] : offsets[i + 1]]
        table = _load(ctx, shard_unit)
        save_array(ctx.run, table["position"].to_numpy()[shard_keep].astype(np.int32),
                   "select", "keep", f"{shard_unit}.npy")
        decisions = _decisions(table, shard_keep, cfg.shards[i], kept_reason, pruned_reason)
        write_table(ctx.run, decisions, "select", "decisions", f"{shard_unit}.parquet")
        ctx.run.write_json(_counts(decisions), "select", "counts", f"{shard_unit}.json")
    total_valid = int(np.concatenate(valid).sum())
    ctx.run.write_json({"valid_samples": total_valid, "kept_samples": int(keep.sum()),
                        "target": kept_count(total_valid, cfg.rate)}, "select", "selection.json")
    return {"samples": int(offsets[-1])}


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


def _decisions(table: pa.Table, keep: np.ndarray, shard: str, kept_reason: str,
               pruned_reason: str) -> pa.Table:
    failed = _status_is(table, "failed")
    status = np.where(failed, "failed", np.where(keep, "kept", "pruned"))
    reason = np.where(failed, "failed", np.where(keep, kept_reason, pruned_reason))
    return pa.table({
        "key": table["key"],
        "shard": pa.array([shard] * len(table), pa.string()),
        "position": table["position"],
        "id": table["id"],
        "kept": keep,
        "status": status.astype(str),
        "cluster": table["cluster"],
        "score": table["score"],
        "reason": reason.astype(str),
        "detail": table["error"],
    }, schema=DECISION_SCHEMA)
