"""summary: `decisions.parquet` (one row per input sample) and `summary.json` in the output,
with kept and pruned per class and what the EL2N probes measured."""

from __future__ import annotations

import pyarrow.parquet as pq

from curation import rundir
from curation.stage import Context
from curation.storage import Folder
from pipelines.data_pruning import audit, schema
from pipelines.data_pruning.classes import class_names, class_table, class_warnings
from pipelines.data_pruning.criteria import CRITERIA, loaders
from pipelines.data_pruning.keeplist import uid_array, write_keep_list
from pipelines.data_pruning.reshard import output_folder


def write_summary(ctx: Context, unit: str) -> dict:
    cfg = ctx.config
    out = output_folder(ctx)
    units = schema.shard_units(ctx)
    with out.open_atomic(schema.DECISIONS) as stream:  # streamed, a shard at a time
        writer = pq.ParquetWriter(
            stream, schema.DECISION_SCHEMA, use_dictionary=schema.DECISION_DICTIONARY
        )
        for shard_unit in units:
            writer.write_table(schema.read_decisions(ctx.run, shard_unit))
        writer.close()  # the footer; on an error nothing is closed, and nothing published
    kept_uids = _write_kept_uids(ctx, out, units)
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
    rate_achieved = round(totals["pruned"] / valid, 6) if valid else 0.0
    selection = schema.read_selection_record(ctx.run, units)
    if "el2n" in loaders(cfg) and cfg.el2n_source == "probe":  # networks record no probes
        _probe_notes(selection["notes"], schema.read_el2n_record(ctx.run))
    classes = class_table(
        [schema.read_tallies(ctx.run, u) for u in units],
        class_names(cfg.shards, cfg.storage_options),
    )
    by_class = class_warnings(classes)
    embedded = cfg.embeddings is None and CRITERIA[cfg.metric].embeds  # with the model
    summary = {
        "input_samples": totals["input"],
        "kept_samples": totals["kept"],
        "pruned_samples": totals["pruned"],
        "failed_samples": totals["failed"],
        "heldout_samples": totals["heldout"],
        "valid_samples": valid,
        "rate_requested": cfg.rate,
        "rate_achieved": rate_achieved,
        "explanation": audit.explanation(cfg, selection["notes"]),
        "warnings": audit.warnings(cfg, selection["notes"], rate_achieved) + by_class,
        "reasons": totals["reasons"],
        "metric": cfg.metric,
        "model": cfg.model if embedded else None,
        "pretrained": cfg.pretrained if embedded else None,
        "embeddings": cfg.embeddings,
        "clusters": cfg.clusters,
        "seed": cfg.seed,
        "input_shards": len(cfg.shards),
        "output_shards": [f"{schema.output_stem(cfg, i)}.tar" for i in range(len(units))],
        "metadata_copied": _copy_metadata(cfg, out),
        "parameters": {"filter": cfg.filter, **CRITERIA[cfg.metric].parameter_values(cfg)},
        **selection,
        "shard_errors": shard_errors,
        "empty_shards": empty_shards,
        "duplicate_keys": sum(c.get("duplicate_keys", 0) for c in counts),
        "kept_uids": kept_uids,
        "classes": classes,
        "class_warnings": by_class,
    }
    out.write_json(summary, schema.SUMMARY)
    return {"samples": totals["input"]}


def _copy_metadata(cfg, out) -> list[str]:
    """Dataset-level files beside the inputs (classes.json...), copied as they are."""
    root = schema.input_root(cfg.shards)
    if not root:
        return []
    source = Folder(root, cfg.storage_options)
    copied = []
    for name in schema.METADATA_FILES:
        if source.exists(name):
            out.write_bytes(source.read_bytes(name), name)
            copied.append(name)
    return copied


def _write_kept_uids(ctx: Context, out, units: list[str]) -> int | None:
    """DataComp's keep-list of the kept samples, when the samples carry uids (None if not)."""
    parts = []
    for unit in units:
        rows = schema.read_rows(ctx.run, unit, ["position", "uid"])
        if rows["uid"].null_count == len(rows) and len(rows):
            return None
        kept = set(schema.read_keep(ctx.run, unit).tolist())
        uids = [u for p, u in zip(rows["position"].to_pylist(), rows["uid"].to_pylist(),
                                  strict=True) if p in kept and u]  # fmt: skip
        parts.append(uid_array(uids))
    if not any(len(p) for p in parts):
        return None
    return write_keep_list(out, parts, schema.KEPT_UIDS)


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
    for name in (schema.SUMMARY, schema.DECISIONS, schema.KEPT_UIDS, *schema.METADATA_FILES):
        out.remove(name)
