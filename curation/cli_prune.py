"""`curate prune` and `curate status`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from curation.cli_common import absolute, user_errors, validated
from curation.cli_validation import run_validation, validation_config
from curation.config import DEFAULT_MODEL, DEFAULT_PRETRAINED, PruneConfig


@user_errors
def prune(
    shards: Annotated[
        list[str],
        typer.Argument(
            help="Input shards: paths, globs, brace ranges (data/{00000..00009}.tar) or URLs."
        ),
    ],
    output: Annotated[str, typer.Option("--output", "-o", help="Folder for the pruned shards.")],
    rate: Annotated[float, typer.Option(help="Fraction of samples to remove, in (0, 1).")],
    run_dir: Annotated[
        str | None, typer.Option(help="Run directory (default: OUTPUT/_run).")
    ] = None,
    metric: Annotated[
        str, typer.Option(help="prototypicality, random, dbp, semdedup, el2n or ccs.")
    ] = "prototypicality",
    keep: Annotated[str, typer.Option(help="hard (far from centroids) or easy.")] = "hard",
    model: Annotated[
        str, typer.Option(help="open_clip model name, open_clip model-config JSON, or timm:NAME.")
    ] = DEFAULT_MODEL,
    pretrained: Annotated[
        str, typer.Option(help="open_clip tag, local checkpoint file, or 'random'.")
    ] = DEFAULT_PRETRAINED,
    clusters: Annotated[int, typer.Option(help="k-means clusters.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Images per model forward.")] = 64,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    label_field: Annotated[
        str, typer.Option(help="json field holding the label when there is no .cls.")
    ] = "label",
    executor: Annotated[str, typer.Option(help="local or dask.")] = "local",
    scheduler: Annotated[
        str | None, typer.Option(help="Dask scheduler address (default: a LocalCluster).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    filter: Annotated[
        str | None,
        typer.Option(help="Before the metric: clip-score:T (threshold) or clip-score-top:F."),
    ] = None,
    tau: Annotated[float, typer.Option(help="dbp: softmax temperature.")] = 0.5,
    neighbors: Annotated[int, typer.Option(help="dbp: nearest centroids in d_inter.")] = 20,
    balance: Annotated[
        float, typer.Option(help="dbp: per-cluster minimum, a share of the even split.")
    ] = 0.0,
    eps: Annotated[
        float | None,
        typer.Option(
            help="SemDeDup eps: dbp deduplicates at it (0.07 by default); "
            "semdedup never prunes below it."
        ),
    ] = None,
    el2n_models: Annotated[int, typer.Option(help="el2n: probes in the ensemble.")] = 10,
    el2n_epochs: Annotated[int, typer.Option(help="el2n: epochs per probe.")] = 5,
    el2n_hidden: Annotated[int, typer.Option(help="el2n: hidden units (0: linear probes).")] = 0,
    el2n_offset: Annotated[
        float, typer.Option(help="el2n: fraction of the hardest dropped first.")
    ] = 0.0,
    ccs_score: Annotated[
        str, typer.Option(help="ccs: the score to stratify, prototypicality or el2n.")
    ] = "prototypicality",
    ccs_cutoff: Annotated[
        float | None,
        typer.Option(help="ccs: fraction of the hardest cut first (default from the rate)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace what the output folder holds.")] = False,
    validate_after: Annotated[
        bool, typer.Option("--validate", help="Then run `curate validate` on the run.")
    ] = False,
) -> None:
    """Embed, cluster, score and select, then write pruned shards to OUTPUT."""
    from shards.paths import expand_shards

    output = absolute(output)
    config = validated(
        PruneConfig,
        shards=expand_shards(shards),
        output=output,
        rate=rate,
        run_dir=absolute(run_dir) if run_dir else f"{output.rstrip('/')}/_run",
        metric=metric,
        keep=keep,
        model=model,
        pretrained=pretrained,
        clusters=clusters,
        seed=seed,
        batch_size=batch_size,
        device=device,
        label_field=label_field,
        filter=filter,
        tau=tau,
        neighbors=neighbors,
        balance=balance,
        eps=eps,
        el2n_models=el2n_models,
        el2n_epochs=el2n_epochs,
        el2n_hidden=el2n_hidden,
        el2n_offset=el2n_offset,
        ccs_score=ccs_score,
        ccs_cutoff=ccs_cutoff,
        executor=executor,
        scheduler=scheduler,
        workers=workers,
    )
    from pipelines.data_pruning.runner import prune as run_prune  # heavy: after validation

    summary = run_prune(config, overwrite=overwrite)
    _print_summary(summary, config)
    if validate_after:
        run_validation(config.run_dir, validation_config())


def _print_summary(summary: dict, config: PruneConfig) -> None:
    console = Console()
    table = Table(title="curate prune", show_header=False)
    for label, key in (
        ("input samples", "input_samples"),
        ("kept", "kept_samples"),
        ("pruned", "pruned_samples"),
        ("failed", "failed_samples"),
        ("rate requested", "rate_requested"),
        ("rate achieved", "rate_achieved"),
    ):
        table.add_row(label, str(summary[key]))
    for reason, count in summary["reasons"].items():
        table.add_row(f"reason: {reason}", str(count))
    table.add_row("output", config.output)
    console.print(table)


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
