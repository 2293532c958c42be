"""Selection as stages, none of which holds every sample:

- `select_stats` (per shard): the columns selection reads of the shard, gathered into one file
  (SemDeDup's similarities come from every cluster bucket), and its key hashes, sorted;
- `select_repeats` (per span of key hashes): the keys that occur more than once;
- `select_plan` (a barrier): passes over every shard's columns fix the thresholds and quotas
  (`decide`); writes `select_plan/plan.json`;
- `select` (per shard): the shard's decisions under the plan: keep list, decisions (every
  sample: kept, pruned, failed or held out, and why) and counts.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation import rundir
from curation.stage import Context
from pipelines.data_pruning import duplicates, schema
from pipelines.data_pruning.criteria import CRITERIA, loaders
from pipelines.data_pruning.decide import decide, decide_shard
from pipelines.data_pruning.decision import FAILED, HELDOUT, Decision
from pipelines.data_pruning.samples import COMMON_ROWS, ShardSamples, load_shard
from pipelines.data_pruning.selection import Selection

STATUS_CODES = {name: code for code, name in enumerate(schema.STATUSES)}


def gather_shard(ctx: Context, unit: str) -> dict:
    rows = schema.read_rows(ctx.run, unit, COMMON_ROWS)
    samples = load_shard(ctx.run, unit, ctx.config.holdout, loaders(ctx.config), rows)
    schema.write_shard_columns(ctx.run, unit, samples.to_table())
    duplicates.write_hashes(ctx.run, unit, rows["key_hash"].to_numpy(), samples.ids)
    return {"samples": len(samples)}


def _stored(run, unit: str) -> ShardSamples:
    return ShardSamples.from_table(int(unit), schema.read_shard_columns(run, unit))


def plan_selection(ctx: Context, unit: str) -> dict:
    units = schema.shard_units(ctx)
    source = partial(map, partial(_stored, ctx.run), units)
    plan = decide(Selection(source, partial(schema.read_centroids, ctx.run)), ctx.config)
    schema.write_plan(ctx.run, plan)
    return {"samples": plan["candidates"], "kept": plan["target"]}


_PLANS: dict[tuple[str, str | None], dict] = {}  # the plan a worker read, by run and stage hash


def _plan(run) -> dict:
    """The plan, read once per worker process (units of one worker share it)."""
    key = (run.url, rundir.recorded_hash(run, "select_plan"))
    if key not in _PLANS:
        _PLANS.clear()
        _PLANS[key] = schema.read_plan(run)
    return _PLANS[key]


def select_shard(ctx: Context, unit: str) -> dict:
    cfg = ctx.config
    samples = _stored(ctx.run, unit)
    decision = decide_shard(_plan(ctx.run), samples, cfg)
    embedded = schema.read_rows(ctx.run, unit, ["key", "position", "id", "label", "error"])
    shard = cfg.given_shards[int(unit)]
    notes = duplicates.shard_notes(ctx.run, unit, embedded["key"], cfg.given_shards)
    decisions = _decisions(embedded, decision, samples.cluster, shard, notes)
    keep_positions = embedded["position"].to_numpy()[decision.keep].astype(np.int32)
    counts = {**schema.count_decisions(decisions), "duplicate_keys": len(notes)}
    schema.write_selection(ctx.run, unit, keep_positions, decisions, counts)
    schema.write_tallies(ctx.run, unit, _tallies(samples, decision, cfg))
    return {"samples": len(samples), "kept": int(decision.keep.sum())}


def _tallies(samples: ShardSamples, decision: Decision, cfg) -> dict[str, np.ndarray]:
    """Kept per cluster of the per-cluster table, and kept and pruned per label (-1: none)."""
    cluster = CRITERIA[cfg.metric].table_clusters(samples)[decision.keep]
    rows = samples.candidates
    labels, index = np.unique(samples.label[rows], return_inverse=True)
    kept = decision.keep[rows]
    return {
        "kept_by_cluster": np.bincount(cluster, minlength=cfg.clusters),
        "labels": labels,
        "kept": np.bincount(index[kept], minlength=len(labels)),
        "pruned": np.bincount(index[~kept], minlength=len(labels)),
    }


def _decisions(embedded: pa.Table, decision: Decision, cluster: np.ndarray, shard: str,
               notes: dict[int, str]) -> pa.Table:  # fmt: skip
    """The shard's decision rows, built as Arrow columns (status and reason from codes, a
    failed row's detail its error): no Python object per row but the details."""
    failed = decision.codes == decision.table.index(FAILED)
    status = np.where(decision.keep, STATUS_CODES[schema.KEPT], STATUS_CODES[schema.PRUNED])
    status[decision.codes == decision.table.index(HELDOUT)] = STATUS_CODES[schema.HELDOUT]
    status[failed] = STATUS_CODES[schema.FAILED]
    detail = decision.detail.copy()
    rows = np.flatnonzero(failed)
    detail[rows] = embedded["error"].take(rows).to_pylist()
    for position, note in notes.items():
        detail[position] = note if detail[position] is None else f"{detail[position]}; {note}"
    return pa.table(
        {
            "key": embedded["key"],
            "shard": pa.repeat(pa.scalar(shard, pa.string()), len(embedded)),
            "position": embedded["position"],
            "id": embedded["id"],
            "kept": decision.keep,
            "status": _named(status, schema.STATUSES),
            "cluster": cluster,
            "label": pc.if_else(pc.less(embedded["label"], 0), None, embedded["label"]),
            "score": decision.score,
            "reason": _named(decision.codes, decision.table),
            "detail": pa.array(detail, pa.string()),
        },
        schema=schema.DECISION_SCHEMA,
    )


def _named(codes: np.ndarray, names: tuple[str, ...]) -> pa.Array:
    """Strings from codes into `names`, built in Arrow."""
    indices = pa.array(codes.astype(np.int16))
    return pa.DictionaryArray.from_arrays(indices, pa.array(names, pa.string())).cast(pa.string())
