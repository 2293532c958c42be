"""The resolved configuration of a `curate prune` run, validated before anything is written."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
RANDOM_WEIGHTS = "random"

Metric = Literal["prototypicality", "random", "dbp", "semdedup", "el2n", "ccs"]
CLIP_FILTERS = ("clip-score", "clip-score-top")


def at_least_one(value: int) -> int:
    """Shared check for counts (clusters, workers, seeds...)."""
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


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
    filter: str | None = None
    tau: float = 0.5
    neighbors: int = 20
    balance: float = 0.0
    eps: float | None = None
    el2n_models: int = 10
    el2n_epochs: int = 5
    el2n_hidden: int = 0
    el2n_offset: float = 0.0
    ccs_score: Literal["prototypicality", "el2n"] = "prototypicality"
    ccs_cutoff: float | None = None
    executor: Literal["local", "dask"] = "local"
    scheduler: str | None = None
    workers: int = 1

    @field_validator("rate")
    @classmethod
    def _rate_in_range(cls, rate: float) -> float:
        if not 0.0 < rate < 1.0:
            raise ValueError(f"--rate must be in (0, 1), the fraction removed; got {rate}")
        return rate

    @field_validator("filter")
    @classmethod
    def _known_filter(cls, value: str | None) -> str | None:
        if value is None:
            return value
        kind, _, number = value.partition(":")
        if kind not in CLIP_FILTERS or not number:
            raise ValueError(f"--filter takes clip-score:T or clip-score-top:F, got {value!r}")
        try:
            threshold = float(number)
        except ValueError:
            raise ValueError(f"--filter {value!r}: {number!r} is not a number") from None
        if kind == "clip-score-top" and not 0 < threshold <= 1:
            raise ValueError(f"--filter {value!r}: the kept fraction must be in (0, 1]")
        return value

    @field_validator("eps", "el2n_offset", "ccs_cutoff", "balance")
    @classmethod
    def _unit_interval(cls, value: float | None) -> float | None:
        if value is not None and not 0.0 <= value < 1.0:
            raise ValueError(f"must be in [0, 1), got {value}")
        return value

    @field_validator("tau")
    @classmethod
    def _positive_tau(cls, value: float) -> float:
        if value <= 0:
            raise ValueError(f"--tau must be positive, got {value}")
        return value

    @field_validator(
        "clusters",
        "batch_size",
        "workers",
        "kmeans_iterations",
        "max_points_per_centroid",
        "neighbors",
        "el2n_models",
        "el2n_epochs",
    )
    @classmethod
    def _positive(cls, value: int) -> int:
        return at_least_one(value)

    @model_validator(mode="after")
    def _scheduler_needs_dask(self) -> PruneConfig:
        if self.scheduler and self.executor != "dask":
            raise ValueError("--scheduler needs --executor dask")
        return self

    @property
    def needs_captions(self) -> bool:
        return self.filter is not None

    @property
    def needs_el2n(self) -> bool:
        return self.metric == "el2n" or (self.metric == "ccs" and self.ccs_score == "el2n")

    @property
    def needs_dedup(self) -> bool:
        return self.metric in ("semdedup", "dbp")

    @property
    def dedup_eps(self) -> float:
        """DBP deduplicates at a fixed eps (0.07: about 63% kept on LAION, Abbas et al.)."""
        return 0.07 if self.eps is None else self.eps

    @property
    def threads(self) -> int:
        """Threads per worker: the machine's cores shared between workers."""
        return max(1, (os.cpu_count() or 1) // self.workers)
