"""Training the models a validation compares, at matched compute (`pipelines.training`): a
probe on embeddings or a small CNN on images, each with its input normalisation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from pipelines import training
from pipelines.validation.config import ValidationConfig
from pipelines.validation.data import LabelledData
from pipelines.validation.models import build_model


def model_spec(data: LabelledData, config: ValidationConfig) -> dict:
    kind = "cnn" if config.on == "images" else config.probe
    return {
        "kind": kind,
        "input": list(data.inputs.shape[1:]),
        "classes": data.classes,
        "hidden": config.hidden,
    }


def input_statistics(data: LabelledData) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of the training split: per feature for embeddings, per channel for images
    (in [0, 1])."""
    x = data.inputs[torch.from_numpy(data.train_indices)]
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
        return x.mean(dim=(0, 2, 3)).view(3, 1, 1), x.std(dim=(0, 2, 3)).view(3, 1, 1)
    return x.mean(dim=0), x.std(dim=0)


@contextmanager
def torch_threads(config: ValidationConfig) -> Iterator[None]:
    """Probes run on one thread: their matrices are too small to gain from more, a busy
    second core stalls every parallel step, and one thread gives the same numbers on every
    machine."""
    before = torch.get_num_threads()
    if config.on == "embeddings":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def recipe(config: ValidationConfig, steps: int) -> training.Recipe:
    return training.Recipe(steps=steps, batch_size=config.batch_size, lr=config.learning_rate,
                           weight_decay=config.weight_decay, augment=config.on == "images",
                           temperature=config.temperature)  # fmt: skip


def train_model(
    data: LabelledData,
    indices: np.ndarray,
    config: ValidationConfig,
    steps: int,
    seed: int,
    teacher: nn.Module | None = None,
    alpha: float = 0.0,
) -> nn.Module:
    """A model trained for exactly `steps` steps on `indices`; with a teacher, on the KD loss."""
    mean, std = input_statistics(data)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_model(model_spec(data, config), mean, std)
    with torch_threads(config):
        return training.train(model, data.inputs, data.labels, indices, recipe(config, steps),
                              seed, teacher, alpha)  # fmt: skip


def accuracy(model: nn.Module, data: LabelledData, indices: np.ndarray) -> float:
    """Top-1 accuracy on `indices` (un-augmented)."""
    return training.accuracy(model, data.inputs, data.labels, indices)
