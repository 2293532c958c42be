"""`curate validate`, `curate sweep` and `curate report`: proving and showing the pruning."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from curation.cli.common import user_errors
from curation.cli.options import command
from curation.fields import validated
from pipelines.validation.config import SweepPlan, ValidationConfig

RunArgument = Annotated[
    str, typer.Argument(help="A finished `curate prune` run directory, or its output folder.")
]


def validation_config(**fields) -> ValidationConfig:
    return validated(ValidationConfig, **fields)


def run_validation(run_dir: str, config: ValidationConfig) -> None:
    from pipelines.validation.compare import format_accuracy
    from pipelines.validation.validate import validate as run_validate

    results = run_validate(run_dir, config)
    table = Table(title=f"curate validate: {results['metric']} at rate {results['rate']}")
    for column in ("trained on", "samples", "KD alpha", "held-out top-1"):
        table.add_column(column)
    for arm in results["arms"]:
        table.add_row(
            arm["arm"],
            str(arm["train_size"]),
            f"{results['alpha']:.3f}" if arm["kd"] else "",
            format_accuracy(arm["accuracy"]),
        )
    console = Console(width=120)
    console.print(table)
    console.print(
        f"{results['matched_compute']}; teacher ({results['teacher']['source']}): "
        f"{100 * results['teacher']['accuracy']:.2f}%; "
        f"results in {results['run_dir'].rstrip('/')}/validate/results.json"
    )


def _validate(run_dir: RunArgument, **options) -> None:
    """Train on the kept set, the full set and a random subset of the same size, without and
    with KD, at matched compute; print held-out top-1 accuracy."""
    run_validation(run_dir, validation_config(**options))


def _sweep(run_dir: RunArgument, **options) -> None:
    """Rates x metrics (x KD) from the run's embeddings and clusters, never recomputed: a
    table (CSV, markdown) and the pruning curve (PNG) in RUN_DIR/sweep."""
    from pipelines.sweep import results_markdown
    from pipelines.sweep import sweep as run_sweep

    plan = validated(SweepPlan, **{k: options.pop(k) for k in SweepPlan.model_fields})
    result = run_sweep(run_dir, validation_config(**options), plan)
    print(results_markdown(result))
    print(
        f"{len(result['rows'])} results in {result['seconds']} s: "
        f"{result['run_dir'].rstrip('/')}/sweep/ (results.csv, results.md, curve.png)"
    )


validate = user_errors(command(_validate, ValidationConfig))
sweep = user_errors(command(_sweep, SweepPlan, ValidationConfig))


@user_errors
def report(
    run_dir: RunArgument,
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="HTML file to write (default: RUN_DIR/report.html)."),
    ] = None,
    clusters: Annotated[int, typer.Option(help="Clusters shown in the gallery.")] = 8,
    per_side: Annotated[
        int, typer.Option(help="Kept and pruned thumbnails shown per cluster.")
    ] = 6,
    seed: Annotated[int, typer.Option(help="Seed of the gallery's choice.")] = 0,
    model_run: Annotated[
        list[str] | None,
        typer.Option(
            help="A curate model run trained on this run's shards: its page is "
            "written and linked (repeatable)."
        ),
    ] = None,
) -> None:
    """One self-contained HTML page: counts, clusters, plots, kept and pruned samples; for a
    model-pruning run, its accuracy against sparsity and sparsity per layer."""
    from pipelines.report.build import build_report

    print(build_report(run_dir, output, clusters, per_side, seed, tuple(model_run or ())))
