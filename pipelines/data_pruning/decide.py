"""Decide which samples to keep from their scores, for one rate and metric.

Pure given the gathered `Samples` and the config: the `select` stage writes its result, and
`curate sweep` calls it for every rate and metric over the same samples. Definitions follow
ALGORITHMS.md; each rule's source is in the metrics module it calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from curation.config import PruneConfig
from curation.errors import CurateError
from metrics.ccs import ccs, default_cutoff
from metrics.complexity import (
    cluster_complexity,
    complexity_weights,
    inter_cluster_distance,
    intra_cluster_distance,
)
from metrics.quotas import QuotaError, balance_lower_bounds, quotas
from metrics.selection import kept_count, random_keep, rank_keep
from pipelines.data_pruning.samples import Clustering, Samples

FAILED = "failed"
REASONS = (
    FAILED, "hardest", "too_easy", "easiest", "too_hard", "random_draw", "hardest_offset",
    "no_label", "stratum_sample", "stratum_budget", "hardest_cutoff", "distinct", "duplicate",
    "hardest_in_cluster", "over_cluster_quota", "no_caption", "below_clip_threshold",
)  # fmt: skip
_CODES = {reason: code for code, reason in enumerate(REASONS)}
_NAMES = np.array(REASONS, dtype=object)


@dataclass(frozen=True)
class Detail:
    """Words for some rows (ascending, so that a shard's share is a slice): `text`, one for
    all or one per row, in which "{}" stands for the row's entry of `values`; `related`, the
    id of the sample each row refers to (the earlier member a duplicate repeats)."""

    rows: np.ndarray
    text: str | np.ndarray
    values: np.ndarray | None = None
    related: np.ndarray | None = None

    def texts(self, first: int, last: int) -> list[str]:
        """The texts of `rows[first:last]`."""
        if isinstance(self.text, str):
            texts = [self.text] * (last - first)
        else:
            texts = self.text[first:last].tolist()
        if self.values is None:
            return texts
        values = self.values[first:last].tolist()
        return [text.format(value) for text, value in zip(texts, values, strict=True)]


@dataclass
class Decision:
    """Row-aligned with `Samples`: `keep`, each row's reason and the score the metric ranked
    by; `details` the words for the rows that have some; `clusters` the per-cluster table;
    `notes` what the report should state (effective eps, strata budgets...).

    Compact, so that deciding over 10M samples fits in memory: a reason is stored as its index
    in REASONS (`codes`; `reason` decodes them, so `keep`, `reason` and `score` read as
    before), and a detail only for the rows that have one, with one text shared by many rows
    where it can be (`details`, in place of the per-row `detail` and `related` columns)."""

    keep: np.ndarray  # bool
    codes: np.ndarray  # uint8: index in REASONS
    score: np.ndarray  # float64: the score the metric ranked by
    details: list[Detail] = field(default_factory=list)
    clusters: list[dict] = field(default_factory=list)
    notes: dict = field(default_factory=dict)

    @property
    def reason(self) -> np.ndarray:
        """Every row's reason (object array of str), decoded on each access."""
        return self.reasons(slice(None))

    def reasons(self, rows: slice | np.ndarray) -> np.ndarray:
        return _NAMES[self.codes[rows]]

    def mark(self, rows: np.ndarray, reason: str) -> None:
        self.codes[rows] = _CODES[reason]

    def settle(self, rows: np.ndarray, keep: np.ndarray, kept: str, pruned: str) -> None:
        """Record a keep/prune outcome with its reasons for `rows`."""
        self.keep[rows[keep]] = True
        self.mark(rows[keep], kept)
        self.mark(rows[~keep], pruned)


def _prototypicality(samples: Samples, cfg: PruneConfig, d: Decision, rows, target) -> None:
    """Sorscher et al. 2022: cosine distance to the nearest centroid; keep the hardest
    (largest) when data is plentiful, the easiest when it is scarce."""
    hard = cfg.keep == "hard"
    d.score = samples.clusters.distance
    chosen = rank_keep(d.score[rows], samples.ids[rows], target, highest=hard)
    d.settle(rows, chosen, *(("hardest", "too_easy") if hard else ("easiest", "too_hard")))
    d.notes["direction"] = f"kept the {'hardest' if hard else 'easiest'} (--keep {cfg.keep})"


def _random(samples: Samples, cfg: PruneConfig, d: Decision, rows, target) -> None:
    d.score = samples.clusters.distance
    d.settle(rows, random_keep(len(rows), target, cfg.seed), "random_draw", "random_draw")


def _el2n(samples: Samples, cfg: PruneConfig, d: Decision, rows, target) -> None:
    """Paul et al. 2021: keep the highest EL2N; `--el2n-offset` first drops the very hardest
    (often label noise)."""
    d.score = samples.el2n
    rows = _drop_unlabelled(d, rows)
    order = rows[np.lexsort((samples.ids[rows], -d.score[rows]))]
    offset = math.floor(cfg.el2n_offset * len(order) + 1e-9)
    d.mark(order[:offset], "hardest_offset")
    why = f"among the hardest {cfg.el2n_offset:.0%} (--el2n-offset)"
    d.details.append(Detail(np.sort(order[:offset]), why))
    rest = order[offset:]  # already ranked: no second sort
    d.settle(rest, np.arange(len(rest)) < target, "hardest", "too_easy")
    d.notes["el2n"] = {"models": cfg.el2n_models, "epochs": cfg.el2n_epochs,
                       "probe": f"MLP, {cfg.el2n_hidden} hidden" if cfg.el2n_hidden else "linear",
                       "offset": cfg.el2n_offset}  # fmt: skip


def _drop_unlabelled(d: Decision, rows: np.ndarray) -> np.ndarray:
    unlabelled = np.isnan(d.score[rows])
    d.mark(rows[unlabelled], "no_label")
    return rows[~unlabelled]


def _ccs(samples: Samples, cfg: PruneConfig, d: Decision, rows, target) -> None:
    """Zheng et al. 2023: cut the hardest, then fill the budget stratum by stratum."""
    d.score = samples.el2n if cfg.ccs_score == "el2n" else samples.clusters.distance
    rows = _drop_unlabelled(d, rows)
    cutoff = default_cutoff(cfg.rate) if cfg.ccs_cutoff is None else cfg.ccs_cutoff
    try:
        result = ccs(d.score[rows], samples.ids[rows], target, cutoff, seed=cfg.seed)
    except ValueError as exc:
        raise CurateError(f"--metric ccs with cutoff {cutoff}: {exc}") from None
    d.settle(rows, result.keep, "stratum_sample", "stratum_budget")
    d.mark(rows[result.cut], "hardest_cutoff")
    for s in np.flatnonzero(result.stratum_sizes):
        members = rows[(result.stratum == s) & ~result.keep]
        why = (f"stratum {s} [{result.edges[s]:.4f}, {result.edges[s + 1]:.4f}]: "
               f"{result.budgets[s]} of {result.stratum_sizes[s]} kept")  # fmt: skip
        d.details.append(Detail(members, why))
    d.notes["ccs"] = {"score": cfg.ccs_score, "cutoff": cutoff, "cut": int(result.cut.sum()),
                      "strata": len(result.budgets), "budgets": result.budgets.tolist(),
                      "stratum_sizes": result.stratum_sizes.tolist()}  # fmt: skip


def _semdedup(samples: Samples, cfg: PruneConfig, d: Decision, rows, target) -> None:
    """Abbas et al. 2023: prune the members most similar to an earlier member of their cluster,
    as many as the rate asks; that is SemDeDup at the eps that flags exactly those. With
    --eps, nothing below its threshold is pruned, whatever the rate."""
    d.score = samples.max_similarity
    order = rows[np.lexsort((-samples.ids[rows], -d.score[rows]))]  # most similar first
    order = order[np.isfinite(d.score[order])]  # a cluster's first member repeats nothing
    if cfg.eps is not None:
        order = order[d.score[order].astype(np.float64) > 1.0 - cfg.eps]
    pruned = order[: len(rows) - target]
    keep = ~np.isin(rows, pruned)
    d.settle(rows, keep, "distinct", "duplicate")
    _explain_duplicates(samples, d, np.sort(pruned))
    kept_scores = d.score[rows[keep]]
    threshold = float(kept_scores.max()) if len(kept_scores) else None
    d.notes["semdedup"] = {
        "eps": cfg.eps,
        "similarity_threshold": threshold,  # pruned: similarity to an earlier member above it
        "effective_eps": None if threshold is None else 1.0 - threshold,
        "duplicates_pruned": len(pruned),
    }


def _explain_duplicates(samples: Samples, d: Decision, rows: np.ndarray) -> None:
    d.details.append(Detail(rows, "similarity {:.4f}", samples.max_similarity[rows],
                            related=samples.nearest[rows]))  # fmt: skip


def _dbp(samples: Samples, cfg: PruneConfig, d: Decision, rows, target) -> None:
    """Abbas et al. ICLR 2024: SemDeDup at eps, re-cluster, complexity-weighted quotas,
    the hardest within each cluster."""
    duplicate, rest = _split_duplicates(samples, rows, 1.0 - cfg.dedup_eps)
    d.mark(duplicate, "duplicate")
    _explain_duplicates(samples, d, duplicate)
    clusters = samples.dbp_clusters
    d.score = clusters.distance
    total = min(target, len(rest))
    if total < target:
        d.notes["short"] = (f"SemDeDup at eps {cfg.dedup_eps} left {len(rest)} samples; "
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
    d.notes["dbp"] = {"eps": cfg.dedup_eps, "duplicates": len(duplicate), "tau": cfg.tau,
                      "neighbors": cfg.neighbors, "balance": cfg.balance}  # fmt: skip


def _split_duplicates(samples: Samples, rows: np.ndarray,
                      threshold: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The rows more similar than `threshold` to an earlier member, and the others."""
    similarity = samples.max_similarity[rows]
    return rows[similarity > threshold], rows[similarity <= threshold]


def _quotas(clusters: Clustering, rows: np.ndarray, total: int,
            cfg: PruneConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
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


def cluster_table(clusters: Clustering, rows: np.ndarray, keep: np.ndarray,
                  neighbors: int) -> list[dict]:  # fmt: skip
    """Per cluster: size, d_intra, d_inter, complexity and kept, over `rows`."""
    k = len(clusters.centroids)
    cluster = clusters.cluster[rows]
    d_intra, sizes = intra_cluster_distance(cluster, clusters.distance[rows], k)
    d_inter = inter_cluster_distance(clusters.centroids, neighbors)
    complexity = cluster_complexity(d_intra, d_inter, sizes)
    kept = np.bincount(cluster[keep[rows]], minlength=k)
    return [
        {"cluster": j, "size": int(sizes[j]), "d_intra": _number(d_intra[j]),
         "d_inter": _number(d_inter[j]), "complexity": _number(complexity[j]),
         "kept": int(kept[j])}
        for j in range(k)
    ]  # fmt: skip


def _number(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 6)


def _clip_filter(samples: Samples, cfg: PruneConfig, d: Decision, rows: np.ndarray) -> np.ndarray:
    """DataComp's CLIP-score filter before the metric: a threshold, or the top fraction."""
    kind, value = cfg.filter.split(":")
    threshold = float(value)
    scores = samples.clip_score[rows]
    captioned = ~np.isnan(scores)
    if kind == "clip-score-top":
        top = rank_keep(np.where(captioned, scores, -np.inf), samples.ids[rows],
                        round(threshold * len(rows)), highest=True)  # fmt: skip
        passed = top & captioned
        threshold = float(scores[passed].min()) if passed.any() else math.inf
    else:
        passed = captioned & (scores >= threshold)
    below = rows[captioned & ~passed]
    d.mark(rows[~captioned], "no_caption")
    d.mark(below, "below_clip_threshold")
    d.details.append(Detail(below, f"clip score {{:.4f}} < {threshold:.4f}",
                            samples.clip_score[below]))  # fmt: skip
    d.notes["filter"] = {"filter": cfg.filter, "threshold": threshold,
                         "passed": int(passed.sum()), "candidates": len(rows)}  # fmt: skip
    return rows[passed]


METRICS: dict[str, Callable] = {
    "prototypicality": _prototypicality,
    "random": _random,
    "dbp": _dbp,
    "semdedup": _semdedup,
    "el2n": _el2n,
    "ccs": _ccs,
}


def decide(samples: Samples, config: PruneConfig) -> Decision:
    n = len(samples)
    d = Decision(
        keep=np.zeros(n, dtype=bool),
        codes=np.full(n, _CODES[FAILED], dtype=np.uint8),
        score=np.full(n, np.nan),
    )
    rows = np.flatnonzero(samples.valid)
    target = kept_count(len(rows), config.rate)
    if config.filter:
        rows = _clip_filter(samples, config, d, rows)
    if target > len(rows):
        d.notes["short"] = f"only {len(rows)} samples passed the filter; {target} were asked"
    METRICS[config.metric](samples, config, d, rows, min(target, len(rows)))
    if not d.clusters:
        d.clusters = cluster_table(samples.clusters, np.flatnonzero(samples.valid), d.keep,
                                   config.neighbors)  # fmt: skip
    return d
