"""Running `curate` in tests (in-process, as a subprocess, or through the runner) and reading
what a prune run wrote."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from curation.cli import app
from pipelines.data_pruning.config import PruneConfig, prune_config
from pipelines.data_pruning.runner import prune

REPO = Path(__file__).resolve().parents[1]


def config(shards: list, out: Path, tiny_clip: str, **overrides) -> PruneConfig:
    fields = dict(rate=0.5, model=tiny_clip, pretrained="random", clusters=4, batch_size=16)
    fields.update(overrides)
    return prune_config([str(s) for s in shards], str(out), **fields)


def run_prune(shards: list, out: Path, tiny_clip: str, **overrides) -> dict:
    """A prune run through the runner (no CLI); returns summary.json."""
    return prune(config(shards, out, tiny_clip, **overrides))


def curate(*args: str, expect: int = 0) -> str:
    """Run `curate ARGS` in this process; assert its exit status; return its output."""
    result = CliRunner().invoke(app, list(args), prog_name="curate")
    assert result.exit_code == expect, (
        f"exit {result.exit_code}:\n{result.output}\n{result.exception!r}"
    )
    return result.output


def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `curate ARGS` as a separate process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "curation", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, message: str) -> None:
    """Exit status 2, the last line `curate: error: ...` naming `message`, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("curate: error:"), result.stderr
    assert message in lines[-1], lines[-1]
    assert "Traceback" not in result.stderr


def cli_prune_args(shards: list, out: Path, tiny_clip: str, *extra: str) -> list[str]:
    return ["prune", *map(str, shards), "--output", str(out), "--rate", "0.5", "--model",
            tiny_clip, "--pretrained", "random", "--clusters", "4", "--batch-size", "16",
            *extra]  # fmt: skip


def cli_prune(inputs: list[Path | str], output: Path, model: str, *extra: str) -> dict:
    """A small `curate prune` (2 clusters, batches of 8) in this process; returns summary.json."""
    curate(*cli_prune_args(inputs, output, model, "--clusters", "2", "--batch-size", "8", *extra))
    return summary(output)


def tar_members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def samples_by_key(path: Path) -> dict[str, list[tuple[str, bytes]]]:
    grouped: dict[str, list[tuple[str, bytes]]] = {}
    for name, data in tar_members(path):
        grouped.setdefault(name.split(".", 1)[0], []).append((name, data))
    return grouped


def decisions(out: Path):
    """decisions.parquet as a DataFrame."""
    return pq.read_table(out / "decisions.parquet").to_pandas()


TIMES = ("duration", "start_time", "end_time")  # img2dataset's timing fields in _stats.json


def output_files(out: Path) -> dict[str, bytes]:
    """Every output file except the run directory and the run marker; a `_stats.json` without
    its timing fields (the one part of the outputs that differs between two runs)."""
    found = {}
    for p in sorted(out.iterdir()):
        if not p.is_file() or p.name.startswith("."):
            continue
        found[p.name] = comparable(p.name, p.read_bytes())
    return found


def comparable(name: str, data: bytes) -> bytes:
    """An output file's bytes as two runs must agree on them: a `_stats.json` without its
    timing fields."""
    if not name.endswith("_stats.json"):
        return data
    stats = {k: v for k, v in json.loads(data).items() if k not in TIMES}
    return json.dumps(stats, sort_keys=True).encode()


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())
