"""Random pruning: the baseline every criterion is compared with (and, with KD, often matches:
Ben-Baruch et al.)."""

from __future__ import annotations

from metrics.selection import random_keep
from pipelines.data_pruning.criteria.base import Criterion


def draw(samples, cfg, d, rows, target) -> None:
    d.score = samples.clusters.distance
    d.settle(rows, random_keep(len(rows), target, cfg.seed), "random_draw", "random_draw")


CRITERION = Criterion(
    name="random",
    meaning="a uniform draw without replacement (seeded by --seed); the score shown is the "
    "distance to the nearest centroid, for reference only",
    rule=draw,
    reasons=("random_draw",),
)
