"""The selection rules of curate 0.1.0, in memory over every sample at once: the reference the
streamed selection must match decision for decision.

Copied from the 0.1.0 criteria (`decide`, `criteria/*`, `cluster_table`, `metrics.selection`,
`metrics.ccs`), with two rules replaced where no streaming algorithm can reproduce them: the
random draw and CCS's draw within a stratum (a global permutation each) become the seeded hash
rank (`draw="hash"`, the new rule, written here plainly: keep the smallest hash, ties by id);
`draw="rng"` keeps 0.1.0's. `per_class` applies a rule to each class with its share of the
target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from metrics._common import robust_floor
from metrics.complexity import (
    cluster_complexity,
    complexity_weights,
    inter_cluster_distance,
    intra_cluster_distance,
)
from metrics.quotas import balance_lower_bounds, quotas
from metrics.selection import kept_count, proportional_quotas
from metrics.topk import hash_rank
from pipelines.data_pruning.criteria import reason_table


@dataclass
class Columns:
    """Every sample's columns, in input order."""

    ids: np.ndarray
    valid: np.ndarray
    heldout: np.ndarray
    label: np.ndarray
    cluster: np.ndarray
    distance: np.ndarray
    centroids: np.ndarray
    dbp_cluster: np.ndarray
    dbp_distance: np.ndarray
    dbp_centroids: np.ndarray
    similarity: np.ndarray
    nearest_key: np.ndarray
    el2n: np.ndarray
    clip_score: np.ndarray

    @property
    def candidates(self) -> np.ndarray:
        return np.flatnonzero(self.valid & ~self.heldout)


@dataclass
class Result:
    keep: np.ndarray
    reason: np.ndarray
    score: np.ndarray
    detail: np.ndarray
    notes: dict = field(default_factory=dict)
    clusters: list = field(default_factory=list)

    def mark(self, rows, reason):
        self.reason[rows] = reason

    def settle(self, rows, keep, kept, pruned):
        self.keep[rows[keep]] = True
        self.mark(rows[keep], kept)
        self.mark(rows[~keep], pruned)


def rank_keep(scores, ids, keep, highest):
    """Mask of the `keep` highest (or lowest) scores; ties go to the smaller id."""
    order = np.lexsort((ids, -scores if highest else scores))
    mask = np.zeros(len(scores), dtype=bool)
    mask[order[:keep]] = True
    return mask


def draw_keep(ids, keep, seed, draw):
    """`keep` of the rows uniformly: 0.1.0's rng.choice, or the smallest hash ranks."""
    mask = np.zeros(len(ids), dtype=bool)
    if draw == "rng":
        mask[np.random.default_rng(seed).choice(len(ids), keep, replace=False)] = True
    else:
        mask[np.lexsort((ids, hash_rank(ids, seed)))[:keep]] = True
    return mask


def _number(value):
    return None if not np.isfinite(value) else round(float(value), 6)


def cluster_table(centroids, cluster, distance, rows, keep, neighbors):
    k = len(centroids)
    c = cluster[rows]
    d_intra, sizes = intra_cluster_distance(c, distance[rows], k)
    d_inter = inter_cluster_distance(centroids, neighbors)
    complexity = cluster_complexity(d_intra, d_inter, sizes)
    kept = np.bincount(c[keep[rows]], minlength=k)
    return [
        {"cluster": j, "size": int(sizes[j]), "d_intra": _number(d_intra[j]),
         "d_inter": _number(d_inter[j]), "complexity": _number(complexity[j]),
         "kept": int(kept[j])}
        for j in range(k)
    ]  # fmt: skip


# The filter


def clip_filter(s: Columns, cfg, r: Result, rows):
    kind, value = cfg.filter.split(":")
    threshold = float(value)
    scores = s.clip_score[rows]
    captioned = ~np.isnan(scores)
    if kind == "clip-score-top":
        top = rank_keep(np.where(captioned, scores, -np.inf), s.ids[rows],
                        round(threshold * len(rows)), highest=True)  # fmt: skip
        passed = top & captioned
        threshold = float(scores[passed].min()) if passed.any() else math.inf
    else:
        passed = captioned & (scores >= threshold)
    below = rows[captioned & ~passed]
    r.mark(rows[~captioned], "no_caption")
    r.mark(below, "below_clip_threshold")
    r.detail[below] = [f"clip score {v:.4f} < {threshold:.4f}" for v in s.clip_score[below]]
    r.notes["filter"] = {"filter": cfg.filter, "threshold": threshold,
                         "passed": int(passed.sum()), "candidates": len(rows)}  # fmt: skip
    return rows[passed]


# The criteria: (columns, config, result, rows, target)


