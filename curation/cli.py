"""The `curate` command line."""

from __future__ import annotations

import functools
import os
import sys
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from curation.config import DEFAULT_MODEL, DEFAULT_PRETRAINED, PruneConfig
from curation.errors import CurateError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Prune web-scale image datasets in webdataset shards.")


def user_errors(command):
    """One clear line and exit status 2 for a user error, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except CurateError as exc:
            print(f"curate: error: {exc}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper


def _config(**fields) -> PruneConfig:
    try:
        return PruneConfig(**fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = str(error["msg"]).removeprefix("Value error, ")
        where = ".".join(str(p) for p in error["loc"])
        raise CurateError(message if message.startswith("--") else f"{where}: {message}") from None


def _absolute(path: str) -> str:
    return path if "://" in path else os.path.abspath(path)


@app.command()
@user_errors
def prune(
    shards: Annotated[list[str], typer.Argument(
        help="Input shards: paths, globs, brace ranges (data/{00000..00009}.tar) or URLs.")],
    output: Annotated[str, typer.Option("--output", "-o", help="Folder for the pruned shards.")],
    rate: Annotated[float, typer.Option(help="Fraction of samples to remove, in (0, 1).")],
    run_dir: Annotated[str | None, typer.Option(help="Run directory (default: OUTPUT/_run).")]
    = None,
    metric: Annotated[str, typer.Option(help="prototypicality or random.")] = "prototypicality",
    keep: Annotated[str, typer.Option(help="hard (far from centroids) or easy.")] = "hard",
    model: Annotated[str, typer.Option(
        help="open_clip model name, open_clip model-config JSON, or timm:NAME.")] = DEFAULT_MODEL,
    pretrained: Annotated[str, typer.Option(
        help="open_clip tag, local checkpoint file, or 'random'.")] = DEFAULT_PRETRAINED,
    clusters: Annotated[int, typer.Option(help="k-means clusters.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Images per model forward.")] = 64,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    label_field: Annotated[str, typer.Option(
        help="json field holding the label when there is no .cls.")] = "label",
    executor: Annotated[str, typer.Option(help="local or dask.")] = "local",
    scheduler: Annotated[str | None, typer.Option(
        help="Dask scheduler address (default: a LocalCluster).")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    overwrite: Annotated[bool, typer.Option(
        help="Replace what the output folder holds.")] = False,
    validate_after: Annotated[bool, typer.Option(
        "--validate", help="Then run `curate validate` on the run (labelled data).")] = False,
) -> None:
    """Embed, cluster, score and select, then write pruned shards to OUTPUT."""
    from pipelines.data_pruning.runner import prune as run_prune
    from shards.paths import expand_shards

    output = _absolute(output)
    config = _config(
        shards=expand_shards(shards), output=output, rate=rate,
        run_dir=_absolute(run_dir) if run_dir else f"{output.rstrip('/')}/_run",
        metric=metric, keep=keep, model=model, pretrained=pretrained, clusters=clusters,
        seed=seed, batch_size=batch_size, device=device, label_field=label_field,
        executor=executor, scheduler=scheduler, workers=workers,
    )
    summary = run_prune(config, overwrite=overwrite)
    _print_summary(summary, config)
    if validate_after:
        _run_validation(config.run_dir, _validation_config())


def _print_summary(summary: dict, config: PruneConfig) -> None:
    console = Console()
    table = Table(title="curate prune", show_header=False)
    for label, key in (("input samples", "input_samples"), ("kept", "kept_samples"),
                       ("pruned", "pruned_samples"), ("failed", "failed_samples"),
                       ("rate requested", "rate_requested"), ("rate achieved", "rate_achieved")):
        table.add_row(label, str(summary[key]))
    for reason, count in summary["reasons"].items():
        table.add_row(f"reason: {reason}", str(count))
    table.add_row("output", config.output)
    console.print(table)


@app.command()
@user_errors
def status(run_dir: Annotated[str, typer.Argument(help="A run directory.")]) -> None:
    """Print each stage's progress from the run directory."""
    from curation.status import read_status

    table = Table(title=f"curate run {run_dir}")
    for column in ("stage", "units", "samples", "seconds", "errors", "state"):
        table.add_column(column)
    for s in read_status(run_dir):
        units = "-" if s.units is None else f"{s.done}/{s.units}"
        table.add_row(s.name, units, f"{s.samples:,}", f"{s.seconds:.1f}", str(s.errors), s.state)
    Console(width=120).print(table)


OnOption = Annotated[str, typer.Option(
    help="embeddings: a probe on the stored embeddings (fast); images: a small CNN on the "
         "decoded images (CIFAR-size data).")]
ProbeOption = Annotated[str, typer.Option(help="Probe on embeddings: linear or mlp.")]
SeedsOption = Annotated[int, typer.Option(help="Seeds per model (mean and spread).")]
SeedOption = Annotated[int, typer.Option(help="First seed; the teacher trains with it.")]
StepsOption = Annotated[int | None, typer.Option(
    help="Optimisation steps of every model (matched compute); default: --epochs over the "
         "full training split.")]
EpochsOption = Annotated[float, typer.Option(help="Epochs over the full split, for --steps.")]
BatchOption = Annotated[int, typer.Option(help="Samples per optimisation step.")]
LrOption = Annotated[float | None, typer.Option(help="AdamW learning rate.")]
TeacherOption = Annotated[str | None, typer.Option(
    help="Teacher checkpoint written by curate validate (default: trained on the full set).")]
