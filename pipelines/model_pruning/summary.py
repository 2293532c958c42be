"""summary: what a model-pruning run cost, in the output folder.

`curate model prune`: `model.pt` (the last level's network, masks baked in: it loads into the
plain network class with `load_state_dict`), `summary.json` and `summary.md` (dense against
pruned: accuracy, parameters, nonzero parameters, sparsity per layer, every level).
`curate model sweep`: `summary.json`, `results.csv` and `results.md` (accuracy by method and KD
against sparsity, mean ± std over seeds).
"""

from __future__ import annotations

import csv
import io
import statistics

from curation.stage import Context
from curation.storage import Folder
from pipelines.model_pruning import schema
from pipelines.model_pruning.data import curated_fraction
from pipelines.model_pruning.pipeline import level_count, members
from pipelines.model_pruning.schedules import targets

RESULT_COLUMNS = ("member", "method", "sparsity", "seed", "kd", "accuracy", "achieved_sparsity",
                  "nonzero_parameters", "parameters", "alpha")  # fmt: skip


def output_folder(ctx: Context) -> Folder:
    return Folder(ctx.config.output)


def _data(config, dense: dict) -> dict:
    return {
        "train_shards": len(config.train),
        "train_samples": dense["train_samples"],
        "eval_shards": len(config.eval),
        "eval_samples": dense["eval_samples"],
        "classes": dense["classes"],
        "curated": curated_fraction(config.train),
    }


def _network(config) -> dict:
    return {"model": config.model, "checkpoint": config.checkpoint,
            "input": {"image_size": config.image_size, "mean": config.mean, "std": config.std},
            "exclude": config.exclude}  # fmt: skip


def _side(metrics: dict) -> dict:
    keys = ("accuracy", "parameters", "nonzero_parameters", "prunable_parameters",
            "prunable_nonzero", "sparsity")  # fmt: skip
    return {key: metrics[key] for key in keys}


def layer_rows(report: dict) -> list[dict]:
    return [{"layer": name, **counts} for name, counts in report["layers"].items()]


def write_prune_summary(ctx: Context, unit: str) -> dict:
    config, run, out = ctx.config, ctx.run, output_folder(ctx)
    count = level_count(config)
    levels = [schema.read_metrics(run, schema.level_parts(level)) for level in range(count + 1)]
    controls = {
        kind: [schema.read_metrics(run, schema.level_parts(level, unit=kind))
               for level in range(1, count + 1)]
        for kind in (schema.CONTROLS if config.controls else ())
    }  # fmt: skip
    final = schema.level_parts(count)
    summary = {
        "pipeline": "model-prune",
        **_network(config),
        "method": config.method,
        "nm": {"nm": config.nm, "layout": config.nm_layout} if config.method == "nm" else None,
        "schedule": config.schedule,
        "sparsity_requested": config.sparsity,
        "levels": count,
        "kd": config.kd,
        "seed": config.seed,
        "data": _data(config, levels[0]),
        "dense": _side(levels[0]),
        "pruned": _side(levels[-1]),
        "accuracy_drop": levels[0]["accuracy"] - levels[-1]["accuracy"],
        "layers": layer_rows(schema.read_report(run, final)),
        "level_metrics": levels,
        "controls": controls,
        "model_file": schema.MODEL,
    }
    out.write_bytes(run.read_bytes(*final, schema.MODEL), schema.MODEL)
    out.write_json(summary, schema.SUMMARY)
    out.write_bytes(prune_markdown(summary).encode(), schema.SUMMARY_TABLE)
    return {"samples": 0}


def _percent(value: float) -> str:
    return f"{100 * value:.2f}"


def prune_markdown(summary: dict) -> str:
    """Dense against pruned, every level (and control), then sparsity per layer."""
    dense, pruned = summary["dense"], summary["pruned"]
    lines = [
        f"{summary['model']}: {summary['method']} pruning, {summary['schedule']} to "
        f"{summary['sparsity_requested']:g} sparsity"
        + (", fine-tuned with KD" if summary["kd"] else ""),
        "",
        "| | dense | pruned |",
        "|---|---|---|",
        f"| top-1 accuracy (%) | {_percent(dense['accuracy'])} | {_percent(pruned['accuracy'])} |",
        f"| parameters | {dense['parameters']:,} | {pruned['parameters']:,} |",
        f"| nonzero parameters | {dense['nonzero_parameters']:,} | "
        f"{pruned['nonzero_parameters']:,} |",
        f"| sparsity of the prunable weights (%) | {_percent(dense['sparsity'])} | "
        f"{_percent(pruned['sparsity'])} |",
        "",
    ]
    kinds = [kind for kind in schema.CONTROLS if kind in summary["controls"]]
    lines += [
        "| level | sparsity (%) | steps | top-1 (%) |"
        + "".join(f" {k} top-1 (%) |" for k in kinds),
        "|---|---|---|---|" + "---|" * len(kinds),
    ]
    for level in summary["level_metrics"]:
        index = level["level"]
        cells = [_percent(summary["controls"][k][index - 1]["accuracy"]) if index else ""
                 for k in kinds]  # fmt: skip
        lines.append(
            f"| {index} | {_percent(level['sparsity'])} | {level['steps']} | "
            f"{_percent(level['accuracy'])} |" + "".join(f" {c} |" for c in cells)
        )
    lines += ["", "| layer | weights | nonzero | sparsity (%) |", "|---|---|---|---|"]
    lines += [f"| {row['layer']} | {row['total']:,} | {row['unpruned']:,} | "
              f"{_percent(row['sparsity'])} |" for row in summary["layers"]]  # fmt: skip
    return "\n".join(lines) + "\n"


