"""`curate model prune`, `sweep`, `structured` and `bench`: smaller networks, trained on (pruned)
shards, with what they cost."""

from __future__ import annotations

from typing import Annotated

import typer

from curation.cli.common import user_errors
from curation.cli.options import command
from curation.fields import validated
from pipelines.model_pruning.config import (
    BenchConfig,
    PruneConfig,
    StructuredConfig,
    SweepConfig,
    model_config,
)

app = typer.Typer(no_args_is_help=True, help="Prune networks; fine-tune them on shards.")


def _prune(**options) -> None:
    """Prune a network by METHOD to SPARSITY (one-shot, gradual or IMP with rewinding),
    fine-tune it, and write the pruned model (masks baked in) and its summary to OUTPUT."""
    config = model_config(PruneConfig, **options)
    from pipelines.model_pruning.runner import prune as run_prune  # heavy: after validation
    from pipelines.model_pruning.summary import prune_markdown

    summary = run_prune(config)
    print(prune_markdown(summary), end="")
    print(f"pruned model: {config.output.rstrip('/')}/model.pt (load_state_dict into "
          f"{config.model}); summary.json and summary.md beside it")  # fmt: skip


def _sweep(**options) -> None:
    """Methods x sparsities x seeds (x KD), each member pruned and fine-tuned as one unit:
    results.csv, results.md and summary.json in OUTPUT."""
    config = model_config(SweepConfig, **options)
    from pipelines.model_pruning.runner import sweep as run_sweep
    from pipelines.model_pruning.summary import sweep_markdown

    print(sweep_markdown(run_sweep(config)), end="")
    print(f"results: {config.output.rstrip('/')}/results.csv, results.md, summary.json")


def _structured(**options) -> None:
    """Remove channels (filters) for real through torch-pruning, importances x targets x seeds
    (x KD), fine-tuned between pruning steps; each pruned network, smaller, in OUTPUT with
    results.csv, results.md and summary.json. Needs the structured extra."""
    config = model_config(StructuredConfig, **options)
    from pipelines.model_pruning.runner import structured as run_structured
    from pipelines.model_pruning.summary import structured_markdown

    print(structured_markdown(run_structured(config)), end="")
    print(f"pruned networks: {config.output.rstrip('/')}/<member>.pt "
          "(pipelines.model_pruning.structured.load_pruned, or docs/model_pruning.md)")  # fmt: skip


def _bench(
    run_dir: Annotated[str, typer.Argument(help="A finished curate model run, or its output.")],
    **options,
) -> None:
    """Time the run's pruned networks against its dense one in this process (batch 1 and 64,
    fixed threads, warm-up, median of repeats) on the CPU and the GPU when there is one;
    RUN/latency.json."""
    settings = validated(BenchConfig, **options)
    from pipelines.model_pruning.bench import bench, latency_markdown

    print(latency_markdown(bench(run_dir, settings)), end="")


app.command("prune")(user_errors(command(_prune, PruneConfig)))
app.command("sweep")(user_errors(command(_sweep, SweepConfig)))
app.command("structured")(user_errors(command(_structured, StructuredConfig)))
app.command("bench")(user_errors(command(_bench, BenchConfig)))
