"""Real photographs for tests, from packages already installed (no network): scikit-learn's
sample images and matplotlib's, as they are, and crops of them re-encoded as JPEG or PNG."""

from __future__ import annotations

import io
from importlib import resources

import numpy as np
from PIL import Image


def _photos() -> list[bytes]:
    sklearn_images = resources.files("sklearn.datasets.images")
    matplotlib_data = resources.files("matplotlib") / "mpl-data" / "sample_data"
    return [
        (sklearn_images / "china.jpg").read_bytes(),
        (sklearn_images / "flower.jpg").read_bytes(),
        (matplotlib_data / "grace_hopper.jpg").read_bytes(),
    ]


def real_images(count: int, seed: int = 0) -> list[tuple[str, bytes]]:
    """`count` (extension, bytes): the original photos first, then seeded crops of them."""
    photos = _photos()
    found = [("jpg", data) for data in photos[:count]]
    rng = np.random.default_rng(seed)
    decoded = [Image.open(io.BytesIO(data)).convert("RGB") for data in photos]
    while len(found) < count:
        photo = decoded[len(found) % len(decoded)]
        size = int(rng.integers(48, 128))
        left = int(rng.integers(0, photo.width - size))
        top = int(rng.integers(0, photo.height - size))
        ext, fmt = [("jpg", "JPEG"), ("png", "PNG")][len(found) % 2]
        buffer = io.BytesIO()
        photo.crop((left, top, left + size, top + size)).save(buffer, fmt)
        found.append((ext, buffer.getvalue()))
    return found