def write_sweep_summary(ctx: Context, unit: str) -> dict:
    config, run, out = ctx.config, ctx.run, output_folder(ctx)
    dense = schema.read_metrics(run, schema.level_parts(0))
    rows, layers = [], {}
    for name, arm in members(config).items():
        parts = schema.level_parts(len(targets(config, arm.sparsity)), name)
        metrics = schema.read_metrics(run, parts)
        layers[name] = layer_rows(schema.read_report(run, parts))
        rows.append({"member": name, "method": arm.method, "sparsity": arm.sparsity,
                     "seed": arm.seed, "kd": arm.kd, "accuracy": metrics["accuracy"],
                     "achieved_sparsity": metrics["sparsity"],
                     "nonzero_parameters": metrics["nonzero_parameters"],
                     "parameters": metrics["parameters"], "alpha": metrics["alpha"],
                     "model_file": "/".join((*parts, schema.MODEL))})  # fmt: skip
    summary = {
        "pipeline": "model-sweep",
        **_network(config),
        "schedule": config.schedule,
        "methods": config.methods,
        "sparsities": config.sparsities,
        "seeds": config.seed_list,
        "kd": config.kd,
        "steps": config.steps,
        "data": _data(config, dense),
        "dense": _side(dense),
        "rows": rows,
        "layers": layers,
    }
    out.write_json(summary, schema.SUMMARY)
    out.write_bytes(_csv(rows, RESULT_COLUMNS).encode(), schema.RESULTS_CSV)
    out.write_bytes(sweep_markdown(summary).encode(), schema.RESULTS_TABLE)
    return {"samples": 0}


