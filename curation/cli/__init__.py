"""The `curate` command line, at the top of the house: commands live in modules by area and
import the pipelines; the engine (the rest of `curation`) never imports this package."""

from __future__ import annotations

from typing import Annotated

import typer

from curation import __version__
from curation.cli import model, prune, shards, validation

HELP = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    context_settings=HELP,
    help="Prune web-scale image datasets in webdataset shards.",
)


def _version(shown: bool) -> None:
    if shown:
        print(f"curate {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Prune web-scale image datasets in webdataset shards."""


app.command("prune")(prune.prune)
app.command()(prune.status)
app.command("export-embeddings")(prune.export_embeddings)
app.command()(shards.ingest)
app.command("validate")(validation.validate)
app.command("sweep")(validation.sweep)
app.command()(validation.report)

shards_app = typer.Typer(no_args_is_help=True, context_settings=HELP,
                         help="Make webdataset shards.")  # fmt: skip
shards_app.command("from-folder")(shards.shards_from_folder)
app.add_typer(shards_app, name="shards")
app.add_typer(model.app, name="model")