def prototypicality(s, cfg, r, rows, target, draw):
    hard = cfg.keep == "hard"
    r.score = s.distance.copy()
    chosen = rank_keep(r.score[rows], s.ids[rows], target, highest=hard)
    r.settle(rows, chosen, *(("hardest", "too_easy") if hard else ("easiest", "too_hard")))
    r.notes["direction"] = f"kept the {'hardest' if hard else 'easiest'} (--keep {cfg.keep})"


def random(s, cfg, r, rows, target, draw):
    r.score = s.distance.copy()
    r.settle(rows, draw_keep(s.ids[rows], target, cfg.seed, draw), "random_draw", "random_draw")


def explain_duplicates(s, r, rows):
    words = [f"similarity {v:.4f}" for v in s.similarity[rows]]
    r.detail[rows] = [w if k is None else f"duplicate of {k} ({w})"
                      for k, w in zip(s.nearest_key[rows], words, strict=True)]  # fmt: skip


def semdedup(s, cfg, r, rows, target, draw):
    r.score = s.similarity.copy()
    order = rows[np.lexsort((-s.ids[rows], -r.score[rows]))]  # most similar first
    order = order[np.isfinite(r.score[order])]
    if cfg.eps is not None:
        order = order[r.score[order].astype(np.float64) > 1.0 - cfg.eps]
    pruned = order[: len(rows) - target]
    keep = ~np.isin(rows, pruned)
    r.settle(rows, keep, "distinct", "duplicate")
    explain_duplicates(s, r, np.sort(pruned))
    kept_scores = r.score[rows[keep]]
    threshold = float(kept_scores.max()) if len(kept_scores) else None
    r.notes["semdedup"] = {
        "eps": cfg.eps,
        "similarity_threshold": threshold,
        "effective_eps": None if threshold is None else 1.0 - threshold,
        "duplicates_pruned": len(pruned),
    }


def dbp(s, cfg, r, rows, target, draw):
    eps = 0.07 if cfg.eps is None else cfg.eps
    similarity = s.similarity[rows]
    duplicate, rest = rows[similarity > 1.0 - eps], rows[similarity <= 1.0 - eps]
    r.mark(duplicate, "duplicate")
    explain_duplicates(s, r, duplicate)
    r.score = s.dbp_distance.copy()
    total = min(target, len(rest))
    if total < target:
        r.notes["short"] = f"SemDeDup at eps {eps} left {len(rest)} samples; {target} were asked"
    k = len(s.dbp_centroids)
    d_intra, sizes = intra_cluster_distance(s.dbp_cluster[rest], s.dbp_distance[rest], k)
    d_inter = inter_cluster_distance(s.dbp_centroids, cfg.neighbors)
    weights = complexity_weights(cluster_complexity(d_intra, d_inter, sizes), cfg.tau)
    quota = quotas(weights, sizes, total, balance_lower_bounds(sizes, total, cfg.balance))
    cluster = s.dbp_cluster[rest]
    order = np.lexsort((-s.dbp_distance[rest], cluster))
    keep = np.zeros(len(rest), dtype=bool)
    counts = np.bincount(cluster, minlength=k)
    for start, count in zip(np.cumsum(counts) - counts, quota, strict=True):
        keep[order[start : start + count]] = True
    r.settle(rest, keep, "hardest_in_cluster", "over_cluster_quota")
    pruned = rest[~keep]
    r.detail[pruned] = [f"cluster {j}: quota {quota[j]} of {sizes[j]}"
                        for j in s.dbp_cluster[pruned]]  # fmt: skip
    r.clusters = cluster_table(s.dbp_centroids, s.dbp_cluster, s.dbp_distance, rest, r.keep,
                               cfg.neighbors)  # fmt: skip
    for row, w, q in zip(r.clusters, weights, quota, strict=True):
        row.update(weight=float(w), quota=int(q))
    r.notes["dbp"] = {"eps": eps, "duplicates": len(duplicate), "tau": cfg.tau,
                      "neighbors": cfg.neighbors, "balance": cfg.balance}  # fmt: skip


def drop_unscored(r, rows):
    unscored = np.isnan(r.score[rows])
    r.mark(rows[unscored], "no_label")
    return rows[~unscored]


def el2n(s, cfg, r, rows, target, draw):
    r.score = s.el2n.copy()
    rows = drop_unscored(r, rows)
    order = rows[np.lexsort((s.ids[rows], -r.score[rows]))]
    offset = math.floor(cfg.el2n_offset * len(order) + 1e-9)
    r.mark(order[:offset], "hardest_offset")
    r.detail[order[:offset]] = f"among the hardest {cfg.el2n_offset:.0%} (--el2n-offset)"
    rest = order[offset:]
    r.settle(rest, np.arange(len(rest)) < target, "hardest", "too_easy")
    r.notes["el2n"] = {"models": cfg.el2n_models, "steps": cfg.el2n_steps,
                       "probe": f"MLP, {cfg.el2n_hidden} hidden" if cfg.el2n_hidden else "linear",
                       "offset": cfg.el2n_offset}  # fmt: skip


