"""The `curate` command line: commands live in the cli_* modules by area."""

from __future__ import annotations

import typer

from curation import cli_prune, cli_shards, cli_validation

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Prune web-scale image datasets in webdataset shards.",
)
app.command()(cli_prune.prune)
app.command()(cli_prune.status)
app.command()(cli_shards.ingest)
app.command()(cli_validation.validate)
app.command()(cli_validation.sweep)
app.command()(cli_validation.report)

shards_app = typer.Typer(no_args_is_help=True, help="Make webdataset shards.")
shards_app.command("from-folder")(cli_shards.shards_from_folder)
app.add_typer(shards_app, name="shards")
