"""SSL prototypicality (Sorscher et al. 2022, "Beyond neural scaling laws"): a sample's cosine
distance to its nearest centroid; keep the hardest (farthest) when data is plentiful, the
easiest when it is scarce."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from metrics.topk import Cutoff, order_key
from pipelines.data_pruning.criteria.base import Criterion


def _by_distance(cfg):
    def ranking(view):
        rows = view.rows
        key = order_key(view.samples.distance[rows], descending=cfg.keep == "hard")
        return rows, view.groups(rows), key

    return ranking


def plan(selection, cfg, targets: np.ndarray, notes: dict) -> dict:
    hard = cfg.keep == "hard"
    notes["direction"] = f"kept the {'hardest' if hard else 'easiest'} (--keep {cfg.keep})"
    return {"cutoff": selection.top_k(_by_distance(cfg), targets).to_json()}


def apply(record: dict, view, cfg, d) -> None:
    d.score = view.samples.distance
    rows, keep = view.cut(Cutoff.from_json(record["cutoff"]), _by_distance(cfg))
    hard = cfg.keep == "hard"
    d.settle(rows, keep, *(("hardest", "too_easy") if hard else ("easiest", "too_hard")))


CRITERION = Criterion(
    name="prototypicality",
    meaning="cosine distance to the nearest k-means centroid: large is hard (atypical), small "
    "is easy (prototypical); --keep hard keeps the largest, --keep easy the smallest",
    plan=plan,
    apply=apply,
    reasons=("hardest", "too_easy", "easiest", "too_hard"),
    options={
        "keep": (
            Literal["hard", "easy"],
            Field("hard", description="hard (far from centroids) or easy."),
        )
    },
    parameters=("keep",),
)
