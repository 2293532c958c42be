"""summary: `decisions.parquet` (one row per input sample) and `summary.json` in the output."""

from __future__ import annotations

import io

import pyarrow.parquet as pq

from curation.stage import Context
from pipelines.data_pruning.layout import read_table, shard_units
from pipelines.data_pruning.reshard import output_folder
from pipelines.data_pruning.select import DECISION_SCHEMA

SUMMARY_FILES = ("summary.json", "decisions.parquet")


def write_summary(ctx: Context, unit: str) -> dict:
    cfg = ctx.config
    out = output_folder(ctx)
    units = shard_units(ctx)
    buffer = io.BytesIO()
    with pq.ParquetWriter(buffer, DECISION_SCHEMA) as writer:  # streamed: one shard at a time
        for shard_unit in units:
            writer.write_table(read_table(ctx.run, "select", "decisions", f"{shard_unit}.parquet"))
    out.write_bytes(buffer.getvalue(), "decisions.parquet")
    counts = [ctx.run.read_json("select", "counts", f"{u}.json") for u in units]
    totals = {k: sum(c[k] for c in counts) for k in ("input", "kept", "pruned", "failed")}
    reasons: dict[str, int] = {}
    for c in counts:
        for reason, n in c["reasons"].items():
            reasons[reason] = reasons.get(reason, 0) + n
    shard_errors, empty_shards = {}, []
    for shard, shard_unit in zip(cfg.shards, units, strict=True):
        stats = ctx.run.read_json("embed", "stats", f"{shard_unit}.json")
        if "shard_error" in stats:
            shard_errors[shard] = stats["shard_error"]
        if stats["samples"] == 0:
            empty_shards.append(shard)
    valid = totals["kept"] + totals["pruned"]
    summary = {
        "input_samples": totals["input"],
        "kept_samples": totals["kept"],
        "pruned_samples": totals["pruned"],
        "failed_samples": totals["failed"],
        "valid_samples": valid,
        "rate_requested": cfg.rate,
        "rate_achieved": round(totals["pruned"] / valid, 6) if valid else 0.0,
        "reasons": reasons,
        "metric": cfg.metric,
        "model": cfg.model,
        "pretrained": cfg.pretrained,
        "clusters": cfg.clusters,
        "seed": cfg.seed,
        "input_shards": len(cfg.shards),
        "output_shards": [f"{u}.tar" for u in units],
        "parameters": _parameters(cfg),
        **ctx.run.read_json("select", "selection.json"),
        "shard_errors": shard_errors,
        "empty_shards": empty_shards,
        "duplicate_keys": sum(c.get("duplicate_keys", 0) for c in counts),
    }
    out.write_json(summary, "summary.json")
    return {"samples": totals["input"]}


def _parameters(cfg) -> dict:
    """The metric's parameters, as run."""
    names = ["filter"]
    names += {
        "prototypicality": ["keep"],
        "dbp": ["eps", "tau", "neighbors", "balance"],
        "semdedup": ["eps"],
        "el2n": ["el2n_models", "el2n_epochs", "el2n_hidden", "el2n_offset"],
        "ccs": ["ccs_score", "ccs_cutoff", "el2n_models", "el2n_epochs", "el2n_hidden"],
    }.get(cfg.metric, [])
    values = {name: getattr(cfg, name) for name in names}
    if cfg.metric == "dbp":
        values["eps"] = cfg.dedup_eps
    return values


def clean_summary(ctx: Context) -> None:
    out = output_folder(ctx)
    for name in SUMMARY_FILES:
        out.remove(name)
