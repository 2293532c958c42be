"""Run `curate prune` in tests and read its outputs back."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pyarrow.parquet as pq

from curation.config import PruneConfig
from pipelines.data_pruning.runner import prune
from shards.paths import expand_shards

REPO = Path(__file__).resolve().parents[2]


def config(shards: list, out: Path, tiny_clip: str, **overrides) -> PruneConfig:
    fields = dict(
        shards=expand_shards([str(s) for s in shards]),
        output=str(out),
        run_dir=str(out / "_run"),
        rate=0.5,
        model=tiny_clip,
        pretrained="random",
        clusters=4,
        batch_size=16,
    )
    fields.update(overrides)
    return PruneConfig(**fields)


def run_prune(shards: list, out: Path, tiny_clip: str, **overrides) -> dict:
    return prune(config(shards, out, tiny_clip, **overrides))


def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "curation", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def cli_prune_args(shards: list, out: Path, tiny_clip: str, *extra: str) -> list[str]:
    return [
        "prune",
        *map(str, shards),
        "--output",
        str(out),
        "--rate",
        "0.5",
        "--model",
        tiny_clip,
        "--pretrained",
        "random",
        "--clusters",
        "4",
        "--batch-size",
        "16",
        *extra,
    ]


def tar_members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def samples_by_key(path: Path) -> dict[str, list[tuple[str, bytes]]]:
    grouped: dict[str, list[tuple[str, bytes]]] = {}
    for name, data in tar_members(path):
        grouped.setdefault(name.split(".", 1)[0], []).append((name, data))
    return grouped


def decisions(out: Path):
    return pq.read_table(out / "decisions.parquet").to_pandas()


def output_files(out: Path) -> dict[str, bytes]:
    """Every output file except the run directory and the run marker."""
    return {
        p.name: p.read_bytes()
        for p in sorted(out.iterdir())
        if p.is_file() and not p.name.startswith(".")
    }


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def jpeg_bytes() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), (10, 200, 10)).save(buffer, "JPEG")
    return buffer.getvalue()
