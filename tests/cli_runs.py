"""Running `curate` commands in-process from tests, and reading what a prune run wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from helpers import cli_prune_args
from typer.testing import CliRunner

from curation.cli import app


def curate(*args: str, expect: int = 0) -> str:
    """Run `curate ARGS`; assert its exit status; return its output (stdout and stderr)."""
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == expect, (
        f"exit {result.exit_code}:\n{result.output}\n{result.exception!r}"
    )
    return result.output


def prune(inputs: list[Path | str], output: Path, model: str, *extra: str) -> dict:
    """A small prune run with the tiny random-weight model; returns summary.json."""
    curate(*cli_prune_args(inputs, output, model, "--clusters", "2", "--batch-size", "8", *extra))
    return json.loads((output / "summary.json").read_text())


def decisions(output: Path) -> list[dict]:
    return pq.read_table(output / "decisions.parquet").to_pylist()
