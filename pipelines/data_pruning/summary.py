"""summary: `decisions.parquet` (one row per input sample) and `summary.json` in the output,
with kept and pruned per class and what the EL2N probes measured."""

from __future__ import annotations

import io

import pyarrow.parquet as pq

from curation import rundir
from curation.stage import Context
from pipelines.data_pruning import schema
from pipelines.data_pruning.classes import class_names, class_table, class_warnings
from pipelines.data_pruning.criteria import CRITERIA, loaders
from pipelines.data_pruning.reshard import output_folder


def write_summary(ctx: Context, unit: str) -> dict:
    cfg = ctx.config
    out = output_folder(ctx)
    units = schema.shard_units(ctx)
    buffer = io.BytesIO()
    with pq.ParquetWriter(buffer, schema.DECISION_SCHEMA) as writer:  # one shard at a time
        for shard_unit in units:
            writer.write_table(schema.read_decisions(ctx.run, shard_unit))
    out.write_bytes(buffer.getvalue(), schema.DECISIONS)
    counts = [schema.read_counts(ctx.run, u) for u in units]
    totals = schema.sum_counts(counts)
    shard_errors, empty_shards = {}, []
    for shard, shard_unit in zip(cfg.shards, units, strict=True):
        stats = rundir.read_stats(ctx.run, "embed", shard_unit)
        if "shard_error" in stats:
            shard_errors[shard] = stats["shard_error"]
        if stats["samples"] == 0:
            empty_shards.append(shard)
    valid = totals["kept"] + totals["pruned"]
    classes = class_table([schema.read_tallies(ctx.run, u) for u in units], class_names(cfg.shards))
    summary = {
        "input_samples": totals["input"],
        "kept_samples": totals["kept"],
        "pruned_samples": totals["pruned"],
        "failed_samples": totals["failed"],
        "heldout_samples": totals["heldout"],
        "valid_samples": valid,
        "rate_requested": cfg.rate,
        "rate_achieved": round(totals["pruned"] / valid, 6) if valid else 0.0,
        "reasons": totals["reasons"],
        "metric": cfg.metric,
        "model": cfg.model,
        "pretrained": cfg.pretrained,
        "clusters": cfg.clusters,
        "seed": cfg.seed,
        "input_shards": len(cfg.shards),
        "output_shards": [f"{u}.tar" for u in units],
        "parameters": {"filter": cfg.filter, **CRITERIA[cfg.metric].parameter_values(cfg)},
        **schema.read_selection_record(ctx.run, units),
        "shard_errors": shard_errors,
        "empty_shards": empty_shards,
        "duplicate_keys": sum(c.get("duplicate_keys", 0) for c in counts),
        "classes": classes,
        "class_warnings": class_warnings(classes),
    }
    if "el2n" in loaders(cfg):
        _probe_notes(summary["notes"], schema.read_el2n_record(ctx.run))
    out.write_json(summary, schema.SUMMARY)
    return {"samples": totals["input"]}


def _probe_notes(notes: dict, record: dict) -> None:
    """The probes' accuracy and score spread under the el2n notes, and a warning when they
    are near chance (the scores then say little about difficulty)."""
    probes = {name: value for name, value in record.items() if name != "classes"}
    el2n = notes.setdefault("el2n", {})
    el2n["probes"] = probes
    if probes["near_chance"]:
        measured = "held_back" if probes["held_back_samples"] else "train"
        el2n["warning"] = (
            f"the EL2N probes are near chance: {measured.replace('_', '-')} accuracy "
            f"{probes[f'{measured}_accuracy']:.3f} with {len(record['classes'])} classes "
            f"(chance {probes['chance']:.3f}): the scores say little about difficulty; train "
            "longer (--el2n-steps, --el2n-lr) or check the labels"
        )


def clean_summary(ctx: Context) -> None:
    out = output_folder(ctx)
    for name in (schema.SUMMARY, schema.DECISIONS):
        out.remove(name)
