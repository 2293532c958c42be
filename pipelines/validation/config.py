"""How `curate validate` and `curate sweep` train and compare their models."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from curation.config import at_least_one
from metrics.kd import kd_alpha

MIN_STEPS = 200  # a floor for small data sets, where a few epochs are only a few steps


class ValidationConfig(BaseModel):
    """`steps` is the matched compute: every model takes exactly this many optimisation steps
    of `batch_size` samples, whatever its subset's size. By default it is `epochs` passes
    over the full training split (at least MIN_STEPS)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    on: Literal["embeddings", "images"] = "embeddings"
    probe: Literal["linear", "mlp"] = "linear"
    hidden: int = 512
    image_size: int = 32
    epochs: float = 30.0
    steps: int | None = None
    batch_size: int = 256
    lr: float | None = None
    weight_decay: float = 5e-4
    temperature: float = 4.0
    alpha: float | None = None
    seeds: int = 1
    seed: int = 0
    holdout: float = 0.2
    teacher: str | None = None

    @field_validator("hidden", "image_size", "batch_size", "seeds")
    @classmethod
    def _positive(cls, value: int) -> int:
        return at_least_one(value)

    @field_validator("epochs", "temperature")
    @classmethod
    def _positive_float(cls, value: float) -> float:
        if value <= 0:
            raise ValueError(f"must be positive, got {value}")
        return value

    @field_validator("steps")
    @classmethod
    def _positive_steps(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"--steps must be at least 1, got {value}")
        return value

    @field_validator("alpha")
    @classmethod
    def _alpha_range(cls, value: float | None) -> float | None:
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"--alpha must be in [0, 1], got {value}")
        return value

    @field_validator("holdout")
    @classmethod
    def _holdout_range(cls, value: float) -> float:
        if not 0.0 < value < 1.0:
            raise ValueError(f"--holdout must be in (0, 1), got {value}")
        return value

    @property
    def seed_list(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]

    @property
    def learning_rate(self) -> float:
        """AdamW's rate: larger for a probe on standardised features than for a CNN."""
        if self.lr is not None:
            return self.lr
        return 2e-3 if self.on == "images" else 1e-3

    def total_steps(self, train_size: int) -> int:
        if self.steps is not None:
            return self.steps
        return max(MIN_STEPS, round(self.epochs * train_size / self.batch_size))

    def alpha_for(self, kept_fraction: float) -> float:
        """The override when given, else the documented rule `kd_alpha`."""
        return self.alpha if self.alpha is not None else kd_alpha(kept_fraction)
