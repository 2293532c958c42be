"""SSL prototypicality (Sorscher et al. 2022, "Beyond neural scaling laws"): a sample's cosine
distance to its nearest centroid; keep the hardest (farthest) when data is plentiful, the
easiest when it is scarce."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from metrics.selection import rank_keep
from pipelines.data_pruning.criteria.base import Criterion


def keep_by_distance(samples, cfg, d, rows, target) -> None:
    hard = cfg.keep == "hard"
    d.score = samples.clusters.distance
    chosen = rank_keep(d.score[rows], samples.ids[rows], target, highest=hard)
    d.settle(rows, chosen, *(("hardest", "too_easy") if hard else ("easiest", "too_hard")))
    d.notes["direction"] = f"kept the {'hardest' if hard else 'easiest'} (--keep {cfg.keep})"


CRITERION = Criterion(
    name="prototypicality",
    meaning="cosine distance to the nearest k-means centroid: large is hard (atypical), small "
    "is easy (prototypical); --keep hard keeps the largest, --keep easy the smallest",
    rule=keep_by_distance,
    reasons=("hardest", "too_easy", "easiest", "too_hard"),
    options={
        "keep": (
            Literal["hard", "easy"],
            Field("hard", description="hard (far from centroids) or easy."),
        )
    },
    parameters=("keep",),
)
