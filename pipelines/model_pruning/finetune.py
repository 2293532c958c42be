"""Training and scoring a (pruned) network through the one training loop,
`pipelines.training`: the run's recipe, KD from the dense network with the alpha rule of
`metrics.kd`, progress per level, and a snapshot of the weights at a given step (IMP's rewind
point)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from metrics.kd import kd_alpha
from pipelines import training
from pipelines.model_pruning.config import ModelSettings
from pipelines.model_pruning.data import ModelData, curated_fraction
from pipelines.model_pruning.network import normalised
from pipelines.model_pruning.progress import StepProgress

LOSS_WINDOW = 10  # the reported loss is the mean of the last steps'


def recipe(config: ModelSettings, steps: int) -> training.Recipe:
    return training.Recipe(steps=steps, batch_size=config.batch_size, lr=config.lr,
                           weight_decay=config.weight_decay, optimizer=config.optimizer,
                           augment=config.augment, temperature=config.temperature)  # fmt: skip


def alpha(config: ModelSettings) -> float:
    """`--alpha`, else the data-validation rule `1 - f / 2`, f the kept fraction of the curated
    training set (`curate prune` output), 1 when the shards were not curated."""
    if config.alpha is not None:
        return config.alpha
    curated = curated_fraction(config.train)
    return kd_alpha(curated["kept_fraction"] if curated else 1.0)


@dataclass
class Trained:
    """What a training run leaves: the losses and, when asked, the weights at one step."""

    losses: list[float] = field(default_factory=list)
    snapshot: dict[str, torch.Tensor] | None = None

    @property
    def final_loss(self) -> float | None:
        tail = self.losses[-LOSS_WINDOW:]
        return float(np.mean(tail)) if tail else None


def cpu_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the state_dict on the CPU (the training may go on changing the weights)."""
    return {key: value.detach().cpu().clone() for key, value in net.state_dict().items()}


def fit(net: nn.Module, data: ModelData, config: ModelSettings, steps: int, seed: int,
        label: str, teacher: nn.Module | None = None, snapshot_at: int | None = None,
        ) -> Trained:  # fmt: skip
    """Train `net` in place (behind the input normalisation) for exactly `steps` steps; with a
    teacher, on the KD loss. `snapshot_at` keeps a copy of the state_dict after that many steps
    (0: before the first)."""
    trained = Trained()
    if snapshot_at == 0:
        trained.snapshot = cpu_state(net)
    if steps == 0:
        return trained
    progress = StepProgress(label, steps)

    def on_step(done: int, loss: float) -> None:
        progress.step(done, loss)
        if done == snapshot_at:
            trained.snapshot = cpu_state(net)

    training.train(
        normalised(net, config),
        data.train.images,
        data.train.labels,
        np.arange(len(data.train)),
        recipe(config, steps),
        seed,
        teacher=None if teacher is None else normalised(teacher, config),
        alpha=alpha(config) if teacher is not None else 0.0,
        device=config.device,
        on_step=on_step,
    )
    net.to("cpu")
    trained.losses = progress.losses
    return trained


@torch.no_grad()
def evaluate(net: nn.Module, data: ModelData, config: ModelSettings) -> float:
    """Top-1 accuracy on the evaluation split."""
    model = normalised(net, config)
    split = data.eval
    accuracy = training.accuracy(model, split.images, split.labels, np.arange(len(split)),
                                 batch_size=256, device=config.device)  # fmt: skip
    net.to("cpu")
    return accuracy