def ccs(s, cfg, r, rows, target, draw, strata=50):
    r.score = (s.el2n if cfg.ccs_score == "el2n" else s.distance).copy()
    rows = drop_unscored(r, rows)
    cutoff = cfg.ccs_cutoff
    if cutoff is None:
        cutoff = next((c for t, c in ((0.9, 0.3), (0.8, 0.2), (0.7, 0.1)) if cfg.rate >= t), 0.0)
    scores, ids, n = r.score[rows], s.ids[rows], len(rows)
    cut = np.zeros(n, dtype=bool)
    cut[np.lexsort((ids, -scores))[: robust_floor(cutoff * n)]] = True
    if not 0 <= target <= n - cut.sum():
        raise ValueError(f"budget {target} must be an integer in [0, {n - cut.sum()}]")
    stratum = np.full(n, -1, dtype=np.int64)
    rest = scores[~cut]
    edges = np.zeros(strata + 1)
    if len(rest):
        low = rest.min()
        step = (rest.max() - low) / strata
        edges = low + np.arange(strata + 1) * step
        stratum[~cut] = (np.minimum(np.floor((rest - low) / step), strata - 1).astype(np.int64)
                         if step > 0 else 0)  # fmt: skip
    sizes = np.bincount(stratum[~cut], minlength=strata).astype(np.int64)
    budgets = np.zeros(strata, dtype=np.int64)
    remaining = target
    for visited, j in enumerate(np.argsort(sizes, kind="stable")):
        budgets[j] = min(int(sizes[j]), remaining // (strata - visited))
        remaining -= budgets[j]
    keep = np.zeros(n, dtype=bool)
    rng = np.random.default_rng(cfg.seed)
    by_stratum = np.lexsort((ids, stratum))
    bounds = np.cumsum(np.bincount(stratum + 1, minlength=strata + 1))
    for j, take in enumerate(budgets):
        members = by_stratum[bounds[j] : bounds[j + 1]]
        if draw == "rng":
            keep[rng.permutation(members)[:take]] = True
        else:
            keep[members[draw_keep(ids[members], take, cfg.seed, draw)]] = True
    r.settle(rows, keep, "stratum_sample", "stratum_budget")
    r.mark(rows[cut], "hardest_cutoff")
    for j in np.flatnonzero(sizes):
        members = rows[(stratum == j) & ~keep]
        r.detail[members] = (f"stratum {j} [{edges[j]:.4f}, {edges[j + 1]:.4f}]: "
                             f"{budgets[j]} of {sizes[j]} kept")  # fmt: skip
    r.notes["ccs"] = {"score": cfg.ccs_score, "cutoff": cutoff, "cut": int(cut.sum()),
                      "strata": strata, "budgets": budgets.tolist(),
                      "stratum_sizes": sizes.tolist()}  # fmt: skip


RULES = {f.__name__: f for f in (prototypicality, random, semdedup, dbp, el2n, ccs)}


def decide(s: Columns, cfg, draw: str = "hash") -> Result:
    """0.1.0's `decide` (with `draw` for the random draws); with `cfg.per_class`, the rule of
    each class on its rows with its proportional share of the target (the notes are then the
    last class's)."""
    n = len(s.ids)
    r = Result(np.zeros(n, bool), np.array(reason_table()[:1] * n, dtype=object),
               np.full(n, np.nan), np.full(n, None, dtype=object))  # fmt: skip
    r.mark(np.flatnonzero(s.heldout), "heldout")
    rows = s.candidates
    target = kept_count(len(rows), cfg.rate)
    if cfg.filter is not None:
        rows = clip_filter(s, cfg, r, rows)
    if target > len(rows):
        r.notes["short"] = f"only {len(rows)} samples passed the filter; {target} were asked"
    total = min(target, len(rows))
    if cfg.per_class:
        RULES[cfg.metric](s, cfg, r, rows[:0], 0, draw)  # the score column, with no class at all
        classes = np.unique(s.label[rows])
        counts = [int((s.label[rows] == c).sum()) for c in classes]
        for c, share in zip(classes, proportional_quotas(counts, total), strict=True):
            RULES[cfg.metric](s, cfg, r, rows[s.label[rows] == c], int(share), draw)
    else:
        RULES[cfg.metric](s, cfg, r, rows, total, draw)
    if not r.clusters:
        r.clusters = cluster_table(s.centroids, s.cluster, s.distance, s.candidates, r.keep,
                                   cfg.neighbors)  # fmt: skip
    return r
