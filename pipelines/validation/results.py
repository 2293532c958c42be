"""The results barriers of validate and sweep: every model's test answers gathered into
accuracies with 95% intervals and paired differences (`uncertainty.py`), written at the top of
the run: validate's results.json, results.csv, results.md; the sweep's sweep.json,
results.csv, results.md and curve.png (accuracy against kept fraction)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict

import numpy as np

from curation import rundir
from curation.stage import Context
from curation.storage import Folder
from metrics.kd import kd_alpha
from pipelines.data_pruning.schema import load_array
from pipelines.plotting import new_figure, png_bytes
from pipelines.validation.pipeline import (
    ARMS,
    FULL,
    Job,
    parse_seed,
    sweep_stages,
    teachers,
    validate_stages,
)
from pipelines.validation.selections import random_counterpart
from pipelines.validation.uncertainty import accuracy_interval, difference_interval

VALIDATE_FILES = ("results.json", "results.csv", "results.md")
SWEEP_FILES = ("sweep.json", "results.csv", "results.md", "curve.png")
ALPHA_RULE = ("alpha = 1 - kept_fraction / 2 (Ben-Baruch et al.: the best KD weight grows as "
              "the kept fraction shrinks)")  # fmt: skip
# validate's comparisons: (arm, against), each a paired difference of accuracies
COMPARISONS = (
    ("kept", "random"),
    ("kept+kd", "random+kd"),
    ("kept+kd", "kept"),
    ("random+kd", "random"),
    ("kept+kd", "kept+kd_kept"),
    ("kept+kd", "full"),
    ("random+kd", "full"),
)
UNCERTAINTY = (
    "95% intervals by bootstrap over the test samples and the training seeds (and, for random "
    "subsets, their draws: a new one per seed); a difference is established (marked *) when the "
    "interval of the paired difference excludes 0."
)


def format_accuracy(accuracy: dict, percent_sign: bool = True) -> str:
    """ "83.20% [82.05, 84.31]": the mean over seeds and its 95% interval."""
    unit = "%" if percent_sign else ""
    return (f"{100 * accuracy['mean']:.2f}{unit} "
            f"[{100 * accuracy['low']:.2f}, {100 * accuracy['high']:.2f}]")  # fmt: skip


def format_difference(d: dict) -> str:
    """ "+1.20 [0.31, 2.05] *": points, interval, * when established."""
    return (f"{100 * d['difference']:+.2f} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]"
            + (" *" if d["established"] else ""))  # fmt: skip


def _units(folder: Folder, stage: str) -> list[str]:
    return rundir.read_units(folder, stage) or []


def _answers(folder: Folder, stage: str, units: list[str]) -> dict[str, tuple[dict, np.ndarray]]:
    """Each unit's record and test answers (units that trained nothing are left out)."""
    found = {}
    for unit in units:
        record = folder.read_json(stage, f"{unit}.json")
        if "skipped" not in record:
            found[unit] = (record, load_array(folder, stage, f"{unit}.npy"))
    return found


def _stack(answers: list[np.ndarray]) -> np.ndarray:
    return np.stack(answers).astype(np.float64)


def _teachers(folder: Folder, job: Job) -> dict[str, dict]:
    found = {}
    for name, (record, correct) in _answers(folder, "teacher", teachers(job)).items():
        found[name] = {**record, "accuracy": accuracy_interval(correct[None, :])}
    return found


def _seconds(folder: Folder, job: Job) -> float:
    stages = validate_stages(job) if job.pipeline == "validate" else sweep_stages(job)
    return round(sum(float(s.get("seconds", 0.0)) for stage in stages
                     for s in rundir.all_stats(folder, stage.name)), 2)  # fmt: skip


