"""Shared fixtures: generated webdataset shards and a tiny open_clip model config."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from services import dask_cluster, s3, s3_server  # noqa: F401  (fixtures for every test)

TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
COLOURS = [(220, 40, 40), (40, 200, 60), (40, 60, 220), (230, 200, 40), (150, 40, 180)]


def image_bytes(rng: np.random.Generator, label: int, fmt: str = "JPEG", size: int = 48) -> bytes:
    """A noisy image whose colour and stripe direction depend on the label; colour and stripe
    width vary per image, so embeddings spread within a class."""
    base = np.array(COLOURS[label % len(COLOURS)], dtype=np.float32) * rng.uniform(0.3, 1.2, 3)
    pixels = base + rng.normal(0, 40, (size, size, 3))
    stripes = np.arange(size) // int(rng.integers(2, 12)) % 2 == 0
    if label % 2:
        pixels[stripes, :, :] *= 0.5
    else:
        pixels[:, stripes, :] *= 0.5
    buffer = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, format=fmt)
    return buffer.getvalue()


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1_700_000_000
    tar.addfile(info, io.BytesIO(data))


def write_shards(
    folder: Path, shards: int, per_shard: int, layout: str = "imagenet", seed: int = 0
) -> list[Path]:
    """Shards in the ImageNet layout (jpg + cls) or the img2dataset one (jpg/png/webp + txt +
    json)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    index = 0
    for s in range(shards):
        path = folder / f"{s:05d}.tar"
        with tarfile.open(path, "w") as tar:
            for _ in range(per_shard):
                label = int(rng.integers(0, 5))
                key = f"{index:09d}"
                if layout == "imagenet":
                    add_member(tar, f"{key}.jpg", image_bytes(rng, label))
                    add_member(tar, f"{key}.cls", str(label).encode())
                else:
                    fmt, ext = [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp")][index % 3]
                    add_member(tar, f"{key}.{ext}", image_bytes(rng, label, fmt))
                    add_member(tar, f"{key}.txt", f"a photo of thing {label}".encode())
                    meta = json.dumps({"key": key, "label": label}).encode()
                    add_member(tar, f"{key}.json", meta)
                index += 1
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("models") / "tiny-clip.json"
    path.write_text(json.dumps(TINY_CLIP))
    return str(path)


@pytest.fixture
def shards(tmp_path) -> list[Path]:
    return write_shards(tmp_path / "in", shards=3, per_shard=40)


@pytest.fixture(scope="session")
def pruned_run(tmp_path_factory, tiny_clip) -> str:
    """A finished labelled prune run with captions (img2dataset layout), pruned by
    `curate prune --validate`; shared read-only: copy it (`run_copy`) before writing into it."""
    from helpers import cli_prune_args
    from typer.testing import CliRunner

    from curation.cli import app

    root = tmp_path_factory.mktemp("pruned")
    paths = write_shards(root / "in", shards=3, per_shard=40, layout="img2dataset")
    result = CliRunner().invoke(app, cli_prune_args(paths, root / "out", tiny_clip, "--validate"))
    assert result.exit_code == 0, result.output
    return str(root / "out" / "_run")


@pytest.fixture
def run_copy(pruned_run, tmp_path) -> str:
    import shutil

    return str(shutil.copytree(pruned_run, tmp_path / "run"))
