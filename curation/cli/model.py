"""`curate model prune` and `curate model sweep`: smaller networks, trained on (pruned) shards,
with what they cost."""

from __future__ import annotations

import typer

from curation.cli.common import user_errors
from curation.cli.options import command
from pipelines.model_pruning.config import PruneConfig, SweepConfig, model_config

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


app.command("prune")(user_errors(command(_prune, PruneConfig)))
app.command("sweep")(user_errors(command(_sweep, SweepConfig)))
