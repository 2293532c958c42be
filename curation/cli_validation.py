"""`curate validate`, `curate sweep` and `curate report`: proving and showing the pruning."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from curation.cli_common import user_errors, validated
from curation.errors import CurateError

OnOption = Annotated[
    str,
    typer.Option(
        help="embeddings: a probe on the stored embeddings (fast); images: a small CNN on the "
        "decoded images (CIFAR-size data)."
    ),
]
ProbeOption = Annotated[str, typer.Option(help="Probe on embeddings: linear or mlp.")]
SeedsOption = Annotated[int, typer.Option(help="Seeds per model (mean and spread).")]
SeedOption = Annotated[int, typer.Option(help="First seed; the teacher trains with it.")]
StepsOption = Annotated[
    int | None,
    typer.Option(
        help="Optimisation steps of every model (matched compute); default: --epochs over the "
        "full training split."
    ),
]
EpochsOption = Annotated[float, typer.Option(help="Epochs over the full split, for --steps.")]
BatchOption = Annotated[int, typer.Option(help="Samples per optimisation step.")]
LrOption = Annotated[float | None, typer.Option(help="AdamW learning rate.")]
TeacherOption = Annotated[
    str | None,
    typer.Option(
        help="Teacher checkpoint written by curate validate (default: trained on the full set)."
    ),
]
AlphaOption = Annotated[
    float | None, typer.Option(help="KD weight; default 1 - kept_fraction / 2.")
]
TemperatureOption = Annotated[float, typer.Option(help="KD temperature T.")]
HoldoutOption = Annotated[float, typer.Option(help="Held-out fraction, chosen by id hash.")]
ImageSizeOption = Annotated[int, typer.Option(help="Image side for --on images.")]


def validation_config(**fields):
    from pipelines.validation.config import ValidationConfig

    return validated(ValidationConfig, **{k: v for k, v in fields.items() if v is not None})


def run_validation(run_dir: str, config) -> None:
    from pipelines.validation.validate import validate as run_validate

    results = run_validate(run_dir, config)
    table = Table(title=f"curate validate: {results['metric']} at rate {results['rate']}")
    for column in ("trained on", "samples", "KD alpha", "held-out top-1"):
        table.add_column(column)
    for arm in results["arms"]:
        acc = arm["accuracy"]
        spread = f" ± {100 * acc['std']:.2f}" if len(acc["per_seed"]) > 1 else ""
        table.add_row(
            arm["arm"],
            str(arm["train_size"]),
            f"{results['alpha']:.3f}" if arm["kd"] else "",
            f"{100 * acc['mean']:.2f}%{spread}",
        )
    console = Console(width=120)
    console.print(table)
    console.print(
        f"{results['matched_compute']}; teacher ({results['teacher']['source']}): "
        f"{100 * results['teacher']['accuracy']:.2f}%; "
        f"results in {run_dir.rstrip('/')}/validate/results.json"
    )


@user_errors
def validate(
    run_dir: Annotated[str, typer.Argument(help="A finished `curate prune` run directory.")],
    on: OnOption = "embeddings",
    probe: ProbeOption = "linear",
    seeds: SeedsOption = 1,
    seed: SeedOption = 0,
    steps: StepsOption = None,
    epochs: EpochsOption = 30.0,
    batch_size: BatchOption = 256,
    lr: LrOption = None,
    teacher: TeacherOption = None,
    alpha: AlphaOption = None,
    temperature: TemperatureOption = 4.0,
    holdout: HoldoutOption = 0.2,
    image_size: ImageSizeOption = 32,
) -> None:
    """Train on the kept set, the full set and a random subset of the same size, without and
    with KD, at matched compute; print held-out top-1 accuracy."""
    run_validation(
        run_dir,
        validation_config(
            on=on,
            probe=probe,
            seeds=seeds,
            seed=seed,
            steps=steps,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            teacher=teacher,
            alpha=alpha,
            temperature=temperature,
            holdout=holdout,
            image_size=image_size,
        ),
    )


def _floats(text: str, option: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CurateError(f"{option} takes numbers separated by commas, got {text!r}") from None


@user_errors
def sweep(
    run_dir: Annotated[str, typer.Argument(help="A run directory with embed and assign done.")],
    rates: Annotated[str, typer.Option(help="Pruning rates, comma-separated.")] = "0.3,0.5,0.7,0.9",
    metrics: Annotated[str, typer.Option(help="Metrics, comma-separated, or all.")] = "all",
    kd: Annotated[str, typer.Option(help="off, on or both.")] = "both",
    on: OnOption = "embeddings",
    probe: ProbeOption = "linear",
    seeds: SeedsOption = 1,
    seed: SeedOption = 0,
    steps: StepsOption = None,
    epochs: EpochsOption = 30.0,
    batch_size: BatchOption = 256,
    lr: LrOption = None,
    teacher: TeacherOption = None,
    alpha: AlphaOption = None,
    temperature: TemperatureOption = 4.0,
    holdout: HoldoutOption = 0.2,
    image_size: ImageSizeOption = 32,
) -> None:
    """Rates x metrics (x KD) from the run's embeddings and clusters, never recomputed: a
    table (CSV, markdown) and the pruning curve (PNG) in RUN_DIR/sweep."""
    from pipelines.sweep import results_markdown
    from pipelines.sweep import sweep as run_sweep

    config = validation_config(
        on=on,
        probe=probe,
        seeds=seeds,
        seed=seed,
        steps=steps,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        teacher=teacher,
        alpha=alpha,
        temperature=temperature,
        holdout=holdout,
        image_size=image_size,
    )
    chosen = None if metrics == "all" else [m.strip() for m in metrics.split(",") if m.strip()]
    result = run_sweep(run_dir, config, _floats(rates, "--rates"), chosen, kd)
    print(results_markdown(result))
    print(
        f"{len(result['rows'])} results in {result['seconds']} s: "
        f"{run_dir.rstrip('/')}/sweep/ (results.csv, results.md, curve.png)"
    )


@user_errors
def report(
    run_dir: Annotated[str, typer.Argument(help="A finished `curate prune` run directory.")],
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="HTML file to write (default: RUN_DIR/report.html)."),
    ] = None,
    clusters: Annotated[int, typer.Option(help="Clusters shown in the gallery.")] = 8,
    per_side: Annotated[
        int, typer.Option(help="Kept and pruned thumbnails shown per cluster.")
    ] = 6,
    seed: Annotated[int, typer.Option(help="Seed of the gallery's choice.")] = 0,
) -> None:
    """One self-contained HTML page: counts, clusters, plots, kept and pruned samples."""
    from pipelines.report.build import build_report

    print(build_report(run_dir, output, clusters, per_side, seed))
