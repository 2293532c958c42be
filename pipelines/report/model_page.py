"""The report's model-pruning page: what a `curate model prune`, `sweep` or `structured` run
cost. Accuracy against sparsity (one line per method, dashed with KD; a prune run's levels and
controls) and sparsity per layer as bars; for channel pruning, accuracy against MACs (fine-tuned
and from scratch); accuracy against the latency `curate model bench` measured; the tables of
summary.json. Self-contained like the main page: plots are data URIs."""

from __future__ import annotations

from html import escape

import numpy as np
import pandas as pd

from curation import rundir
from curation.errors import CurateError
from curation.storage import Folder
from pipelines.plotting import new_figure, png_bytes
from pipelines.report.page import figure, page, table

PIPELINES = ("model-prune", "model-sweep", "model-structured")
LATENCY = "latency.json"  # written by curate model bench
COLOURS = [f"C{i}" for i in range(10)]


def is_model_run(run: Folder) -> bool:
    return rundir.read_config(run)["pipeline"] in PIPELINES


def read_summary(run: Folder) -> dict:
    """The summary.json of a finished model-pruning run (in its output folder)."""
    output = Folder(rundir.read_config(run)["config"]["output"])
    if not output.exists("summary.json"):
        raise CurateError(
            f"run {run.url} has not finished: run curate model prune/sweep to the end"
        )
    return output.read_json("summary.json")


def title(run: Folder) -> str:
    """The run in a few words: pipeline, network, method and sparsity."""
    summary = read_summary(run)
    if summary["pipeline"] == "model-sweep":
        what = f"{', '.join(summary['methods'])} at {', '.join(map(str, summary['sparsities']))}"
    elif summary["pipeline"] == "model-structured":
        mark = "x MACs" if summary["unit"] == "macs" else " of the channels"
        what = f"{', '.join(summary['importances'])} channels to " + ", ".join(
            f"{a:g}{mark}" for a in summary["amounts"]
        )
    else:
        what = f"{summary['method']} {summary['schedule']} to {summary['sparsity_requested']:g}"
    return f"{summary['pipeline']}: {summary['model']}, {what} ({run.url})"


def _percent(value: float) -> float:
    return round(100 * value, 2)


