"""Running model pruning in tests and reading what a run wrote."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines.model_pruning.config import PruneConfig, SweepConfig, model_config
from pipelines.model_pruning.runner import prune, sweep
from tests.builders import write_shards

TINY = "tests.pipelines.model_pruning.nets:tiny_cnn"
FAST = {"model": TINY, "image_size": 16, "steps": 6, "batch_size": 8, "threads": 1}


@dataclass(frozen=True)
class Data:
    train: str
    eval: str


def labelled_data(root: Path) -> Data:
    """Generated labelled shards under `root`: 2 x 40 to train on, 40 to evaluate."""
    write_shards(root / "train", shards=2, per_shard=40)
    write_shards(root / "eval", shards=1, per_shard=40, seed=1)
    return Data(str(root / "train" / "*.tar"), str(root / "eval" / "*.tar"))


def prune_config(data: Data, out: Path, **overrides) -> PruneConfig:
    return model_config(PruneConfig, train=data.train, eval=data.eval, output=str(out),
                        **{**FAST, "sparsity": 0.8, **overrides})  # fmt: skip


def run_prune(data: Data, out: Path, **overrides) -> dict:
    """`curate model prune` through the runner; returns summary.json."""
    return prune(prune_config(data, out, **overrides))


def run_sweep(data: Data, out: Path, **overrides) -> dict:
    config = model_config(SweepConfig, train=data.train, eval=data.eval, output=str(out),
                          **{**FAST, **overrides})  # fmt: skip
    return sweep(config)


def cli_args(data: Data, out: Path, *extra: str) -> list[str]:
    return ["model", "prune", "--model", TINY, "--train", data.train, "--eval", data.eval,
            "--output", str(out), "--image-size", "16", "--batch-size", "8", "--threads", "1",
            "--sparsity", "0.8", *extra]  # fmt: skip


def artifacts(out: Path) -> dict[str, bytes]:
    """Every file a run writes that must be the same bytes on every rerun: the output folder
    and each level's files (not the engine's stats and run.log, which hold times, nor the
    records that name the folder)."""
    found = {}
    for path in sorted(out.rglob("*")):
        relative = path.relative_to(out).as_posix()
        parts = set(relative.split("/"))
        if path.is_file() and not parts & {
            "stats",
            "config.json",
            "stage.json",
            ".curate-run.json",
            "run.log",
        }:
            found[relative] = path.read_bytes()
    return found
