"""Labelled images read from webdataset shards into memory, for training on the pixels
(validation on images, model pruning): decoded, resized to a square side, as uint8 NCHW."""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from shards.extensions import IMAGE_EXTENSIONS
from shards.labels import LabelError, sample_label
from shards.paths import open_shard
from shards.pick import pick_samples
from shards.tario import ShardFormatError, iter_samples


def decode_rgb(data: bytes, size: int) -> torch.Tensor:
    """An image as a (3, size, size) uint8 tensor (bilinear resize when its size differs)."""
    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGB")
        if image.size != (size, size):
            image = image.resize((size, size), Image.BILINEAR)
        return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


@dataclass
class LabelledImages:
    """Every labelled, decodable sample of some shards, in shard order; `skipped` counts the
    others by reason."""

    images: torch.Tensor  # (n, 3, size, size) uint8
    labels: torch.Tensor  # (n,) int64
    keys: list[str]
    skipped: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.keys)


def read_labelled(shards: list[str], size: int, label_field: str = "label") -> LabelledImages:
    """Read, decode and label every sample; a sample without an image or a label, or that
    cannot be decoded, is skipped and counted; a damaged shard keeps what precedes the damage."""
    images, labels, keys = [], [], []
    skipped: Counter = Counter()
    for url in shards:
        with open_shard(url) as stream:
            try:
                for sample in iter_samples(stream):
                    why = _add(sample, size, label_field, images, labels, keys)
                    if why:
                        skipped[why] += 1
            except ShardFormatError:
                skipped["damaged shard"] += 1
    stacked = torch.stack(images) if images else torch.zeros((0, 3, size, size), dtype=torch.uint8)
    return LabelledImages(stacked, torch.tensor(labels, dtype=torch.int64), keys, skipped)


def _add(sample, size: int, label_field: str, images: list, labels: list, keys: list) -> str:
    """Append the sample's image, label and key; or return why it is skipped."""
    if sample.error:
        return "damaged sample"
    image = sample.get(*IMAGE_EXTENSIONS)
    if image is None:
        return "no image"
    try:
        label = sample_label(sample, label_field)
    except LabelError:
        return "bad label"
    if label is None:
        return "no label"
    try:
        images.append(decode_rgb(bytes(image.data), size))
    except Exception:  # any decoder failure skips this one sample
        return "undecodable image"
    labels.append(label)
    keys.append(sample.key)
    return ""


def pick_images(
    shards: list[str],
    shard: np.ndarray,
    position: np.ndarray,
    size: int,
    storage_options: dict | None = None,
) -> tuple[torch.Tensor, np.ndarray]:
    """The images of the samples at (`shard` index into `shards`, `position`), decoded to
    (n, 3, size, size) uint8, and which were found (a sample that is gone, damaged or
    undecodable stays zero and is not found)."""
    images = torch.zeros((len(shard), 3, size, size), dtype=torch.uint8)
    found = np.zeros(len(shard), dtype=bool)
    for s in np.unique(shard):
        rows = np.flatnonzero(shard == s)
        where = {int(p): int(i) for i, p in zip(rows, position[rows], strict=True)}
        for sample in pick_samples(shards[int(s)], where, storage_options):
            image = sample.get(*IMAGE_EXTENSIONS)
            if image is None:
                continue
            try:
                images[where[sample.position]] = decode_rgb(bytes(image.data), size)
            except Exception:  # any decoder failure leaves this one sample not found
                continue
            found[where[sample.position]] = True
    return images, found
