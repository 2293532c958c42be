"""The resolved configuration of a `curate prune` run, validated before anything is written."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
RANDOM_WEIGHTS = "random"

Metric = Literal["prototypicality", "random"]


class PruneConfig(BaseModel):
    """Everything a run depends on; stages hash the parts they use."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    shards: list[str]
    output: str
    run_dir: str
    rate: float
    metric: Metric = "prototypicality"
    keep: Literal["hard", "easy"] = "hard"
    model: str = DEFAULT_MODEL
    pretrained: str = DEFAULT_PRETRAINED
    device: str = "cpu"
    batch_size: int = 64
    label_field: str = "label"
    clusters: int = 100
    kmeans_iterations: int = 20
    max_points_per_centroid: int = 256
    seed: int = 0
    executor: Literal["local", "dask"] = "local"
    scheduler: str | None = None
    workers: int = 1

    @field_validator("rate")
    @classmethod
    def _rate_in_range(cls, rate: float) -> float:
        if not 0.0 < rate < 1.0:
            raise ValueError(f"--rate must be in (0, 1), the fraction removed; got {rate}")
        return rate

    @field_validator(
        "clusters", "batch_size", "workers", "kmeans_iterations", "max_points_per_centroid"
    )
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"must be at least 1, got {value}")
        return value

    @model_validator(mode="after")
    def _scheduler_needs_dask(self) -> PruneConfig:
        if self.scheduler and self.executor != "dask":
            raise ValueError("--scheduler needs --executor dask")
        return self

    @property
    def threads(self) -> int:
        """Threads per worker: the machine's cores shared between workers."""
        return max(1, (os.cpu_count() or 1) // self.workers)