def _common(folder: Folder, job: Job, record: dict) -> dict:
    """What validate and sweep results both state; `record`: any trained unit's."""
    config = job.config
    return {
        "run_dir": job.run_dir,
        "on": config.on,
        "model": record["model"],
        "pool_size": record["pool_size"],
        "test_size": record["test_size"],
        "test_source": _test_source(job),
        "steps": record["steps"],
        "batch_size": config.batch_size,
        "matched_compute": f"every model: {record['steps']} steps x {config.batch_size} samples",
        "temperature": config.temperature,
        "seeds": config.seed_list,
        "teachers": _teachers(folder, job),
        "config": config.model_dump(),
        "uncertainty": UNCERTAINTY,
    }


def _test_source(job: Job) -> str:
    if job.eval_shards:
        return f"--eval {job.config.eval} ({len(job.eval_shards)} shards)"
    return f"the run's held-out samples (--holdout {job.run_config['holdout']:g})"


# validate


def validate_summary(folder: Folder, job: Job) -> dict:
    answers = _answers(folder, "train", _units(folder, "train"))
    by_arm: dict[str, list] = defaultdict(list)
    records: dict[str, dict] = {}
    for unit, (record, correct) in answers.items():
        arm, _ = parse_seed(unit)
        by_arm[arm].append(correct)
        records[arm] = record
    stacked = {arm: _stack(values) for arm, values in by_arm.items()}
    kept = records["kept"]
    return {
        **_common(folder, job, kept),
        "metric": job.run_config["metric"],
        "rate": job.run_config["rate"],
        "kept_fraction": kept["kept_fraction"],
        "alpha": job.config.alpha_for(kept["kept_fraction"]),
        "alpha_rule": "given (--alpha)" if job.config.alpha is not None else ALPHA_RULE,
        "alpha_by_rule": kd_alpha(kept["kept_fraction"]),
        "arms": [
            {
                "arm": arm,
                "subset": ARMS[arm][0],
                "kd": records[arm]["teacher"] is not None,
                "teacher": records[arm]["teacher"],
                "train_size": records[arm]["train_size"],
                "accuracy": accuracy_interval(stacked[arm]),
            }
            for arm in ARMS
            if arm in stacked
        ],
        "comparisons": [
            {"arm": a, "against": b, **difference_interval(stacked[a], stacked[b])}
            for a, b in COMPARISONS
            if a in stacked and b in stacked
        ],
        "seconds": _seconds(folder, job),
    }


def validate_markdown(result: dict) -> str:
    lines = [
        f"Test top-1 accuracy (%) on {result['test_size']} samples ({result['test_source']}); "
        f"{result['model']} on {result['on']}, {result['matched_compute']} (matched compute); "
        f"seeds {result['seeds']}.",
        "",
        "| arm | trained on | samples | teacher | KD alpha | top-1 [95% interval] |",
        "|---|---|---|---|---|---|",
    ]
    for arm in result["arms"]:
        alpha = f"{result['alpha']:.3f}" if arm["kd"] else ""
        lines.append(f"| {arm['arm']} | {arm['subset']} | {arm['train_size']} | "
                     f"{arm['teacher'] or ''} | {alpha} | "
                     f"{format_accuracy(arm['accuracy'], False)} |")  # fmt: skip
    lines += ["", "| difference | points [95% interval] |", "|---|---|"]
    lines += [f"| {c['arm']} - {c['against']} | {format_difference(c)} |"
              for c in result["comparisons"]]  # fmt: skip
    lines += ["", *_teacher_lines(result), "", UNCERTAINTY]
    return "\n".join(lines) + "\n"


def _teacher_lines(result: dict) -> list[str]:
    return [f"Teacher {name}: {t['source']}; test top-1 {format_accuracy(t['accuracy'])}."
            for name, t in result["teachers"].items()]  # fmt: skip


