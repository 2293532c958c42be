"""The labelled samples a validation trains and tests on: inputs, labels, the held-out split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from curation.errors import CurateError
from pipelines.data_pruning.finished import FinishedRun
from pipelines.data_pruning.samples import Samples
from pipelines.images import decode_rgb
from pipelines.validation.config import ValidationConfig
from shards.extensions import IMAGE_EXTENSIONS
from shards.pick import pick_samples


def _splitmix64(values: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def heldout_mask(ids: np.ndarray, fraction: float) -> np.ndarray:
    """A sample is held out when the hash of its id falls below `fraction`: the same samples
    whatever was kept, so no training set (full, kept, random) ever contains a test sample."""
    uniform = (_splitmix64(ids) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return uniform < fraction


@dataclass
class LabelledData:
    """The run's labelled, embedded samples. `rows` maps each input back to its row in the
    run's samples; `train` marks the training split (the rest is held out)."""

    inputs: torch.Tensor  # (n, d) float32 embeddings, or (n, 3, s, s) uint8 images
    labels: torch.Tensor  # (n,) int64
    rows: np.ndarray
    train: np.ndarray
    classes: int

    def subset(self, mask: np.ndarray) -> np.ndarray:
        """Training inputs selected by `mask` (over the run's rows), as input indices."""
        return np.flatnonzero(mask[self.rows] & self.train)

    @property
    def train_indices(self) -> np.ndarray:
        return np.flatnonzero(self.train)

    @property
    def test_indices(self) -> np.ndarray:
        return np.flatnonzero(~self.train)


def load_labelled(run: FinishedRun, samples: Samples, config: ValidationConfig) -> LabelledData:
    usable = samples.valid & (samples.label >= 0)
    rows = np.flatnonzero(usable)
    labels = samples.label[rows]
    if len(rows) == 0:
        raise CurateError(
            "validation needs labels (a .cls member or a json label field), "
            "and no embedded sample of this run has one"
        )
    classes = int(labels.max()) + 1
    if len(np.unique(labels)) < 2:
        raise CurateError("validation needs at least two classes among the labelled samples")
    train = ~heldout_mask(samples.ids[rows], config.holdout)
    if train.all() or not train.any():
        raise CurateError(
            f"too few labelled samples ({len(rows)}) to hold out {config.holdout:.0%} for testing"
        )
    if config.on == "images":
        inputs = load_images(run, rows, config.image_size)
    else:
        inputs = torch.from_numpy(run.embeddings()[rows].astype(np.float32))
    return LabelledData(inputs, torch.from_numpy(labels.astype(np.int64)), rows, train, classes)


def load_images(run: FinishedRun, rows: np.ndarray, size: int) -> torch.Tensor:
    """Decode the images of `rows` from the original shards, resized to `size` x `size`."""
    table = run.rows(["shard", "position"])
    shard = table["shard"].to_numpy()[rows]
    position = table["position"].to_numpy()[rows]
    images = torch.zeros((len(rows), 3, size, size), dtype=torch.uint8)
    found = np.zeros(len(rows), dtype=bool)
    for s in np.unique(shard):
        where = {
            int(p): i for i, p in zip(np.flatnonzero(shard == s), position[shard == s], strict=True)
        }
        for sample in pick_samples(run.config.shards[int(s)], where, run.config.storage_options):
            image = sample.get(*IMAGE_EXTENSIONS)
            if image is not None:
                i = where[sample.position]
                images[i] = decode_rgb(image.data, size)
                found[i] = True
    if not found.all():
        raise CurateError(
            f"{int((~found).sum())} images could not be read back from the "
            "input shards: they changed since the run embedded them"
        )
    return images
