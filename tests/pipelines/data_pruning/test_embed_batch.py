"""Decoding to uint8 and normalising whole batches gives the model the same input bits as the
models' own per-image transforms, so embeddings are unchanged (issue 13, item 4)."""

from __future__ import annotations

import io

import numpy as np
import open_clip
import pytest
import timm
import torch
from PIL import Image
from timm.data import create_transform, resolve_model_data_config

from pipelines.embedders import load_embedder
from tests.builders import image_bytes


def _images() -> list[bytes]:
    """JPEGs of several sizes (draft-scaled or not), a PNG with alpha, a greyscale JPEG."""
    rng = np.random.default_rng(0)
    found = [image_bytes(rng, label, size=size) for label, size in enumerate((20, 48, 300, 700))]
    for mode, fmt in (("RGBA", "PNG"), ("L", "JPEG")):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (64, 90, len(mode)), dtype=np.uint8).squeeze(),
                        mode).save(buffer, fmt)  # fmt: skip
        found.append(buffer.getvalue())
    return found


def _per_image(data: bytes, preprocess, size: int) -> torch.Tensor:
    """What the embed stage gave the model before: the full transform on each image."""
    with Image.open(io.BytesIO(data)) as image:
        if image.format == "JPEG":
            image.draft("RGB", (size, size))
        return preprocess(image.convert("RGB"))


def _reference_open_clip(tiny_clip: str):
    open_clip.add_model_config(tiny_clip)
    name = tiny_clip.rsplit("/", 1)[-1].removesuffix(".json")
    return open_clip.create_model_and_transforms(name)[2]


def _reference_timm(name: str):
    net = timm.create_model(name, pretrained=False, num_classes=0)
    return create_transform(**resolve_model_data_config(net), is_training=False)


@pytest.mark.parametrize("kind", ["open_clip", "timm"])
def test_a_batch_holds_the_bits_of_the_per_image_transforms(kind, tiny_clip):
    if kind == "open_clip":
        embedder = load_embedder(tiny_clip, "random")
        preprocess = _reference_open_clip(tiny_clip)
    else:
        embedder = load_embedder("timm:test_resnet", "random")
        preprocess = _reference_timm("test_resnet")
    images = _images()
    batch = embedder.batch([embedder.decode(data) for data in images])
    expected = torch.stack([_per_image(d, preprocess, embedder.image_size) for d in images])
    assert batch.dtype == expected.dtype and torch.equal(batch, expected)
    assert batch.is_contiguous(memory_format=torch.channels_last)
    stored = embedder.encode_images(batch).astype(np.float16)  # the embed stage's storage
    assert np.array_equal(stored, embedder.encode_images(expected).astype(np.float16))