AlphaOption = Annotated[float | None, typer.Option(
    help="KD weight; default 1 - kept_fraction / 2.")]
TemperatureOption = Annotated[float, typer.Option(help="KD temperature T.")]
HoldoutOption = Annotated[float, typer.Option(help="Held-out fraction, chosen by id hash.")]
ImageSizeOption = Annotated[int, typer.Option(help="Image side for --on images.")]


def _validation_config(**fields):
    from pipelines.validation.config import ValidationConfig

    try:
        return ValidationConfig(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        error = exc.errors()[0]
        message = str(error["msg"]).removeprefix("Value error, ")
        where = "--" + ".".join(str(p) for p in error["loc"]).replace("_", "-")
        raise CurateError(message if message.startswith("--") else f"{where}: {message}") \
            from None


def _run_validation(run_dir: str, config) -> None:
    from pipelines.validation.validate import validate as run_validate

    results = run_validate(run_dir, config)
    table = Table(title=f"curate validate: {results['metric']} at rate {results['rate']}")
    for column in ("trained on", "samples", "KD alpha", "held-out top-1"):
        table.add_column(column)
    for arm in results["arms"]:
        acc = arm["accuracy"]
        spread = f" ± {100 * acc['std']:.2f}" if len(acc["per_seed"]) > 1 else ""
        table.add_row(arm["arm"], str(arm["train_size"]),
                      f"{results['alpha']:.3f}" if arm["kd"] else "",
                      f"{100 * acc['mean']:.2f}%{spread}")
    console = Console(width=120)
    console.print(table)
    console.print(f"{results['matched_compute']}; teacher ({results['teacher']['source']}): "
                  f"{100 * results['teacher']['accuracy']:.2f}%; "
                  f"results in {run_dir.rstrip('/')}/validate/results.json")


@app.command()
@user_errors
def validate(
    run_dir: Annotated[str, typer.Argument(help="A finished `curate prune` run directory.")],
    on: OnOption = "embeddings", probe: ProbeOption = "linear", seeds: SeedsOption = 1,
    seed: SeedOption = 0, steps: StepsOption = None, epochs: EpochsOption = 30.0,
    batch_size: BatchOption = 256, lr: LrOption = None, teacher: TeacherOption = None,
    alpha: AlphaOption = None, temperature: TemperatureOption = 4.0,
    holdout: HoldoutOption = 0.2, image_size: ImageSizeOption = 32,
) -> None:
    """Train on the kept set, the full set and a random subset of the same size, without and
    with KD, at matched compute; print held-out top-1 accuracy."""
    _run_validation(run_dir, _validation_config(
        on=on, probe=probe, seeds=seeds, seed=seed, steps=steps, epochs=epochs,
        batch_size=batch_size, lr=lr, teacher=teacher, alpha=alpha, temperature=temperature,
        holdout=holdout, image_size=image_size))


def _floats(text: str, option: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CurateError(f"{option} takes numbers separated by commas, got {text!r}") from None


@app.command()
@user_errors
def sweep(
    run_dir: Annotated[str, typer.Argument(help="A run directory with embed and assign done.")],
    rates: Annotated[str, typer.Option(help="Pruning rates, comma-separated.")]
    = "0.3,0.5,0.7,0.9",
    metrics: Annotated[str, typer.Option(help="Metrics, comma-separated, or all.")] = "all",
    kd: Annotated[str, typer.Option(help="off, on or both.")] = "both",
    on: OnOption = "embeddings", probe: ProbeOption = "linear", seeds: SeedsOption = 1,
    seed: SeedOption = 0, steps: StepsOption = None, epochs: EpochsOption = 30.0,
    batch_size: BatchOption = 256, lr: LrOption = None, teacher: TeacherOption = None,
    alpha: AlphaOption = None, temperature: TemperatureOption = 4.0,
    holdout: HoldoutOption = 0.2, image_size: ImageSizeOption = 32,
) -> None:
    """Rates x metrics (x KD) from the run's embeddings and clusters, never recomputed: a
    table (CSV, markdown) and the pruning curve (PNG) in RUN_DIR/sweep."""
    from pipelines.sweep import results_markdown
    from pipelines.sweep import sweep as run_sweep

    config = _validation_config(
        on=on, probe=probe, seeds=seeds, seed=seed, steps=steps, epochs=epochs,
        batch_size=batch_size, lr=lr, teacher=teacher, alpha=alpha, temperature=temperature,
        holdout=holdout, image_size=image_size)
    chosen = None if metrics == "all" else [m.strip() for m in metrics.split(",") if m.strip()]
    result = run_sweep(run_dir, config, _floats(rates, "--rates"), chosen, kd)
    print(results_markdown(result))
    print(f"{len(result['rows'])} results in {result['seconds']} s: "
          f"{run_dir.rstrip('/')}/sweep/ (results.csv, results.md, curve.png)")


@app.command()
@user_errors
def report(
    run_dir: Annotated[str, typer.Argument(help="A finished `curate prune` run directory.")],
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="HTML file to write (default: RUN_DIR/report.html).")] = None,
    clusters: Annotated[int, typer.Option(help="Clusters shown in the gallery.")] = 8,
    per_side: Annotated[int, typer.Option(
        help="Kept and pruned thumbnails shown per cluster.")] = 6,
    seed: Annotated[int, typer.Option(help="Seed of the gallery's choice.")] = 0,
) -> None:
    """One self-contained HTML page: counts, clusters, plots, kept and pruned samples."""
    from pipelines.report.build import build_report

    print(build_report(run_dir, output, clusters, per_side, seed))
