"""Density-based pruning, DBP (Abbas et al. ICLR 2024): SemDeDup at a fixed eps, re-cluster the
rest, give each cluster a kept quota weighted by its complexity (d_inter * d_intra, softmax over
tau), and keep the hardest members of each cluster up to its quota."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from curation.errors import CurateError
from curation.fields import Fraction, Positive
from curation.stage import Lazy, Stage
from metrics.complexity import complexity_weights
from metrics.quotas import QuotaError, balance_lower_bounds, quotas
from metrics.topk import Cutoff, order_key
from pipelines.data_pruning import schema
from pipelines.data_pruning.cluster_table import ClusterSums, cluster_table, complexity
from pipelines.data_pruning.criteria import semdedup
from pipelines.data_pruning.criteria.base import Criterion
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


def load_dbp_clusters(run, unit) -> dict:
    assigned = schema.read_assignment(run, "dbp_assign", unit)
    return {"dbp_cluster": assigned["cluster"].to_numpy(),
            "dbp_distance": assigned["distance"].to_numpy().astype(np.float64)}  # fmt: skip


def columns(config) -> dict:
    return {**semdedup.columns(config), "dbp_clusters": load_dbp_clusters}


def dbp_clusters(samples) -> np.ndarray:
    return samples["dbp_cluster"]


def _split(view, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """The view's SemDeDup duplicates at eps, and the rest."""
    similarity = view.samples["similarity"][view.rows]
    return view.rows[similarity > 1.0 - eps], view.rows[similarity <= 1.0 - eps]


def _hardest_in_cluster(eps: float):
    """The rest, grouped by DBP cluster, the farthest from the centroid first."""

    def ranking(view):
        rest = _split(view, eps)[1]
        cluster = view.samples["dbp_cluster"][rest].astype(np.int64)
        return rest, cluster, order_key(view.samples["dbp_distance"][rest], descending=True)

    return ranking


def _quotas(sums: ClusterSums, centroids: np.ndarray, total: int,
            cfg) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Complexity weights and kept quotas of the clusters."""
    _, _, complexities = complexity(sums, centroids, cfg.neighbors)
    weights = complexity_weights(complexities, cfg.tau)
    lower = balance_lower_bounds(sums.sizes, total, cfg.balance)
    try:
        return weights, quotas(weights, sums.sizes, total, lower)
    except QuotaError as exc:
        raise CurateError(f"--metric dbp: {exc}") from None


def plan(selection, cfg, targets: np.ndarray, notes: dict) -> dict:
    eps = dedup_eps(cfg)
    centroids = selection.centroids("dbp_cluster")
    sums, duplicates = ClusterSums(len(centroids)), 0
    for view in selection.views():  # in input order: the sums are those of one bincount
        duplicate, rest = _split(view, eps)
        sums.add(view.samples["dbp_cluster"][rest], view.samples["dbp_distance"][rest])
        duplicates += len(duplicate)
    target, left = int(targets[0]), int(sums.sizes.sum())
    total = min(target, left)
    if total < target:
        notes["short"] = f"SemDeDup at eps {eps} left {left} samples; {target} were asked"
    weights, quota = _quotas(sums, centroids, total, cfg)
    cutoff = selection.top_k(_hardest_in_cluster(eps), quota)
    table = cluster_table(sums, centroids, cfg.neighbors)
    for row, w, q in zip(table, weights, quota, strict=True):
        row.update(weight=float(w), quota=int(q))
    notes["dbp"] = {"eps": eps, "duplicates": duplicates, "tau": cfg.tau,
                    "neighbors": cfg.neighbors, "balance": cfg.balance}  # fmt: skip
    return {"cutoff": cutoff.to_json(), "quota": quota.tolist(),
            "sizes": sums.sizes.tolist(), "clusters": table}  # fmt: skip


def apply(record: dict, view, cfg, d) -> None:
    eps = dedup_eps(cfg)
    duplicate = _split(view, eps)[0]
    d.mark(duplicate, "duplicate")
    d.explain(duplicate, semdedup.duplicate_texts(view.samples, duplicate))
    d.score = view.samples["dbp_distance"]
    rest, keep = view.cut(Cutoff.from_json(record["cutoff"]), _hardest_in_cluster(eps))
    d.settle(rest, keep, "hardest_in_cluster", "over_cluster_quota")
    pruned = rest[~keep]
    quota, sizes = record["quota"], record["sizes"]
    clusters, where = np.unique(view.samples["dbp_cluster"][pruned], return_inverse=True)
    texts = [f"cluster {j}: quota {quota[j]} of {sizes[j]}" for j in clusters.tolist()]
    d.explain(pruned, np.array(texts, dtype=object)[where])  # a text per cluster, not per row


def summarise(config) -> dict:
    return {"eps": dedup_eps(config), "tau": config.tau, "neighbors": config.neighbors,
            "balance": config.balance}  # fmt: skip


CRITERION = Criterion(
    name="dbp",
    meaning="SemDeDup at eps (0.07 by default), then per-cluster kept quotas weighted by "
    "softmax(complexity / tau) with complexity = d_inter * d_intra, the hardest (farthest "
    "from the centroid) kept within each cluster",
    plan=plan,
    apply=apply,
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
    table_clusters=dbp_clusters,
    per_class=False,
)
