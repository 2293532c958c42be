"""Density-based pruning, DBP (Abbas et al. ICLR 2024): SemDeDup at a fixed eps, re-cluster the
rest, give each cluster a kept quota weighted by its complexity (d_inter * d_intra, softmax over
tau), and keep the hardest members of each cluster up to its quota."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from curation.errors import CurateError
from curation.fields import Fraction, Positive
from curation.stage import Lazy, Stage
from metrics.complexity import (
    cluster_complexity,
    complexity_weights,
    inter_cluster_distance,
    intra_cluster_distance,
)
from metrics.quotas import QuotaError, balance_lower_bounds, quotas
from pipelines.data_pruning import schema
from pipelines.data_pruning.cluster_table import cluster_table
from pipelines.data_pruning.criteria import semdedup
from pipelines.data_pruning.criteria.base import Criterion
from pipelines.data_pruning.decision import Detail
from pipelines.data_pruning.samples import Clustering, load_clustering
from pipelines.data_pruning.workers import THREADS

DEFAULT_EPS = 0.07  # about 63% kept on LAION (Abbas et al.)


def dedup_eps(config) -> float:
    return DEFAULT_EPS if config.eps is None else config.eps


def _eps_params(config) -> dict:
    return {"eps": dedup_eps(config)}


def _no_params(config) -> dict:
    return {}


def scoring(config) -> list[Stage]:
    """SemDeDup's stages, then the same clustering trained on the non-duplicates only."""
    train = Lazy(
        "pipelines.data_pruning.cluster:train_clusters",
        {"folder": "dbp_cluster", "without_duplicates_at": dedup_eps(config)},
    )
    assign = Lazy(
        "pipelines.data_pruning.cluster:assign_shard",
        {"centroids_from": "dbp_cluster", "folder": "dbp_assign"},
    )
    return [
        *semdedup.scoring(config),
        Stage("dbp_cluster", schema.barrier_unit, train, _eps_params, setup=THREADS),
        Stage("dbp_assign", schema.shard_units, assign, _no_params, setup=THREADS),
    ]  # fmt: skip


def load_dbp_clusters(run, units, rows) -> Clustering:
    return load_clustering(run, units, rows, "dbp_cluster", "dbp_assign")


def columns(config) -> dict:
    return {**semdedup.columns(config), "dbp_clusters": load_dbp_clusters}


def _quotas(clusters: Clustering, rows: np.ndarray, total: int,
            cfg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Complexity weights, sizes and kept quotas of the clusters, over `rows`."""
    k = len(clusters.centroids)
    d_intra, sizes = intra_cluster_distance(clusters.cluster[rows], clusters.distance[rows], k)
    d_inter = inter_cluster_distance(clusters.centroids, cfg.neighbors)
    weights = complexity_weights(cluster_complexity(d_intra, d_inter, sizes), cfg.tau)
    try:
        quota = quotas(weights, sizes, total, balance_lower_bounds(sizes, total, cfg.balance))
    except QuotaError as exc:
        raise CurateError(f"--metric dbp: {exc}") from None
    return weights, sizes, quota


def _hardest_in_clusters(clusters: Clustering, rows: np.ndarray,
                         quota: np.ndarray) -> np.ndarray:  # fmt: skip
    """Mask over `rows` (ascending) of the `quota[j]` members of each cluster j farthest from
    its centroid; ties go to the smaller id, since ids ascend with rows and the sort is stable
    (no id key to sort by)."""
    cluster = clusters.cluster[rows]
    order = np.lexsort((-clusters.distance[rows], cluster))
    sizes = np.bincount(cluster, minlength=len(quota))
    keep = np.zeros(len(rows), dtype=bool)
    for start, count in zip(np.cumsum(sizes) - sizes, quota, strict=True):
        keep[order[start : start + count]] = True  # the first of the cluster in `order`
    return keep


def keep_by_quota(samples, cfg, d, rows, target) -> None:
    eps = dedup_eps(cfg)
    similarity = samples["dedup"][0][rows]
    duplicate, rest = rows[similarity > 1.0 - eps], rows[similarity <= 1.0 - eps]
    d.mark(duplicate, "duplicate")
    semdedup.explain_duplicates(samples, d, duplicate)
    clusters = samples["dbp_clusters"]
    d.score = clusters.distance
    total = min(target, len(rest))
    if total < target:
        d.notes["short"] = (f"SemDeDup at eps {eps} left {len(rest)} samples; "
                            f"{target} were asked")  # fmt: skip
    weights, sizes, quota = _quotas(clusters, rest, total, cfg)
    keep = _hardest_in_clusters(clusters, rest, quota)
    d.settle(rest, keep, "hardest_in_cluster", "over_cluster_quota")
    pruned = rest[~keep]
    texts = [f"cluster {j}: quota {quota[j]} of {sizes[j]}" for j in range(len(quota))]
    d.details.append(Detail(pruned, np.array(texts, dtype=object)[clusters.cluster[pruned]]))
    d.clusters = cluster_table(clusters, rest, d.keep, cfg.neighbors)
    for row, w, q in zip(d.clusters, weights, quota, strict=True):
        row.update(weight=float(w), quota=int(q))
    d.notes["dbp"] = {"eps": eps, "duplicates": len(duplicate), "tau": cfg.tau,
                      "neighbors": cfg.neighbors, "balance": cfg.balance}  # fmt: skip


def summarise(config) -> dict:
    return {"eps": dedup_eps(config), "tau": config.tau, "neighbors": config.neighbors,
            "balance": config.balance}  # fmt: skip


CRITERION = Criterion(
    name="dbp",
    meaning="SemDeDup at eps (0.07 by default), then per-cluster kept quotas weighted by "
    "softmax(complexity / tau) with complexity = d_inter * d_intra, the hardest (farthest "
    "from the centroid) kept within each cluster",
    rule=keep_by_quota,
    reasons=("duplicate", "hardest_in_cluster", "over_cluster_quota"),
    options={
        "tau": (Positive, Field(0.5, description="dbp: softmax temperature.")),
        "balance": (
            Fraction,
            Field(0.0, description="dbp: per-cluster minimum, a share of the even split."),
        ),
    },
    scoring=scoring,
    columns=columns,
    parameters=("eps", "tau", "neighbors", "balance"),
    summarise=summarise,
    cluster_columns=("quota",),
)