def _csv(rows: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _flat(accuracy: dict, prefix: str = "") -> dict:
    return {f"{prefix}accuracy": accuracy["mean"], f"{prefix}low": accuracy["low"],
            f"{prefix}high": accuracy["high"],
            f"{prefix}accuracies": ";".join(f"{a:.6f}" for a in accuracy["per_seed"])}  # fmt: skip


def validate_results(ctx: Context, unit: str) -> dict:
    result = validate_summary(ctx.run, ctx.config)
    rows = [{**a, **_flat(a["accuracy"])} for a in result["arms"]]
    columns = ["arm", "subset", "kd", "teacher", "train_size", "accuracy", "low", "high",
               "accuracies"]  # fmt: skip
    ctx.run.write_bytes(_csv(rows, columns).encode(), "results.csv")
    ctx.run.write_bytes(validate_markdown(result).encode(), "results.md")
    ctx.run.write_json(result, "results.json")
    return {"samples": result["test_size"]}


def clean_results(ctx: Context) -> None:
    for name in (*VALIDATE_FILES, *SWEEP_FILES):
        ctx.run.remove(name)


# sweep


def _difference(row: dict | None, against: dict | None, stacked: dict) -> dict | None:
    if row is None or against is None or row is against:
        return None
    return difference_interval(stacked[row["key"]], stacked[against["key"]])


def sweep_summary(folder: Folder, job: Job) -> dict:
    answers = _answers(folder, "train", _units(folder, "train"))
    grouped: dict[tuple, list] = defaultdict(list)
    for record, correct in answers.values():
        grouped[(record["selection"], record["kd"])].append((record, correct))
    rows, stacked = [], {}
    first = next(iter(answers.values()))[0]
    for (selection, kd), found in grouped.items():
        record = found[0][0]
        key = f"{selection}{'@kd' if kd else ''}"
        stacked[key] = _stack([c for _, c in found])
        rows.append({"key": key, "selection": selection, "label": record["label"],
                     "metric": record["metric"], "rate": record["rate"], "kd": kd,
                     "kept_fraction": float(np.mean([r["kept_fraction"] for r, _ in found])),
                     "train_size": record["train_size"], "alpha": record["alpha"],
                     "seeds": len(found), "accuracy": accuracy_interval(stacked[key])})  # fmt: skip
    by_key = {r["key"]: r for r in rows}
    full = by_key.get(FULL)
    for row in rows:
        counterpart = None if row["selection"] == FULL else random_counterpart(
            job.selection(row["selection"]), job.selections)  # fmt: skip
        random = counterpart and by_key.get(f"{counterpart.name}{'@kd' if row['kd'] else ''}")
        row["vs_random"] = _difference(row, random, stacked)
        row["vs_full"] = _difference(row, full, stacked)
    skipped = {}
    for unit in _units(folder, "train"):
        record = folder.read_json("train", f"{unit}.json")
        if "skipped" in record:
            skipped[f"{record['label']} at rate {record['rate']:g}"] = record["skipped"]
    plan = job.plan
    return {
        **_common(folder, job, first),
        "rates": plan.rates,
        "metrics": plan.metrics,
        "kd": plan.kd,
        "options": {k: v for k, v in job.options.model_dump().items() if v is not None},
        "rows": rows,
        "skipped": skipped,
        "seconds": _seconds(folder, job),
    }


def cell(row: dict) -> str:
    """A row's accuracy in percent with its interval, and ^ or v when it is established above
    or below its random counterpart (`random_counterpart`)."""
    mark = ""
    if row.get("vs_random") and row["vs_random"]["established"]:
        mark = " ^" if row["vs_random"]["difference"] > 0 else " v"
    return format_accuracy(row["accuracy"], percent_sign=False) + mark


def sweep_markdown(result: dict) -> str:
    rates = result["rates"]
    rows = result["rows"]
    full = next((r for r in rows if r["key"] == FULL), None)
    lines = [
        f"Test top-1 accuracy (%) [95% interval] on {result['test_size']} samples "
        f"({result['test_source']}), {len(result['seeds'])} seed(s); {result['model']} on "
        f"{result['on']}, {result['matched_compute']} (matched compute). "
        "^ / v: established above / below random at the same rate and KD (class-balanced random "
        "for a class-balanced selection).",
        "",
        "| selection | KD | full data | "
        + " | ".join(f"rate {r:g} (keep {1 - r:.0%})" for r in rates) + " |",
        "|---|---|---|" + "---|" * len(rates),
    ]  # fmt: skip
    if full is not None:
        lines.append(f"| full data | no | {cell(full)} |" + " |" * len(rates))
    by_cell = {(r["label"], r["kd"], r["rate"]): r for r in rows if r["key"] != FULL}
    for label in dict.fromkeys(r["label"] for r in rows if r["key"] != FULL):
        for kd in (False, True):
            cells = [by_cell.get((label, kd, rate)) for rate in rates]
            if any(cells):
                lines.append(f"| {label} | {'yes' if kd else 'no'} | | "
                             + " | ".join(cell(c) if c else "" for c in cells) + " |")  # fmt: skip
    lines += ["", *_teacher_lines(result), "", result["uncertainty"]]
    lines += [f"Skipped {what}: {why}" for what, why in result["skipped"].items()]
    return "\n".join(lines) + "\n"


SWEEP_COLUMNS = ["selection", "label", "metric", "rate", "kept_fraction", "kd", "alpha",
                 "train_size", "seeds", "accuracy", "low", "high", "accuracies",
                 "vs_random", "vs_random_low", "vs_random_high", "vs_random_established",
                 "vs_full", "vs_full_low", "vs_full_high", "vs_full_established"]  # fmt: skip


def _csv_row(row: dict) -> dict:
    flat = {**row, **_flat(row["accuracy"])}
    for name in ("vs_random", "vs_full"):
        d = row[name] or {}
        flat.update({name: d.get("difference", ""), f"{name}_low": d.get("low", ""),
                     f"{name}_high": d.get("high", ""),
                     f"{name}_established": d.get("established", "")})  # fmt: skip
    flat["alpha"] = "" if row["alpha"] is None else row["alpha"]
    return flat


def curve_png(result: dict) -> bytes:
    """Accuracy against kept fraction with 95% intervals: one colour per selection, solid
    without KD, dashed with; the full-data accuracy dotted."""
    figure, axes = new_figure(7.0, 4.5)
    colours = iter([f"C{i % 10}" for i in range(100)])
    rows = [r for r in result["rows"] if r["key"] != FULL]
    for label in dict.fromkeys(r["label"] for r in rows):
        colour = next(colours)
        for kd in (False, True):
            line = sorted((r for r in rows if r["label"] == label and r["kd"] == kd),
                          key=lambda r: r["kept_fraction"])  # fmt: skip
            if not line:
                continue
            mean = np.array([100 * r["accuracy"]["mean"] for r in line])
            low = mean - [100 * r["accuracy"]["low"] for r in line]
            high = [100 * r["accuracy"]["high"] for r in line] - mean
            axes.errorbar(
                [r["kept_fraction"] for r in line],
                mean,
                yerr=[low, high],
                color=colour,
                linestyle="--" if kd else "-",
                marker="o",
                markersize=4,
                capsize=2,
                label=f"{label}{' + KD' if kd else ''}",
            )
    full = next((r for r in result["rows"] if r["key"] == FULL), None)
    if full is not None:
        axes.axhline(100 * full["accuracy"]["mean"], color="black", linestyle=":",
                     label="full data, no KD")  # fmt: skip
    axes.set_xlabel("kept fraction of the pool")
    axes.set_ylabel("test top-1 accuracy (%)")
    axes.set_title(f"Pruning curve at matched compute ({result['steps']} steps), 95% intervals")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return png_bytes(figure)


def sweep_results(ctx: Context, unit: str) -> dict:
    result = sweep_summary(ctx.run, ctx.config)
    csv_text = _csv([_csv_row(r) for r in result["rows"]], SWEEP_COLUMNS)
    ctx.run.write_bytes(csv_text.encode(), "results.csv")
    ctx.run.write_bytes(sweep_markdown(result).encode(), "results.md")
    ctx.run.write_bytes(curve_png(result), "curve.png")
    ctx.run.write_json(result, "sweep.json")
    return {"samples": result["test_size"]}
