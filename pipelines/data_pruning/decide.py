"""Decide which samples to keep from their scores, for one rate and metric.

Pure given the gathered `Samples` and the config: the `select` stage writes its result, and
`curate sweep` calls it for every rate and metric over the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from curation.config import PruneConfig
from metrics.selection import kept_count, random_keep, rank_keep
from pipelines.data_pruning.samples import Samples

FAILED = "failed"


@dataclass
class Decision:
    """Row-aligned with `Samples`: kept or not, the reason code, an optional human detail."""

    keep: np.ndarray  # bool
    reason: np.ndarray  # object (str)
    detail: np.ndarray  # object (str or None)
    score: np.ndarray  # float64: the score the decision ranked by (nan when none)


def _by_prototypicality(samples: Samples, config: PruneConfig, target: int) -> Decision:
    """Sorscher et al. 2022: cosine distance to the nearest centroid; keep the hardest
    (largest) when data is plentiful, the easiest when it is scarce."""
    hard = config.keep == "hard"
    candidates = np.flatnonzero(samples.valid)
    chosen = rank_keep(samples.distance[candidates], samples.ids[candidates], target, hard)
    keep = np.zeros(len(samples), dtype=bool)
    keep[candidates[chosen]] = True
    kept_reason, pruned_reason = ("hardest", "too_easy") if hard else ("easiest", "too_hard")
    reason = np.where(keep, kept_reason, pruned_reason).astype(object)
    return Decision(keep, reason, np.full(len(samples), None, dtype=object), samples.distance)


def _at_random(samples: Samples, config: PruneConfig, target: int) -> Decision:
    candidates = np.flatnonzero(samples.valid)
    keep = np.zeros(len(samples), dtype=bool)
    keep[candidates[random_keep(len(candidates), target, config.seed)]] = True
    reason = np.full(len(samples), "random_draw", dtype=object)
    return Decision(keep, reason, np.full(len(samples), None, dtype=object), samples.distance)


METRICS = {"prototypicality": _by_prototypicality, "random": _at_random}


def decide(samples: Samples, config: PruneConfig) -> Decision:
    target = kept_count(int(samples.valid.sum()), config.rate)
    decision = METRICS[config.metric](samples, config, target)
    decision.reason[~samples.valid] = FAILED
    decision.keep[~samples.valid] = False
    return decision
