"""How `curate validate` and `curate sweep` train and compare their models."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from curation.fields import CLI, Count, FloatList, NameList, Natural, OpenFraction, Positive
from metrics.kd import kd_alpha
from pipelines.data_pruning.criteria import ranked

MIN_STEPS = 200  # a floor for small data sets, where a few epochs are only a few steps


class ValidationConfig(BaseModel):
    """`steps` is the matched compute: every model takes exactly this many optimisation steps
    of `batch_size` samples, whatever its subset's size. By default it is `epochs` passes
    over the full training split (at least MIN_STEPS)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    on: Literal["embeddings", "images"] = Field(
        "embeddings",
        description="embeddings: a probe on the stored embeddings (fast); images: a small CNN "
        "on the decoded images (CIFAR-size data).",
    )
    probe: Literal["linear", "mlp"] = Field(
        "linear", description="Probe on embeddings: linear or mlp."
    )
    hidden: Count = Field(512, description="Hidden units of the mlp probe.",
                          json_schema_extra={CLI: False})  # fmt: skip
    image_size: Count = Field(32, description="Image side for --on images.")
    epochs: Positive = Field(30.0, description="Epochs over the full split, for --steps.")
    steps: Count | None = Field(
        None,
        description="Optimisation steps of every model (matched compute); default: --epochs over "
        "the full training split.",
    )
    batch_size: Count = Field(256, description="Samples per optimisation step.")
    lr: Positive | None = Field(None, description="AdamW learning rate.")
    weight_decay: float = Field(5e-4, description="AdamW weight decay.",
                                json_schema_extra={CLI: False})  # fmt: skip
    temperature: Positive = Field(4.0, description="KD temperature T.")
    alpha: float | None = Field(None, description="KD weight; default 1 - kept_fraction / 2.")
    seeds: Count = Field(1, description="Seeds per model (mean and spread).")
    seed: Natural = Field(0, description="First seed; the teacher trains with it.")
    holdout: OpenFraction = Field(0.2, description="Held-out fraction, chosen by id hash.")
    teacher: str | None = Field(
        None,
        description="Teacher checkpoint written by curate validate (default: trained on the "
        "full set).",
    )

    @field_validator("alpha")
    @classmethod
    def _alpha_range(cls, value: float | None) -> float | None:
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"--alpha must be in [0, 1], got {value}")
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


class SweepPlan(BaseModel):
    """What `curate sweep` varies: rates, metrics (every criterion by default) and KD."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rates: FloatList = Field([0.3, 0.5, 0.7, 0.9], description="Pruning rates, comma-separated.")
    metrics: NameList = Field(
        default_factory=ranked, description="Metrics, comma-separated, or all."
    )
    kd: Literal["off", "on", "both"] = Field("both", description="off, on or both.")

    @field_validator("rates")
    @classmethod
    def _fractions(cls, rates: list[float]) -> list[float]:
        if not rates or any(not 0.0 < r < 1.0 for r in rates):
            raise ValueError(f"--rates must be fractions removed, each in (0, 1); got {rates}")
        return rates

    @field_validator("metrics")
    @classmethod
    def _known(cls, metrics: list[str]) -> list[str]:
        if metrics == ["all"]:
            return ranked()
        unknown = [m for m in metrics if m not in ranked()]
        if unknown or not metrics:
            raise ValueError(f"unknown metric {(unknown or [''])[0]!r}: choose from "
                             f"{', '.join(ranked())}")  # fmt: skip
        return metrics
