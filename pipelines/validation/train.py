"""Training at matched compute: every model takes the same number of optimisation steps of the
same batch size, whatever the size of its subset; a smaller subset is passed over more often.

Everything random (initialisation, batch order, augmentation) follows one seed, so a number is
reproduced exactly by rerunning with the same seed (on the same thread count).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from metrics.kd import kd_loss
from pipelines.validation.config import ValidationConfig
from pipelines.validation.data import LabelledData
from pipelines.validation.models import build_model

WARMUP = 0.05
CROP_PADDING = 4


def batch_schedule(indices: np.ndarray, steps: int, batch_size: int, seed: int) -> np.ndarray:
    """(steps, batch_size) input indices: seeded permutations of the subset, one after another,
    cut into batches."""
    if len(indices) == 0:
        raise ValueError("cannot train on an empty subset")
    rng = np.random.default_rng(seed)
    needed = steps * batch_size
    order = np.concatenate(
        [rng.permutation(indices) for _ in range(math.ceil(needed / len(indices)))]
    )
    return order[:needed].reshape(steps, batch_size)


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


def _augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop after 4-pixel zero padding, and random horizontal flip (CIFAR standard)."""
    n, _, h, w = images.shape
    padded = F.pad(images, (CROP_PADDING,) * 4)
    shifts = torch.randint(0, 2 * CROP_PADDING + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    out = torch.empty_like(images)
    for i in range(n):
        dy, dx = int(shifts[i, 0]), int(shifts[i, 1])
        crop = padded[i, :, dy : dy + h, dx : dx + w]
        out[i] = crop.flip(-1) if flips[i] else crop
    return out


def _warmup_cosine(steps: int):
    warmup = max(1, round(WARMUP * steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return factor


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
    with torch_threads(config):
        return _train(data, indices, config, steps, seed, teacher, alpha)


def _train(
    data: LabelledData,
    indices: np.ndarray,
    config: ValidationConfig,
    steps: int,
    seed: int,
    teacher: nn.Module | None,
    alpha: float,
) -> nn.Module:
    mean, std = input_statistics(data)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_model(model_spec(data, config), mean, std)
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, _warmup_cosine(steps))
    model.train()
    for batch in batch_schedule(indices, steps, config.batch_size, seed):
        index = torch.from_numpy(batch)
        x, y = data.inputs[index], data.labels[index]
        if config.on == "images":
            x = _augment(x, generator)
        logits = model(x)
        if teacher is None:
            loss = F.cross_entropy(logits, y)
        else:
            with torch.no_grad():
                target = teacher(x)
            loss = kd_loss(logits, target, y, alpha, config.temperature)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
    return model.eval()


@torch.no_grad()
def accuracy(
    model: nn.Module, data: LabelledData, indices: np.ndarray, batch_size: int = 1024
) -> float:
    """Top-1 accuracy on `indices` (un-augmented)."""
    model.eval()
    correct = 0
    for start in range(0, len(indices), batch_size):
        index = torch.from_numpy(indices[start : start + batch_size])
        correct += int((model(data.inputs[index]).argmax(dim=1) == data.labels[index]).sum())
    return correct / max(1, len(indices))
