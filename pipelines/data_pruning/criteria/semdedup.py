"""SemDeDup (Abbas et al. 2023): within each k-means cluster, a member whose cosine similarity
to an earlier member (farthest from the centroid first) exceeds 1 - eps is a duplicate.

The `dedup` stage stores each member's highest similarity to an earlier member, so the rule
is a threshold on it: the rate prunes the most similar first, as many as it asks, which is
SemDeDup at the eps that flags exactly those; `--eps` caps how far it goes.

SemDeDup groups by the run's clustering, or with `--dedup-clusters` by its own (the papers used
50,000 clusters for SemDeDup on LAION, against 500 for DBP): `dedup_cluster`/`dedup_assign`."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from curation.fields import Count, Fraction
from curation.stage import Lazy, Stage
from pipelines.data_pruning import schema
from pipelines.data_pruning.criteria.base import Criterion
from pipelines.data_pruning.decision import Detail
from pipelines.data_pruning.workers import THREADS


def _no_params(config) -> dict:
    return {}


def _own_clusters(config) -> dict:
    return {"clusters": config.dedup_clusters}


def _own_clustering(config) -> list[Stage]:
    """With --dedup-clusters: k-means with that k (the run's sample size rule, iterations and
    seed), and every sample's assignment to it."""
    if config.dedup_clusters is None:
        return []
    train = Lazy("pipelines.data_pruning.cluster:train_clusters",
                 {"folder": "dedup_cluster", "clusters": config.dedup_clusters})  # fmt: skip
    assign = Lazy("pipelines.data_pruning.cluster:assign_shard",
                  {"centroids_from": "dedup_cluster", "folder": "dedup_assign"})  # fmt: skip
    return [
        Stage("dedup_cluster", schema.barrier_unit, train, _own_clusters, setup=THREADS),
        Stage("dedup_assign", schema.shard_units, assign, _no_params, setup=THREADS),
    ]


def scoring(config) -> list[Stage]:
    return [
        *_own_clustering(config),
        Stage("group", schema.shard_units, Lazy("pipelines.data_pruning.dedup:group_shard"),
              _no_params),
        Stage("dedup", Lazy("pipelines.data_pruning.dedup:bucket_units"),
              Lazy("pipelines.data_pruning.dedup:dedup_bucket"), _no_params),
    ]  # fmt: skip


def load_dedup(run, units, rows) -> tuple[np.ndarray, np.ndarray]:
    """Each row's highest similarity to an earlier member (-inf: none) and that member's id
    (-1), scattered into place one bucket at a time."""
    n = rows[-1].stop if rows else 0
    similarity, nearest = np.full(n, -np.inf), np.full(n, -1, dtype=np.int64)
    offsets = np.array([r.start for r in rows], dtype=np.int64)
    for table in schema.read_dedup(run):
        ids = table["id"].to_numpy()
        at = offsets[schema.id_shard(ids)] + schema.id_position(ids)
        similarity[at] = table["max_similarity"].to_numpy()
        nearest[at] = table["nearest"].to_numpy()
    return similarity, nearest


def columns(config) -> dict:
    return {"dedup": load_dedup}


def explain_duplicates(samples, d, rows: np.ndarray) -> None:
    similarity, nearest = samples["dedup"]
    d.details.append(Detail(rows, "similarity {:.4f}", similarity[rows], related=nearest[rows]))


def prune_duplicates(samples, cfg, d, rows, target) -> None:
    d.score = samples["dedup"][0]
    order = rows[np.lexsort((-samples.ids[rows], -d.score[rows]))]  # most similar first
    order = order[np.isfinite(d.score[order])]  # a cluster's first member repeats nothing
    if cfg.eps is not None:
        order = order[d.score[order].astype(np.float64) > 1.0 - cfg.eps]
    pruned = order[: len(rows) - target]
    keep = ~np.isin(rows, pruned)
    d.settle(rows, keep, "distinct", "duplicate")
    explain_duplicates(samples, d, np.sort(pruned))
    kept_scores = d.score[rows[keep]]
    threshold = float(kept_scores.max()) if len(kept_scores) else None
    d.notes["semdedup"] = {
        "eps": cfg.eps,
        "similarity_threshold": threshold,  # pruned: similarity to an earlier member above it
        "effective_eps": None if threshold is None else 1.0 - threshold,
        "duplicates_pruned": len(pruned),
    }


CRITERION = Criterion(
    name="semdedup",
    meaning="highest cosine similarity to an earlier member of the same cluster: the most "
    "similar are pruned first, as many as the rate asks (never below 1 - eps with --eps)",
    rule=prune_duplicates,
    reasons=("distinct", "duplicate"),
    options={
        "eps": (
            Fraction | None,
            Field(
                None,
                description="SemDeDup eps: dbp deduplicates at it (0.07 by default); "
                "semdedup never prunes below it.",
            ),
        ),
        "dedup_clusters": (
            Count | None,
            Field(
                None,
                description="semdedup and dbp: SemDeDup's own k-means clusters (the papers: "
                "50,000 on LAION); default: the run's --clusters clustering.",
            ),
        ),
    },
    scoring=scoring,
    columns=columns,
    parameters=("eps",),
)
