"""Train and score models on one run's labelled data: the full training split, any subset,
with or without distillation from a teacher trained once on the full split."""

from __future__ import annotations

import numpy as np
from torch import nn

from pipelines.data_pruning.finished import FinishedRun
from pipelines.data_pruning.samples import Samples
from pipelines.validation.config import ValidationConfig
from pipelines.validation.data import load_labelled
from pipelines.validation.models import load_checkpoint, save_checkpoint
from pipelines.validation.train import accuracy, model_spec, train_model


def spread(accuracies: list[float]) -> dict:
    """Mean and sample standard deviation over seeds (0 for one seed)."""
    values = np.asarray(accuracies, dtype=np.float64)
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(values.mean()), "std": std, "per_seed": [float(v) for v in values]}


def format_accuracy(accuracy: dict, percent_sign: bool = True) -> str:
    """ "83.20% ± 0.41" from `spread`'s result (no spread for one seed)."""
    text = f"{100 * accuracy['mean']:.2f}" + ("%" if percent_sign else "")
    return text + (f" ± {100 * accuracy['std']:.2f}" if len(accuracy["per_seed"]) > 1 else "")


class Comparison:
    """Every model takes `steps` optimisation steps (matched compute) and is scored on the
    held-out split. The teacher is the given checkpoint or the full-split model of the first
    seed, trained once and reused as that seed's full-data result."""

    def __init__(self, run: FinishedRun, samples: Samples, config: ValidationConfig):
        self.run, self.config = run, config
        self.data = load_labelled(run, samples, config)
        self.train = self.data.train_indices
        self.test = self.data.test_indices
        self.steps = config.total_steps(len(self.train))
        self.spec = model_spec(self.data, config)
        self._teacher: nn.Module | None = None

    @property
    def teacher_source(self) -> str:
        return self.config.teacher or "trained on the full training split"

    def teacher(self) -> nn.Module:
        if self._teacher is None:
            if self.config.teacher:
                self._teacher = load_checkpoint(self.config.teacher, self.spec)
            else:
                self._teacher = train_model(
                    self.data, self.train, self.config, self.steps, self.config.seed
                )
        return self._teacher

    def save_teacher(self, *parts: str) -> None:
        save_checkpoint(self.teacher(), self.spec, self.run.run, *parts)

    def kept_fraction(self, indices: np.ndarray) -> float:
        return len(indices) / len(self.train)

    def score(self, indices: np.ndarray, seed: int, kd: bool) -> float:
        """Held-out accuracy of a model trained on `indices` (training-input indices)."""
        if kd:
            alpha = self.config.alpha_for(max(self.kept_fraction(indices), 1e-9))
            model = train_model(
                self.data, indices, self.config, self.steps, seed, self.teacher(), alpha
            )
        elif (
            seed == self.config.seed
            and not self.config.teacher
            and np.array_equal(indices, self.train)
        ):
            model = self.teacher()
        else:
            model = train_model(self.data, indices, self.config, self.steps, seed)
        return accuracy(model, self.data, self.test)

    def teacher_accuracy(self) -> float:
        return accuracy(self.teacher(), self.data, self.test)
