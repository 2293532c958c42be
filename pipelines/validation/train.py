"""Training and testing one model of a validation with the one training loop
(`pipelines.training`), at matched compute: a probe on embeddings (AdamW) or a network on
images (SGD with Nesterov momentum, padded crop and flip), both with warm-up then cosine.

Each model's input statistics (its `Standardise` layer) come from its own training subset,
never from the whole pool: a model trained on the kept samples knows nothing of the others.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import numpy as np
import torch
from torch import nn

from pipelines import training
from pipelines.validation.config import ValidationConfig
from pipelines.validation.data import ValidationData
from pipelines.validation.models import build_model, student_spec
from pipelines.validation.teachers import Teacher


def spec(data: ValidationData, config: ValidationConfig) -> dict:
    return student_spec(config, list(data.inputs.shape[1:]), data.classes)


@contextmanager
def torch_threads(config: ValidationConfig) -> Iterator[None]:
    """Probes run on one thread: their matrices are too small to gain from more, a busy
    second core stalls every parallel step, and one thread gives the same numbers on every
    machine. Networks on images use the worker's threads."""
    before = torch.get_num_threads()
    if config.on == "embeddings":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def recipe(config: ValidationConfig, steps: int) -> training.Recipe:
    images = config.on == "images"
    return training.Recipe(steps=steps, batch_size=config.batch_size, lr=config.learning_rate,
                           weight_decay=config.weight_decay,
                           optimizer="sgd" if images else "adamw", augment=images,
                           temperature=config.temperature)  # fmt: skip


def train_model(
    data: ValidationData,
    subset: np.ndarray,
    config: ValidationConfig,
    steps: int,
    seed: int,
    teacher: Teacher | None = None,
    alpha: float = 0.0,
    label: str = "train",
) -> nn.Module:
    """A model initialised from `seed`, trained for exactly `steps` steps on the pool entries
    `subset`; with a teacher, on the KD loss with weight `alpha`. Prints progress lines."""
    mean, std = training.input_statistics(data.inputs[torch.from_numpy(subset)])
    model = build_model(spec(data, config), mean, std, seed)
    with torch_threads(config):
        return training.train(
            model, data.inputs, data.labels, subset, recipe(config, steps), seed,
            teacher=None if teacher is None else teacher.module, alpha=alpha,
            teacher_inputs=None if teacher is None else teacher.inputs, device=config.device,
            log=training.TrainingLog(label, steps),
        )  # fmt: skip


def correct_on_test(model: nn.Module, data: ValidationData, config: ValidationConfig,
                    view: torch.Tensor | None = None) -> np.ndarray:  # fmt: skip
    """Which test samples `model` gets right (un-augmented, eval mode), seeing the student's
    inputs or another `view` of the same rows (an image teacher's)."""
    with torch_threads(config) if view is None else nullcontext():
        predicted = training.predict(model, data.inputs if view is None else view, data.test,
                                     device=config.device)  # fmt: skip
    return predicted == data.labels[torch.from_numpy(data.test)].numpy()
