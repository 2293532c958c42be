"""The `curate` command line, at the top of the house: commands live in modules by area and
import the pipelines; the engine (the rest of `curation`) never imports this package."""

from __future__ import annotations

import typer

from curation.cli import model, prune, shards, validation

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Prune web-scale image datasets in webdataset shards.",
)
app.command("prune")(prune.prune)
app.command()(prune.status)
app.command()(shards.ingest)
app.command("validate")(validation.validate)
app.command("sweep")(validation.sweep)
app.command()(validation.report)

shards_app = typer.Typer(no_args_is_help=True, help="Make webdataset shards.")
shards_app.command("from-folder")(shards.shards_from_folder)
app.add_typer(shards_app, name="shards")
app.add_typer(model.app, name="model")
