"""SemDeDup (Abbas et al. 2023): within each k-means cluster, a member whose cosine similarity
to an earlier member (farthest from the centroid first) exceeds 1 - eps is a duplicate.

The `dedup` stage stores each member's highest similarity to an earlier member, so the rule
is a threshold on it: the rate prunes the most similar first (ties: the larger id first), as
many as it asks, which is SemDeDup at the eps that flags exactly those; `--eps` caps how far it
goes. Streamed, that is keeping the least similar of the eligible members (ties: the smaller id
first): the exact top-k of `metrics.topk`.

SemDeDup groups by the run's clustering, or with `--dedup-clusters` by its own (the papers used
50,000 clusters for SemDeDup on LAION, against 500 for DBP): `dedup_cluster`/`dedup_assign`."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from curation.fields import Count, Fraction
from curation.stage import Lazy, Stage
from metrics.topk import Cutoff, order_key
from pipelines.data_pruning import schema
from pipelines.data_pruning.criteria.base import Criterion
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


def load_dedup(run, unit) -> dict:
    """Each row's highest similarity to an earlier member of its cluster (-inf: none), that
    member's id (-1) and key (None)."""
    n = schema.row_count(run, unit)
    similarity, nearest = np.full(n, -np.inf), np.full(n, -1, dtype=np.int64)
    nearest_key = np.full(n, None, dtype=object)
    table = schema.read_shard_dedup(run, unit)
    at = schema.id_position(table["id"].to_numpy())
    similarity[at] = table["max_similarity"].to_numpy()
    nearest[at] = table["nearest"].to_numpy()
    nearest_key[at] = table["nearest_key"].to_numpy(zero_copy_only=False)
    return {"similarity": similarity, "nearest": nearest, "nearest_key": nearest_key}


def columns(config) -> dict:
    return {"dedup": load_dedup}


def duplicate_texts(samples, rows: np.ndarray) -> list[str]:
    """A duplicate's detail: "duplicate of KEY (similarity s)" ("similarity s" alone when no
    earlier member is named)."""
    words = [f"similarity {s:.4f}" for s in samples["similarity"][rows]]
    return [word if key is None else f"duplicate of {key} ({word})"
            for key, word in zip(samples["nearest_key"][rows], words, strict=True)]  # fmt: skip


def _eligible(view, eps) -> np.ndarray:
    """Rows of the view SemDeDup may prune: similar to an earlier member (beyond 1 - eps)."""
    score = view.samples["similarity"][view.rows]
    eligible = np.isfinite(score)
    if eps is not None:
        eligible &= score > 1.0 - eps
    return view.rows[eligible]


def _least_similar(cfg):
    def ranking(view):
        rows = _eligible(view, cfg.eps)
        return rows, view.groups(rows), order_key(view.samples["similarity"][rows])

    return ranking


def plan(selection, cfg, targets: np.ndarray, notes: dict) -> dict:
    def counts(view):
        groups = view.groups(_eligible(view, cfg.eps))
        return np.stack([np.bincount(view.groups(view.rows), minlength=selection.groups),
                         np.bincount(groups, minlength=selection.groups)])  # fmt: skip

    rows, eligible = selection.total(counts).reshape(2, selection.groups)
    pruned = np.minimum(eligible, rows - targets)
    cutoff = selection.top_k(_least_similar(cfg), eligible - pruned)
    others = selection.extreme(lambda view: _kept_anyway(view, cfg.eps), largest=True)
    lasts = [cutoff.last(g) for g in range(selection.groups) if cutoff.kept[g]]
    kept = [v for v in (others, *lasts) if v is not None]
    threshold = max(kept) if kept else None
    notes["semdedup"] = {
        "eps": cfg.eps,
        "similarity_threshold": threshold,  # pruned: similarity to an earlier member above it
        "effective_eps": None if threshold is None else 1.0 - threshold,
        "duplicates_pruned": int(pruned.sum()),
    }
    return {"cutoff": cutoff.to_json()}


def _kept_anyway(view, eps) -> np.ndarray:
    """The similarities of the rows no rate prunes (not eligible)."""
    eligible = np.isin(view.rows, _eligible(view, eps), assume_unique=True)
    return view.samples["similarity"][view.rows[~eligible]]


def apply(record: dict, view, cfg, d) -> None:
    d.score = view.samples["similarity"]
    eligible, kept = view.cut(Cutoff.from_json(record["cutoff"]), _least_similar(cfg))
    keep = ~np.isin(view.rows, eligible[~kept], assume_unique=True)
    d.settle(view.rows, keep, "distinct", "duplicate")
    pruned = view.rows[~keep]
    d.explain(pruned, duplicate_texts(view.samples, pruned))


CRITERION = Criterion(
    name="semdedup",
    meaning="highest cosine similarity to an earlier member of the same cluster: the most "
    "similar are pruned first, as many as the rate asks (never below 1 - eps with --eps)",
    plan=plan,
    apply=apply,
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