def _csv(rows: list[dict], columns: tuple[str, ...]) -> str:
    """The columns of `rows`, None as an empty cell."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if value is None else value for key, value in row.items()})
    return buffer.getvalue()


def accuracy_cell(values: list[float]) -> str:
    """Percent, with the sample std over seeds when there are several."""
    mean = _percent(statistics.fmean(values))
    return mean + (f" ± {_percent(statistics.stdev(values))}" if len(values) > 1 else "")


def sweep_markdown(summary: dict) -> str:
    """Accuracy (%) by method and KD (rows) against sparsity (columns)."""
    sparsities = summary["sparsities"]
    lines = [
        f"{summary['model']}, {summary['schedule']}, {summary['steps']} fine-tuning steps; "
        f"top-1 accuracy (%) over {len(summary['seeds'])} seed(s). Dense: "
        f"{_percent(summary['dense']['accuracy'])}.",
        "",
        "| method | KD | " + " | ".join(f"sparsity {s:g}" for s in sparsities) + " |",
        "|---|---|" + "---|" * len(sparsities),
    ]
    for method in summary["methods"]:
        for kd in sorted({row["kd"] for row in summary["rows"]}):
            cells = [[r["accuracy"] for r in summary["rows"] if r["method"] == method
                      and r["kd"] == kd and r["sparsity"] == s] for s in sparsities]  # fmt: skip
            lines.append(f"| {method} | {'yes' if kd else 'no'} | "
                         + " | ".join(accuracy_cell(c) for c in cells) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


STRUCTURED_COLUMNS = ("member", "importance", "amount", "unit", "seed", "kd", "accuracy",
                      "scratch_accuracy", "params_before", "params_after", "macs_before",
                      "macs_after", "macs_reduction", "file_bytes_before",
                      "file_bytes_after")  # fmt: skip


def _structured_row(name: str, metrics: dict, scratch: dict | None) -> dict:
    before, after = metrics["before"], metrics["after"]
    return {"member": name, "importance": metrics["importance"], "amount": metrics["amount"],
            "unit": metrics["unit"], "seed": metrics["seed"], "kd": metrics["kd"],
            "accuracy": metrics["accuracy"],
            "scratch_accuracy": scratch["accuracy"] if scratch else None,
            "params_before": before["params"], "params_after": after["params"],
            "macs_before": before["macs"], "macs_after": after["macs"],
            "macs_reduction": metrics["macs_reduction"],
            "file_bytes_before": before["file_bytes"], "file_bytes_after": after["file_bytes"],
            "steps": metrics["steps"], "model_file": f"{name}.pt",
            "exported_file": None if metrics["export_error"] else f"{name}.pt2",
            "export_error": metrics["export_error"]}  # fmt: skip


def write_structured_summary(ctx: Context, unit: str) -> dict:
    """Every member's pruned network copied to OUTPUT/<member>.pt (and <member>-scratch.pt),
    summary.json, results.csv and results.md."""
    from pipelines.model_pruning.channels import SCRATCH_STAGE, member_parts
    from pipelines.model_pruning.pipeline import channel_members

    config, run, out = ctx.config, ctx.run, output_folder(ctx)
    dense = schema.read_metrics(run, schema.level_parts(0))
    rows = []
    for name in channel_members(config):
        parts = member_parts(name)
        scratch = None
        if config.scratch:
            scratch = run.read_json(*member_parts(name, SCRATCH_STAGE), schema.METRICS)
            _copy_network(run, out, member_parts(name, SCRATCH_STAGE), f"{name}-scratch")
        _copy_network(run, out, parts, name)
        rows.append(_structured_row(name, run.read_json(*parts, schema.METRICS), scratch))
    summary = {
        "pipeline": "model-structured",
        **_network(config),
        "schedule": config.schedule,
        "levels": config.gradual_levels if config.schedule == "gradual" else 1,
        "importances": config.importances,
        "unit": config.unit,
        "amounts": config.amounts,
        "scope": config.scope,
        "round_to": config.round_to,
        "seeds": config.seed_list,
        "kd": config.kd,
        "scratch": config.scratch,
        "steps": config.steps,
        "data": _data(config, dense),
        "dense": _side(dense),
        "rows": rows,
    }
    out.write_json(summary, schema.SUMMARY)
    out.write_bytes(_csv(rows, STRUCTURED_COLUMNS).encode(), schema.RESULTS_CSV)
    out.write_bytes(structured_markdown(summary).encode(), schema.RESULTS_TABLE)
    return {"samples": 0}


def _copy_network(run: Folder, out: Folder, parts: tuple[str, ...], name: str) -> None:
    """A member's pruned network to OUTPUT/<name>.pt and, when it exported, <name>.pt2."""
    from pipelines.model_pruning.channels import EXPORTED, PRUNED

    out.write_bytes(run.read_bytes(*parts, PRUNED), f"{name}.pt")
    if run.exists(*parts, EXPORTED):
        out.write_bytes(run.read_bytes(*parts, EXPORTED), f"{name}.pt2")


def structured_markdown(summary: dict) -> str:
    """One row per member: accuracy (fine-tuned, from scratch), parameters, MACs, file size."""
    dense = summary["dense"]
    lines = [
        f"{summary['model']}: channels removed ({summary['scope']} scope, "
        f"{summary['schedule']}), {summary['steps']} fine-tuning steps. Dense: "
        f"{_percent(dense['accuracy'])}% top-1, {dense['parameters']:,} parameters.",
        "",
        "| member | top-1 (%) | from scratch (%) | parameters | MACs | MACs reduction | file |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in summary["rows"]:
        scratch = "" if r["scratch_accuracy"] is None else _percent(r["scratch_accuracy"])
        lines.append(
            f"| {r['member']} | {_percent(r['accuracy'])} | {scratch} | "
            f"{r['params_before']:,} -> {r['params_after']:,} | "
            f"{r['macs_before']:,} -> {r['macs_after']:,} | {r['macs_reduction']:.2f}x | "
            f"{r['file_bytes_before']:,} -> {r['file_bytes_after']:,} bytes |"
        )
    return "\n".join(lines) + "\n"


def clean_summary(ctx: Context) -> None:
    out = output_folder(ctx)
    for name in (schema.MODEL, schema.SUMMARY, schema.SUMMARY_TABLE, schema.RESULTS_CSV,
                 schema.RESULTS_TABLE):  # fmt: skip
        out.remove(name)
    if hasattr(ctx.config, "importances"):
        from pipelines.model_pruning.pipeline import channel_members

        for name in channel_members(ctx.config):
            for suffix in (".pt", ".pt2", "-scratch.pt", "-scratch.pt2"):
                out.remove(f"{name}{suffix}")
