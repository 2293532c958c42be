"""Training a classifier for a fixed number of optimisation steps, with or without knowledge
distillation from a teacher: shared by validation (a model trained on a pruned subset) and model
pruning (a pruned network fine-tuned).

Matched compute: every model takes exactly `recipe.steps` steps of `recipe.batch_size`
samples, whatever the size of its subset; a smaller subset is passed over more often.
Everything random (batch order, augmentation) follows one seed, so a number is reproduced
exactly by rerunning with the same seed on the same thread count. The model's initialisation is
the caller's (seed it before building the model).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal, TextIO

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from metrics.kd import kd_loss

CROP_PADDING = 4
LOG_INTERVAL_S = 10.0
StepHook = Callable[[int, float], None]  # (steps done, this step's loss)


@dataclass(frozen=True)
class Recipe:
    """How a model is trained: steps, batch, optimiser (AdamW, or SGD with Nesterov momentum
    as CIFAR ResNets are trained), a linear warm-up then cosine decay, CIFAR augmentation
    (4-pixel padded random crop and horizontal flip, on uint8 images) and the KD
    temperature."""

    steps: int
    batch_size: int
    lr: float
    weight_decay: float = 5e-4
    optimizer: Literal["adamw", "sgd"] = "adamw"
    momentum: float = 0.9
    warmup: float = 0.05
    augment: bool = False
    temperature: float = 4.0


@dataclass
class TrainingLog:
    """Progress lines of one training, every `interval` seconds and at the last step: steps
    done, steps/s, ETA and the accuracy of the training batches since the previous line (a
    long CPU training is otherwise silent for hours)."""

    label: str
    steps: int
    interval: float = LOG_INTERVAL_S
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    _start: float = field(default_factory=time.monotonic, init=False)
    _last: float = field(default_factory=time.monotonic, init=False)
    _correct: int = field(default=0, init=False)
    _seen: int = field(default=0, init=False)

    def step(self, done: int, correct: int, seen: int) -> None:
        self._correct += correct
        self._seen += seen
        now = time.monotonic()
        if done < self.steps and now - self._last < self.interval:
            return
        self._last = now
        rate = done / max(now - self._start, 1e-9)
        eta = timedelta(seconds=round((self.steps - done) / max(rate, 1e-9)))
        accuracy = 100.0 * self._correct / max(self._seen, 1)
        print(f"[{self.label}] step {done}/{self.steps}, {rate:.2f} steps/s, ETA {eta}, "
              f"running accuracy {accuracy:.1f}%", file=self.stream, flush=True)  # fmt: skip
        self._correct = self._seen = 0


class Standardise(nn.Module):
    """(x - mean) / std, uint8 images first scaled to [0, 1]; the statistics are buffers, so
    a saved model carries its input normalisation."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.float().clone())
        self.register_buffer("std", std.float().clamp_min(1e-6).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        return (x - self.mean) / self.std


def input_statistics(inputs: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of `inputs`: per feature for vectors, per channel (in [0, 1], shaped to
    broadcast over NCHW) for uint8 images, summed in float64 chunks so that no float copy of
    the whole set is made."""
    images = inputs.dtype == torch.uint8
    dims = (0, 2, 3) if images else (0,)
    total = squares = 0.0
    for part in inputs.split(chunk):
        x = part.double() / 255.0 if images else part.double()
        total = total + x.sum(dim=dims)
        squares = squares + (x * x).sum(dim=dims)
    count = inputs.numel() // (inputs.shape[1] if inputs.ndim > 1 else 1)
    mean = total / count
    std = ((squares - count * mean * mean) / max(count - 1, 1)).clamp_min(0.0).sqrt()
    shape = (-1, 1, 1) if images else (-1,)
    return mean.float().view(shape), std.float().view(shape)


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


def warmup_cosine(steps: int, warmup: float) -> Callable[[int], float]:
    """The learning-rate factor at each step: linear warm-up over `warmup` of the steps, then
    cosine decay to 0."""
    warm = max(1, round(warmup * steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))

    return factor


def augment_images(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
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


def _optimiser(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, nesterov=True,
                               weight_decay=recipe.weight_decay)  # fmt: skip
    return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def train(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    indices: np.ndarray,
    recipe: Recipe,
    seed: int,
    teacher: nn.Module | None = None,
    alpha: float = 0.0,
    teacher_inputs: torch.Tensor | None = None,
    device: str = "cpu",
    on_step: StepHook | None = None,
    log: TrainingLog | None = None,
) -> nn.Module:
    """Train `model` (in place) for exactly `recipe.steps` steps on `inputs[indices]`; with a
    teacher, on the KD loss with weight `alpha`. The teacher sees the student's (augmented)
    batch, or, given `teacher_inputs` (another view of the same samples, e.g. images for a
    student on embeddings), those rows un-augmented. `log` prints progress lines. Returns the
    model in eval mode."""
    model.to(device).train()
    if teacher is not None:
        teacher.to(device).eval()
    generator = torch.Generator().manual_seed(seed)
    optimiser = _optimiser(model, recipe)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, warmup_cosine(recipe.steps, recipe.warmup)
    )
    for step, batch in enumerate(batch_schedule(indices, recipe.steps, recipe.batch_size, seed)):
        index = torch.from_numpy(batch)
        x, y = inputs[index], labels[index].to(device)
        if recipe.augment:
            x = augment_images(x, generator)
        x = x.to(device)
        logits = model(x)
        if teacher is None:
            loss = F.cross_entropy(logits, y)
        else:
            with torch.no_grad():
                seen = x if teacher_inputs is None else teacher_inputs[index].to(device)
                target = teacher(seen)
            loss = kd_loss(logits, target, y, alpha, recipe.temperature)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        if on_step is not None:
            on_step(step + 1, loss.item())
        if log is not None:
            log.step(step + 1, int((logits.argmax(dim=1) == y).sum()), len(y))
    return model.eval()


@torch.no_grad()
def logits(
    model: nn.Module, inputs: torch.Tensor, indices: np.ndarray, batch_size: int = 1024,
    device: str = "cpu",
) -> torch.Tensor:  # fmt: skip
    """The model's outputs on `inputs[indices]` (eval mode, un-augmented), float32 on the CPU."""
    model.to(device).eval()
    found = [
        model(inputs[torch.from_numpy(indices[start : start + batch_size])].to(device))
        .float()
        .cpu()
        for start in range(0, len(indices), batch_size)
    ]
    return torch.cat(found) if found else torch.zeros((0, 0))


def predict(
    model: nn.Module, inputs: torch.Tensor, indices: np.ndarray, batch_size: int = 1024,
    device: str = "cpu",
) -> np.ndarray:  # fmt: skip
    """The predicted class of each of `inputs[indices]` (eval mode, un-augmented)."""
    if len(indices) == 0:
        return np.zeros(0, dtype=np.int64)
    return logits(model, inputs, indices, batch_size, device).argmax(dim=1).numpy()


def accuracy(
    model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, indices: np.ndarray,
    batch_size: int = 1024, device: str = "cpu",
) -> float:  # fmt: skip
    """Top-1 accuracy on `inputs[indices]`."""
    predicted = predict(model, inputs, indices, batch_size, device)
    return float((predicted == labels[torch.from_numpy(indices)].numpy()).mean()) if len(
        indices) else 0.0  # fmt: skip
