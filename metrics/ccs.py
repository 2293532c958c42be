"""Coverage-centric coreset selection, CCS (Zheng et al. ICLR 2023): the parts of the rule.

ALGORITHMS.md, CCS: drop the hardest ``floor(cutoff * n)`` samples (highest score; ties: the
smaller id), split the score range ``[min, max]`` of the rest into equal-width strata, and fill
the budget stratum by stratum, smallest stratum first, each getting
``min(|stratum|, floor(remaining / strata_left))`` (the reference's ``bin_allocate``), sampling
uniformly within each stratum. The cut is an exact top-k and the draw within a stratum a seeded
hash rank (`metrics.topk`), so the rule is applied shard by shard; these functions are the
rest of it.
"""

from __future__ import annotations

import numpy as np

from metrics._common import robust_floor

STRATA = 50


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


def cut_count(cutoff: float, n: int) -> int:
    """How many of ``n`` samples the cut-off drops: ``floor(cutoff * n)``, robust to float
    error (0.29 * 100 is 28.999999999999996)."""
    if not 0.0 <= cutoff <= 1.0:
        raise ValueError(f"cutoff must lie in [0, 1], got {cutoff}")
    return robust_floor(cutoff * n)


def check_budget(budget: int, n: int, cut: int) -> None:
    """The budget must fit in what the cut leaves (ValueError otherwise)."""
    if budget != int(budget) or not 0 <= budget <= n - cut:
        raise ValueError(f"budget {budget} must be an integer in [0, {n - cut}] (n={n}, cut={cut})")


def stratum_step(low: float, high: float, strata: int = STRATA) -> float:
    """The width of each of ``strata`` equal strata over ``[low, high]``."""
    return (high - low) / strata


def strata_edges(low: float, step: float, strata: int = STRATA) -> np.ndarray:
    """``low + i * step`` for i in 0..strata (float64)."""
    return low + np.arange(strata + 1) * step


def stratify(scores: np.ndarray, low: float, step: float, strata: int = STRATA) -> np.ndarray:
    """Each score's stratum: ``min(floor((s - low) / step), strata - 1)``, all 0 when every
    score is equal (``step == 0``). Returns int64."""
    scores = np.asarray(scores, dtype=np.float64)
    if step > 0:
        return np.minimum(np.floor((scores - low) / step), strata - 1).astype(np.int64)
    return np.zeros(len(scores), dtype=np.int64)


def allocate(budget: int, sizes: np.ndarray) -> np.ndarray:
    """Water-fill ``budget`` over the strata, smallest first, ties by ascending stratum (the
    reference's bin_allocate). Meets ``budget`` exactly when the strata can supply it."""
    budgets = np.zeros(len(sizes), dtype=np.int64)
    remaining = budget
    for visited, j in enumerate(np.argsort(sizes, kind="stable")):
        take = min(int(sizes[j]), remaining // (len(sizes) - visited))
        budgets[j] = take
        remaining -= take
    return budgets