def accuracy_curve(summary: dict) -> bytes:
    """Top-1 against achieved sparsity: a sweep's methods (solid, dashed with KD), or a prune
    run's levels and its controls; the dense network dotted."""
    fig, axes = new_figure(6.5, 4.0)
    if summary["pipeline"] == "model-sweep":
        rows = pd.DataFrame(summary["rows"])
        for colour, method in zip(COLOURS, summary["methods"], strict=False):
            for kd, style in ((False, "-"), (True, "--")):
                line = rows[(rows["method"] == method) & (rows["kd"] == kd)]
                if len(line):
                    means = line.groupby("achieved_sparsity")["accuracy"].mean()
                    axes.plot(100 * means.index, 100 * means.to_numpy(), style, color=colour,
                              marker="o", label=method + (" + KD" if kd else ""))  # fmt: skip
    else:
        main = f"{summary['method']} {summary['schedule']}"
        series = {main: summary["level_metrics"][1:], **summary["controls"]}
        for colour, (name, points) in zip(COLOURS, series.items(), strict=False):
            axes.plot([100 * p["sparsity"] for p in points], [100 * p["accuracy"] for p in points],
                      "-o", color=colour, label=name)  # fmt: skip
    axes.axhline(100 * summary["dense"]["accuracy"], color="black", linestyle=":", label="dense")
    axes.set_xlabel("sparsity of the prunable weights (%)")
    axes.set_ylabel("top-1 accuracy (%)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return png_bytes(fig)


def layer_bars(layers: dict[str, list[dict]]) -> bytes:
    """Sparsity per layer, one bar per layer for each network in `layers`."""
    names = [row["layer"] for row in next(iter(layers.values()))]
    width = 0.8 / len(layers)
    fig, axes = new_figure(max(6.5, 0.35 * len(names)), 3.6)
    x = np.arange(len(names))
    for i, (colour, (label, rows)) in enumerate(zip(COLOURS, layers.items(), strict=False)):
        axes.bar(x + i * width - 0.4 + width / 2, [100 * r["sparsity"] for r in rows], width,
                 color=colour, label=label)  # fmt: skip
    axes.set_xticks(x, names, rotation=90, fontsize=7)
    axes.set_ylabel("sparsity (%)")
    axes.set_ylim(0, 100)
    axes.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return png_bytes(fig)


def _sweep_layers(summary: dict) -> dict[str, list[dict]]:
    """Each method's layers at the highest sparsity (first seed, without KD when run)."""
    top = max(summary["sparsities"])
    chosen = {}
    for row in sorted(summary["rows"], key=lambda r: (r["kd"], r["seed"])):
        if row["sparsity"] == top and row["method"] not in chosen:
            chosen[row["method"]] = summary["layers"][row["member"]]
    return {f"{method} at {top:g}": rows for method, rows in chosen.items()}


def _overview(summary: dict) -> str:
    dense, pruned = summary["dense"], summary.get("pruned")
    rows = [("top-1 accuracy (%)", "accuracy", _percent), ("parameters", "parameters", int),
            ("nonzero parameters", "nonzero_parameters", int),
            ("sparsity of the prunable weights (%)", "sparsity", _percent)]  # fmt: skip
    sides = [("dense", dense), *([("pruned", pruned)] if pruned else [])]
    frame = pd.DataFrame(
        [(label, *(str(convert(side[key])) for _, side in sides)) for label, key, convert in rows],
        columns=["", *(name for name, _ in sides)],
    )
    data = summary["data"]
    curated = data.get("curated")
    note = (
        f"{escape(summary['model'])}; trained on {data['train_samples']:,} images of "
        f"{data['train_shards']} shards"
        + (f" (kept by curate prune: {escape(str(curated['prune_run']))}, "
           f"{100 * curated['kept_fraction']:.1f}% of its samples)" if curated else "")
        + f", evaluated on {data['eval_samples']:,}."
    )  # fmt: skip
    return f"<p>{note}</p>{table(frame, html_id='model-summary')}"


def _levels(summary: dict) -> str:
    columns = ["level", "sparsity", "steps", "accuracy"]
    frame = pd.DataFrame(summary["level_metrics"])[columns]
    for kind, points in summary["controls"].items():
        frame[f"{kind} accuracy"] = [None, *(p["accuracy"] for p in points)]
    return table(frame, sortable=True, html_id="levels")


def _results(summary: dict) -> str:
    frame = pd.DataFrame(summary["rows"])
    shown = ["member", "method", "sparsity", "seed", "kd", "achieved_sparsity", "accuracy",
             "nonzero_parameters"]  # fmt: skip
    return table(frame[shown], sortable=True, html_id="results")


def accuracy_against_macs(summary: dict) -> bytes:
    """A structured run: top-1 against MACs per sample, one colour per importance, filled
    for the fine-tuned networks and hollow for the same architectures trained from scratch."""
    fig, axes = new_figure(6.5, 4.0)
    rows = pd.DataFrame(summary["rows"])
    for colour, importance in zip(COLOURS, summary["importances"], strict=False):
        mine = rows[rows["importance"] == importance]
        axes.plot(mine["macs_after"] / 1e6, 100 * mine["accuracy"], "o", color=colour,
                  label=f"{importance}, fine-tuned")  # fmt: skip
        scratch = mine.dropna(subset=["scratch_accuracy"])
        if len(scratch):
            axes.plot(scratch["macs_after"] / 1e6, 100 * scratch["scratch_accuracy"], "o",
                      markerfacecolor="none", color=colour,
                      label=f"{importance}, from scratch")  # fmt: skip
    dense_macs = rows["macs_before"].iloc[0] / 1e6
    axes.plot([dense_macs], [100 * summary["dense"]["accuracy"]], "k*", markersize=10,
              label="dense")  # fmt: skip
    axes.set_xlabel("MACs per sample (millions)")
    axes.set_ylabel("top-1 accuracy (%)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return png_bytes(fig)


def _accuracies(summary: dict) -> dict[str, float]:
    """Each pruned network's top-1 by the name `curate model bench` gives it."""
    if summary["pipeline"] == "model-prune":
        return {"pruned": summary["pruned"]["accuracy"]}
    return {row["member"]: row["accuracy"] for row in summary["rows"]}


def accuracy_against_latency(summary: dict, latency: dict) -> bytes:
    """Top-1 against the measured milliseconds per batch at the largest batch size, one
    marker per device; the dense network as a star."""
    fig, axes = new_figure(6.5, 4.0)
    accuracies = _accuracies(summary)
    for colour, (device, networks) in zip(COLOURS, latency["devices"].items(), strict=False):
        rows = [(result["batches"][-1], accuracies[name]) for name, result in networks.items()
                if name in accuracies]  # fmt: skip
        if not rows:
            continue
        batch = rows[0][0]["batch_size"]
        axes.plot([r["pruned_ms"] for r, _ in rows], [100 * a for _, a in rows], "o",
                  color=colour, label=f"pruned, {device}, batch {batch}")  # fmt: skip
        dense_ms = float(np.median([r["dense_ms"] for r, _ in rows]))
        axes.plot([dense_ms], [100 * summary["dense"]["accuracy"]], "*", color=colour,
                  markersize=10, label=f"dense, {device}")  # fmt: skip
    axes.set_xlabel("measured milliseconds per batch (median)")
    axes.set_ylabel("top-1 accuracy (%)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return png_bytes(fig)


def _structured_members(summary: dict, latency: dict | None) -> str:
    frame = pd.DataFrame(summary["rows"])
    shown = ["member", "accuracy", "scratch_accuracy", "params_after", "macs_after",
             "macs_reduction", "file_bytes_after"]  # fmt: skip
    frame = frame[shown]
    for device, networks in (latency or {"devices": {}})["devices"].items():
        frame[f"{device} speed-up"] = [
            networks[m]["batches"][-1]["speedup"] if m in networks else None
            for m in frame["member"]
        ]
    return table(frame, sortable=True, html_id="results")


def _sections(run: Folder, summary: dict, latency: dict | None) -> list[tuple[str, str, str]]:
    kind = summary["pipeline"]
    overview = ("model-summary-section", "Dense against pruned", _overview(summary))
    timed = [("latency", "Accuracy against measured latency",
              figure("accuracy against latency", accuracy_against_latency(summary, latency)))
             ] if latency else []  # fmt: skip
    if kind == "model-structured":
        return [overview,
                ("macs", "Accuracy against MACs",
                 figure("accuracy against MACs", accuracy_against_macs(summary))),
                *timed, ("table", "Members", _structured_members(summary, latency))]  # fmt: skip
    sweep = kind == "model-sweep"
    layers = _sweep_layers(summary) if sweep else {"pruned": summary["layers"]}
    return [overview,
            ("curve", "Accuracy against sparsity",
             figure("accuracy against sparsity", accuracy_curve(summary))),
            ("layers", "Sparsity per layer", figure("sparsity per layer", layer_bars(layers))),
            *timed,
            ("table", "Members" if sweep else "Levels",
             _results(summary) if sweep else _levels(summary))]  # fmt: skip


def render(run: Folder) -> str:
    summary = read_summary(run)
    latency = run.read_json(LATENCY) if run.exists(LATENCY) else None
    sections = _sections(run, summary, latency)
    return page("curate report: model pruning", escape(title(run)), sections)
