"""Random pruning: the baseline every criterion is compared with (and, with KD, often matches:
Ben-Baruch et al.).

The draw is a seeded hash rank: every sample gets a uniform number from (--seed, its id) and
the `M` smallest are kept, an exact count whatever the sharding. (Until 0.1.0 it was one
`rng.choice` over all candidates, which no streaming selection can reproduce.)"""

from __future__ import annotations

from metrics.topk import Cutoff, hash_rank
from pipelines.data_pruning.criteria.base import Criterion


def _by_hash(cfg):
    def ranking(view):
        rows = view.rows
        return rows, view.groups(rows), hash_rank(view.samples.ids[rows], cfg.seed)

    return ranking


def plan(selection, cfg, targets, notes: dict) -> dict:
    return {"cutoff": selection.top_k(_by_hash(cfg), targets).to_json()}


def apply(record: dict, view, cfg, d) -> None:
    d.score = view.samples.distance
    rows, keep = view.cut(Cutoff.from_json(record["cutoff"]), _by_hash(cfg))
    d.settle(rows, keep, "random_draw", "random_draw")


CRITERION = Criterion(
    name="random",
    meaning="a uniform draw without replacement (a hash of --seed and each sample's id, the "
    "smallest kept); the score shown is the distance to the nearest centroid, for reference "
    "only",
    plan=plan,
    apply=apply,
    reasons=("random_draw",),
)
