"""Coverage-centric coreset selection, CCS (Zheng et al. ICLR 2023).

ALGORITHMS.md, CCS: drop the hardest ``floor(cutoff * n)`` samples, split the score range of
the rest into equal-width strata, and fill the budget stratum by stratum, smallest stratum first,
each getting ``min(|stratum|, floor(remaining / strata_left))`` (the reference's
``bin_allocate``), sampling uniformly (seeded) within each stratum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metrics._common import robust_floor


@dataclass(frozen=True)
class CCSResult:
    """Selection outcome; per-sample arrays in the input order.

    - ``keep``: bool (n,), selected.
    - ``stratum``: int64 (n,), stratum of each sample; -1 for the cut-off hardest.
    - ``budgets``: int64 (strata,), samples taken from each stratum.
    - ``stratum_sizes``: int64 (strata,), samples in each stratum (after the cut).
    - ``edges``: float64 (strata + 1,), ``min + i * step`` over the remaining scores.
    - ``cut``: bool (n,), dropped as the hardest before stratifying.
    """

    keep: np.ndarray
    stratum: np.ndarray
    budgets: np.ndarray
    stratum_sizes: np.ndarray
    edges: np.ndarray
    cut: np.ndarray

    @property
    def kept(self) -> int:
        """Number of samples kept (``budgets.sum()``)."""
        return int(self.budgets.sum())


def ccs(
    scores: np.ndarray,
    ids: np.ndarray,
    budget: int,
    cutoff: float,
    strata: int = 50,
    seed: int = 0,
) -> CCSResult:
    """Select ``budget`` samples covering the score range (higher score = harder).

    The hardest ``floor(cutoff * n)`` samples are cut first (highest score; ties: ascending id).
    The remaining scores' range ``[min, max]`` is split into ``strata`` equal-width strata, a
    score going to ``min(floor((s - min) / step), strata - 1)`` (all equal: stratum 0). Budgets
    are water-filled smallest stratum first (ties: ascending stratum index), counting every
    stratum, empty ones included, in ``strata_left``; because the empty strata sort first this is
    the reference's ``bin_allocate``. Within each stratum, visited in ascending index, one
    ``np.random.default_rng(seed)`` permutes the members sorted by ascending id and the first
    ``budgets[j]`` are kept.

    The kept total falls short of ``budget`` only when the strata cannot supply it; since
    ``budget <= n - cut`` is required (ValueError otherwise), smallest-first filling always
    reaches it exactly. ``CCSResult.kept`` reports the actual count.
    """
    scores, ids = _validate(scores, ids, strata, cutoff)
    n = len(scores)
    cut = _cut_hardest(scores, ids, robust_floor(cutoff * n))
    if budget != int(budget) or not 0 <= budget <= n - cut.sum():
        raise ValueError(
            f"budget {budget} must be an integer in [0, {n - cut.sum()}] (n={n}, cut={cut.sum()})"
        )
    stratum, edges = _stratify(scores, cut, strata)
    sizes = np.bincount(stratum[~cut], minlength=strata).astype(np.int64)
    budgets = _allocate(int(budget), sizes)
    keep = _sample(stratum, ids, budgets, seed)
    return CCSResult(keep, stratum, budgets, sizes, edges, cut)


def default_cutoff(rate: float) -> float:
    """Hard cut-off fraction for a pruning ``rate`` (curate's rule).

    From the settings the CCS paper reports: about 0.3 at 90% pruning, 0.2 at 80%, lower at
    moderate rates and 0 at low rates. Here: 0.3 for rate >= 0.9, 0.2 for >= 0.8, 0.1 for
    >= 0.7, else 0.0.
    """
    for threshold, cutoff in ((0.9, 0.3), (0.8, 0.2), (0.7, 0.1)):
        if rate >= threshold:
            return cutoff
    return 0.0


def _validate(
    scores: np.ndarray, ids: np.ndarray, strata: int, cutoff: float
) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    ids = np.asarray(ids, dtype=np.int64)
    if scores.ndim != 1 or scores.shape != ids.shape:
        raise ValueError(f"scores {scores.shape} and ids {ids.shape} must both be (n,)")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    if strata < 1:
        raise ValueError(f"strata must be >= 1, got {strata}")
    if not 0.0 <= cutoff <= 1.0:
        raise ValueError(f"cutoff must lie in [0, 1], got {cutoff}")
    return scores, ids


def _cut_hardest(scores: np.ndarray, ids: np.ndarray, count: int) -> np.ndarray:
    """Mask of the ``count`` highest scores, ties by ascending id."""
    cut = np.zeros(len(scores), dtype=bool)
    cut[np.lexsort((ids, -scores))[:count]] = True
    return cut


def _stratify(scores: np.ndarray, cut: np.ndarray, strata: int) -> tuple[np.ndarray, np.ndarray]:
    """Equal-width stratum of each remaining score (-1 for the cut) and the strata edges."""
    stratum = np.full(len(scores), -1, dtype=np.int64)
    rest = scores[~cut]
    if len(rest) == 0:
        return stratum, np.zeros(strata + 1)
    low = rest.min()
    step = (rest.max() - low) / strata
    edges = low + np.arange(strata + 1) * step
    if step > 0:
        stratum[~cut] = np.minimum(np.floor((rest - low) / step), strata - 1).astype(np.int64)
    else:
        stratum[~cut] = 0
    return stratum, edges


def _allocate(budget: int, sizes: np.ndarray) -> np.ndarray:
    """Water-fill ``budget`` over the strata, smallest first (the reference's bin_allocate)."""
    budgets = np.zeros(len(sizes), dtype=np.int64)
    remaining = budget
    for visited, j in enumerate(np.argsort(sizes, kind="stable")):
        take = min(int(sizes[j]), remaining // (len(sizes) - visited))
        budgets[j] = take
        remaining -= take
    return budgets


def _sample(stratum: np.ndarray, ids: np.ndarray, budgets: np.ndarray, seed: int) -> np.ndarray:
    """Keep ``budgets[j]`` members of each stratum, uniformly at random, seeded."""
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(stratum), dtype=bool)
    by_stratum = np.lexsort((ids, stratum))  # the cut (-1) first, then each stratum by id
    sizes = np.bincount(stratum + 1, minlength=len(budgets) + 1)
    bounds = np.cumsum(sizes)
    for j, take in enumerate(budgets):
        members = by_stratum[bounds[j] : bounds[j + 1]]
        keep[rng.permutation(members)[:take]] = True
    return keep
