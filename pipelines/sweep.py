"""`curate sweep RUN_DIR`: pruning rates x metrics (x KD off/on) decided from one set of
embeddings and clusters (`decide` over the gathered samples: nothing is re-embedded or
re-clustered), each validated at matched compute. Writes `RUN/sweep/`: results.csv,
results.md, curve.png (accuracy against kept fraction) and sweep.json."""

from __future__ import annotations

import csv
import io
import time

from curation.errors import CurateError
from pipelines.data_pruning.finished import open_run
from pipelines.data_pruning.runner import ensure_scores
from pipelines.plotting import new_figure, png_bytes
from pipelines.validation.compare import Comparison, format_accuracy, spread
from pipelines.validation.config import SweepPlan, ValidationConfig

KD_MODES = {"off": (False,), "on": (True,), "both": (False, True)}
FULL = "full"
COLUMNS = (
    "metric",
    "rate",
    "kept_fraction",
    "kd",
    "alpha",
    "train_size",
    "accuracy_mean",
    "accuracy_std",
    "seeds",
    "accuracies",
)


def _row(
    metric: str, rate: float, compare: Comparison, size: int, kd: bool, accuracies: list[float]
) -> dict:
    fraction = size / len(compare.train)
    stats = spread(accuracies)
    return {
        "metric": metric,
        "rate": rate,
        "kept_fraction": round(fraction, 6),
        "kd": kd,
        "alpha": round(compare.config.alpha_for(fraction), 6) if kd else None,
        "train_size": size,
        "accuracy_mean": stats["mean"],
        "accuracy_std": stats["std"],
        "seeds": len(accuracies),
        "accuracies": stats["per_seed"],
    }


def sweep(run_dir: str, config: ValidationConfig, plan: SweepPlan,
          storage_options: dict | None = None) -> dict:  # fmt: skip
    """Every metric of the plan at every rate; returns sweep.json."""
    start = time.time()
    rates, metrics, kd = plan.rates, plan.metrics, plan.kd
    run = open_run(run_dir, ("embed", "assign"), storage_options)
    run.require_embeddings("curate sweep")
    samples = run.samples()
    compare = Comparison(run, samples, config)
    seeds = config.seed_list
    rows = [
        _row(
            FULL,
            0.0,
            compare,
            len(compare.train),
            False,
            [compare.score(compare.train, s, kd=False) for s in seeds],
        )
    ]
    skipped: dict[str, str] = {}
    for metric in metrics:
        ensure_scores(run.run, run.config.model_copy(update={"metric": metric}))
        for rate in rates:
            update = {"rate": rate, "metric": metric}
            try:
                keep = run.kept_by(run.config.model_copy(update=update))
            except (CurateError, ValueError) as exc:
                skipped[metric] = f"{type(exc).__name__}: {exc}"
                break
            subset = compare.data.subset(keep)
            if len(subset) == 0:
                skipped[metric] = f"no kept sample in the training split at rate {rate}"
                break
            for use_kd in KD_MODES[kd]:
                rows.append(
                    _row(
                        metric,
                        rate,
                        compare,
                        len(subset),
                        use_kd,
                        [compare.score(subset, s, use_kd) for s in seeds],
                    )
                )
    result = {
        "run_dir": run.run.url,
        "rates": rates,
        "metrics": metrics,
        "kd": kd,
        "on": config.on,
        "model": compare.spec["kind"],
        "steps": compare.steps,
        "batch_size": config.batch_size,
        "temperature": config.temperature,
        "train_size": len(compare.train),
        "test_size": len(compare.test),
        "seeds": seeds,
        "teacher": {"source": compare.teacher_source, "accuracy": compare.teacher_accuracy()},
        "config": config.model_dump(),
        "rows": rows,
        "skipped": skipped,
    }
    result["seconds"] = round(time.time() - start, 2)
    write_outputs(run.run, result)
    return result


def write_outputs(folder, result: dict) -> None:
    folder.write_bytes(results_csv(result["rows"]).encode(), "sweep", "results.csv")
    folder.write_bytes(results_markdown(result).encode(), "sweep", "results.md")
    folder.write_bytes(curve_png(result), "sweep", "curve.png")
    folder.write_json(result, "sweep", "sweep.json")


def results_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                **row,
                "alpha": "" if row["alpha"] is None else row["alpha"],
                "accuracies": ";".join(f"{a:.6f}" for a in row["accuracies"]),
            }
        )
    return buffer.getvalue()


def cell(row: dict) -> str:
    """A row's accuracy in percent, with its spread over seeds."""
    accuracy = {"mean": row["accuracy_mean"], "std": row["accuracy_std"],
                "per_seed": row["accuracies"]}  # fmt: skip
    return format_accuracy(accuracy, percent_sign=False)


def results_markdown(result: dict) -> str:
    """Held-out top-1 (%) by metric and KD (rows) and rate (columns)."""
    rates = result["rates"]
    full = next(r for r in result["rows"] if r["metric"] == FULL)
    lines = [
        f"Held-out top-1 accuracy (%), mean ± std over {len(result['seeds'])} seed(s); "
        f"{result['model']} on {result['on']}, {result['steps']} steps x "
        f"{result['batch_size']} for every model (matched compute).",
        "",
        "| metric | KD | full data | "
        + " | ".join(f"rate {r:g} (keep {1 - r:.0%})" for r in rates)
        + " |",
        "|---|---|---|" + "---|" * len(rates),
        f"| full data | no | {cell(full)} |" + " |" * len(rates),
    ]
    by_key = {(r["metric"], r["kd"], r["rate"]): r for r in result["rows"]}
    for metric in result["metrics"]:
        for kd in (False, True):
            cells = [by_key.get((metric, kd, rate)) for rate in rates]
            if any(cells):
                lines.append(
                    f"| {metric} | {'yes' if kd else 'no'} | | "
                    + " | ".join(cell(c) if c else "" for c in cells)
                    + " |"
                )
    lines.append("")
    lines.append(
        f"Teacher ({result['teacher']['source']}): {100 * result['teacher']['accuracy']:.2f}%."
    )
    for metric, reason in result["skipped"].items():
        lines.append(f"Skipped {metric}: {reason}")
    return "\n".join(lines) + "\n"


def curve_png(result: dict) -> bytes:
    """Accuracy against kept fraction: one colour per metric, solid without KD, dashed with."""
    figure, axes = new_figure(7.0, 4.5)
    colours = iter(["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C9"] * 4)
    rows = result["rows"]
    for metric in result["metrics"]:
        colour = next(colours)
        for kd in (False, True):
            line = sorted(
                (r for r in rows if r["metric"] == metric and r["kd"] == kd),
                key=lambda r: r["kept_fraction"],
            )
            if not line:
                continue
            axes.errorbar(
                [r["kept_fraction"] for r in line],
                [100 * r["accuracy_mean"] for r in line],
                yerr=[100 * r["accuracy_std"] for r in line],
                color=colour,
                linestyle="--" if kd else "-",
                marker="o",
                markersize=4,
                capsize=2,
                label=f"{metric}{' + KD' if kd else ''}",
            )
    full = next(r for r in rows if r["metric"] == FULL)
    axes.axhline(
        100 * full["accuracy_mean"], color="black", linestyle=":", label="full data, no KD"
    )
    axes.set_xlabel("kept fraction of the training split")
    axes.set_ylabel("held-out top-1 accuracy (%)")
    axes.set_title(f"Pruning curve at matched compute ({result['steps']} steps)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return png_bytes(figure)
