"""`curate validate`, `curate sweep` and `curate report`: proving and showing the pruning."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from curation.cli.common import StorageOptions, user_errors
from curation.cli.options import command
from curation.fields import validated
from curation.storage import storage_options as parse_options
from pipelines.validation.config import SweepOptions, SweepPlan, ValidationConfig

RunArgument = Annotated[
    str, typer.Argument(help="A finished `curate prune` run directory, or its output folder.")
]


def validation_config(**fields) -> ValidationConfig:
    return validated(ValidationConfig, **fields)


def _take(model, options: dict):
    """The fields of `model` taken out of `options`, validated."""
    return validated(model, **{k: options.pop(k) for k in model.model_fields if k in options})


def run_validation(run_dir: str, config: ValidationConfig, storage: dict | None = None) -> None:
    from pipelines.validation.results import format_accuracy, format_difference
    from pipelines.validation.runner import validate as run_validate

    results = run_validate(run_dir, config, storage)
    table = Table(title=f"curate validate: {results['metric']} at rate {results['rate']}")
    for column in ("arm", "samples", "teacher", "KD alpha", "test top-1 [95% interval]"):
        table.add_column(column)
    for arm in results["arms"]:
        alpha = f"{results['alpha']:.3f}" if arm["kd"] else ""
        table.add_row(arm["arm"], str(arm["train_size"]), arm["teacher"] or "", alpha,
                      format_accuracy(arm["accuracy"]))  # fmt: skip
    console = Console(width=120)
    console.print(table)
    for c in results["comparisons"]:
        console.print(f"{c['arm']} - {c['against']}: {format_difference(c)}")
    for name, teacher in results["teachers"].items():
        console.print(
            f"teacher {name}: {teacher['source']}; {format_accuracy(teacher['accuracy'])}"
        )
    console.print(
        f"{results['matched_compute']}; test: {results['test_size']} samples, "
        f"{results['test_source']}; * established (the 95% interval of the difference excludes "
        f"0); results in {results['run_dir'].rstrip('/')}/validate/results.json"
    )


def _validate(run_dir: RunArgument, storage_options: StorageOptions = None, **options) -> None:
    """Train on the kept set, the full pool and a random subset of the same size, without and
    with KD (and with a teacher that saw only the kept set), at matched compute; print test
    top-1 accuracy with 95% intervals. Resumes: a rerun trains only what is missing."""
    run_validation(run_dir, validation_config(**options), parse_options(storage_options))


def _sweep(run_dir: RunArgument, storage_options: StorageOptions = None, **options) -> None:
    """Rates x metrics x criterion options (x KD) decided from the run's embeddings, clusters
    and scores, each trained at matched compute and compared with random: a table (CSV,
    markdown) and the pruning curve (PNG) in RUN_DIR/sweep. Resumes, and keeps finished
    units when rates, metrics or values are added."""
    from pipelines.validation.results import sweep_markdown
    from pipelines.validation.runner import sweep as run_sweep

    plan, choices = _take(SweepPlan, options), _take(SweepOptions, options)
    result = run_sweep(run_dir, validation_config(**options), plan, choices,
                       parse_options(storage_options))  # fmt: skip
    print(sweep_markdown(result))
    print(
        f"{len(result['rows'])} results, {result['seconds']} s of work in units: "
        f"{result['run_dir'].rstrip('/')}/sweep/ (results.csv, results.md, curve.png)"
    )


validate = user_errors(command(_validate, ValidationConfig))
sweep = user_errors(command(_sweep, SweepPlan, SweepOptions, ValidationConfig))


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
    storage_options: StorageOptions = None,
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

    storage = parse_options(storage_options)
    print(build_report(run_dir, output, clusters, per_side, seed, storage, tuple(model_run or ())))
