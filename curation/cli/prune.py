"""`curate prune` and `curate status`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from curation.cli.common import StorageOptions, user_errors
from curation.cli.options import command
from curation.cli.validation import run_validation, validation_config
from pipelines.data_pruning.config import PruneConfig, prune_config


def _prune(
    shards: Annotated[
        list[str],
        typer.Argument(
            help="Input shards: paths, globs, brace ranges (data/{00000..00009}.tar) or URLs."
        ),
    ],
    overwrite: Annotated[bool, typer.Option(help="Replace what the output folder holds.")] = False,
    validate_after: Annotated[
        bool, typer.Option("--validate", help="Then run `curate validate` on the run.")
    ] = False,
    **options,
) -> None:
    """Embed, cluster, score and select, then write pruned shards to OUTPUT."""
    config = prune_config(shards, **options)
    from pipelines.data_pruning.runner import prune as run_prune  # heavy: after validation

    summary = run_prune(config, overwrite=overwrite)
    _print_summary(summary, config)
    if validate_after:
        run_validation(config.run_dir, validation_config(), config.storage_options)


prune = user_errors(command(_prune, PruneConfig))


def _print_summary(summary: dict, config) -> None:
    console = Console()
    table = Table(title="curate prune", show_header=False)
    for label, key in (
        ("input samples", "input_samples"),
        ("kept", "kept_samples"),
        ("pruned", "pruned_samples"),
        ("failed", "failed_samples"),
        ("held out", "heldout_samples"),
        ("rate requested", "rate_requested"),
        ("rate achieved", "rate_achieved"),
    ):
        if summary[key] is not None:  # no rate requested with --keep-list
            table.add_row(label, str(summary[key]))
    for reason, count in summary["reasons"].items():
        table.add_row(f"reason: {reason}", str(count))
    table.add_row("output", config.output)
    console.print(table)
    _print_classes(console, summary["classes"])
    for line in summary["explanation"]:
        console.print(f"  {line}", highlight=False)
    for line in summary["warnings"]:
        console.print(f"[bold yellow]warning:[/] {line}", highlight=False)


CLASS_ROWS = 20  # more classes: the ones furthest below their share


def _print_classes(console: Console, classes: list[dict]) -> None:
    """Kept and pruned per class: a global ranking can empty a class."""
    shown = sorted(classes, key=lambda r: r["kept_of_share"] or 0)[:CLASS_ROWS]
    if not shown:
        return
    title = "per class" if len(classes) <= CLASS_ROWS else (
        f"per class: the {CLASS_ROWS} of {len(classes)} furthest below their share")  # fmt: skip
    table = Table(title=title)
    for column in ("class", "candidates", "kept", "pruned", "kept / share"):
        table.add_column(column)
    for row in sorted(shown, key=lambda r: r["label"]):
        share = "-" if row["kept_of_share"] is None else f"{row['kept_of_share']:.2f}"
        table.add_row(row["name"], *(str(row[k]) for k in ("candidates", "kept", "pruned")), share)
    console.print(table)


@user_errors
def status(
    run_dir: Annotated[str, typer.Argument(help="A run directory, or the output folder of a run.")],
    storage_options: StorageOptions = None,
) -> None:
    """Print each stage's progress from the run directory."""
    from curation import rundir
    from curation.status import read_status
    from curation.storage import storage_options as parse_options

    run = rundir.resolve(run_dir, parse_options(storage_options))
    table = Table(title=f"curate run {run.url}")
    for column in ("stage", "units", "samples", "seconds", "samples/s", "errors", "state"):
        table.add_column(column)
    for s in read_status(run):
        units = "-" if s.units is None else f"{s.done}/{s.units}"
        rate = f"{s.samples / s.seconds:,.0f}" if s.seconds > 0 else "-"
        table.add_row(s.name, units, f"{s.samples:,}", f"{s.seconds:.1f}", rate, str(s.errors),
                      s.state)  # fmt: skip
    Console(width=120).print(table)


@user_errors
def export_embeddings(
    run_dir: Annotated[str, typer.Argument(help="A run directory, or the output folder of a run.")],
    output: Annotated[
        str, typer.Option("--output", "-o", help="A new folder for img_emb/ and metadata/.")
    ],
) -> None:
    """Write the run's embeddings in clip-retrieval's layout (img_emb/, metadata/), for other
    tools (clip-retrieval's index, autofaiss) or for `curate prune --embeddings`."""
    from curation.storage import Folder, absolute
    from pipelines.data_pruning.finished import open_run
    from pipelines.data_pruning.precomputed import export

    run = open_run(run_dir, ("embed",))
    run.require_embeddings("curate export-embeddings")
    done = export(run.run, run.units, Folder(absolute(output), run.config.storage_options))
    print(f"{done['samples']:,} embeddings in {done['files']} files: {absolute(output)}")
