"""Per-cluster keep quotas from cluster weights (DBP, Abbas et al. ICLR 2024).

ALGORITHMS.md, DBP step 5: the quotas ``x`` minimise ``||x - M*P||^2`` subject to
``sum x = M`` and ``lb_j <= x_j <= |C_j|``. The real-valued optimum is
``x_j = clip(M*P_j - lambda, lb_j, |C_j|)`` (the KKT conditions of this projection), with the
scalar ``lambda`` found by bisection; the integer quotas round it by largest remainders.
"""

from __future__ import annotations

import numpy as np

from metrics._common import robust_floor

# Bisection stops once the bracket on lambda is this many float64 ulps of the problem's scale
# wide: about 55 halvings from the initial bracket, whatever the inputs.
_LAMBDA_TOL_ULPS = 8


class QuotaError(ValueError):
    """The requested quotas are infeasible or the inputs are malformed."""


def quotas(
    weights: np.ndarray, sizes: np.ndarray, total: int, lower: np.ndarray | int = 0
) -> np.ndarray:
    """Integer quotas nearest ``total * weights`` within ``[lb_j, sizes_j]``, summing to ``total``.

    ``weights`` (k,) are non-negative (normally the softmax weights, not renormalised here),
    ``sizes`` (k,) the cluster sizes, ``lower`` a per-cluster or scalar minimum;
    ``lb_j = min(lower_j, sizes_j)``. The real optimum (see the module docstring) is rounded by
    largest remainders: every quota is the floor of its real value, and the clusters with the
    largest fractional parts (ties: ascending cluster index) get one more until the sum is
    exactly ``total``. Each integer quota is therefore within 1 of the real optimum and within
    its bounds. Returns int64 (k,); raises ``QuotaError`` when no solution exists.
    """
    p, upper, lb, total = _validate(weights, sizes, total, lower)
    if len(p) == 0:
        return np.zeros(0, dtype=np.int64)
    x = _real_quotas(total * p, lb, upper, total)
    return round_largest_remainders(x, upper, total)


def balance_lower_bounds(sizes: np.ndarray, total: int, balance: float) -> np.ndarray:
    """Per-cluster minimum quotas from a balance ratio (curate's definition).

    ``lb_j = min(|C_j|, floor(balance * total / k))``: ``balance = 0`` gives no minimum (the
    DBP paper's best setting); ``balance = 1`` asks for an equal share of ``total`` in every
    cluster that is large enough, so the weights only place what small clusters cannot hold.
    ``sum(lb) <= balance * total``, so the bounds never make ``quotas`` infeasible. Returns int64.
    """
    if not 0.0 <= balance <= 1.0:
        raise ValueError(f"balance must lie in [0, 1], got {balance}")
    sizes = np.asarray(sizes, dtype=np.int64)
    if len(sizes) == 0:
        return np.zeros(0, dtype=np.int64)
    share = robust_floor(balance * total / len(sizes))
    return np.minimum(sizes, share)


def _validate(
    weights: np.ndarray, sizes: np.ndarray, total: int, lower: np.ndarray | int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    p = np.asarray(weights, dtype=np.float64)
    upper = np.asarray(sizes)
    if p.ndim != 1 or p.shape != upper.shape:
        raise QuotaError(f"weights {p.shape} and sizes {upper.shape} must both be (k,)")
    if not np.isfinite(p).all() or (p < 0).any():
        raise QuotaError("weights must be finite and non-negative")
    if (upper < 0).any() or (upper != np.round(upper)).any():
        raise QuotaError("sizes must be non-negative integers")
    upper = upper.astype(np.int64)
    try:
        lower = np.broadcast_to(np.asarray(lower), upper.shape)
    except ValueError:
        raise QuotaError(f"lower {np.shape(lower)} must be a scalar or match sizes") from None
    if (lower < 0).any():
        raise QuotaError("lower bounds must be non-negative")
    lb = np.minimum(lower.astype(np.int64), upper)
    if total != int(total):
        raise QuotaError(f"total must be an integer, got {total}")
    total = int(total)
    if total < 0:
        raise QuotaError(f"total must be >= 0, got {total}")
    if total > upper.sum():
        raise QuotaError(
            f"total {total} exceeds the upper bound: the clusters hold only {upper.sum()} samples"
        )
    if total < lb.sum():
        raise QuotaError(
            f"total {total} is below the lower bound: the per-cluster minima sum to {lb.sum()}"
        )
    return p, upper, lb, total


def _real_quotas(target: np.ndarray, lb: np.ndarray, upper: np.ndarray, total: int) -> np.ndarray:
    """``clip(target - lambda, lb, upper)`` with ``lambda`` bisected so that it sums to ``total``.

    The sum is non-increasing in lambda; it equals ``sum(upper) >= total`` at
    ``lo = min(target - upper)`` and ``sum(lb) <= total`` at ``hi = max(target - lb)``.
    Bisection runs until the bracket is ``_LAMBDA_TOL_ULPS`` ulps of the scale wide (about 55
    iterations); lambda is then solved exactly on the clusters strictly inside their bounds, so
    that a large ``total`` over many clusters cannot accumulate the bracket's width.
    """
    lo = float((target - upper).min())
    hi = float((target - lb).max())
    scale = max(1.0, float(np.abs(target).max()), float(upper.max()))
    tol = _LAMBDA_TOL_ULPS * np.finfo(np.float64).eps * scale
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if np.clip(target - mid, lb, upper).sum() > total:
            lo = mid
        else:
            hi = mid
    x = np.clip(target - 0.5 * (lo + hi), lb, upper)
    free = (x > lb) & (x < upper)
    if free.any():  # final exact step on the free set: the sum is then total up to rounding
        lam = (target[free].sum() - (total - x[~free].sum())) / free.sum()
        x[free] = np.clip(target[free] - lam, lb[free], upper[free])
    return x


def round_largest_remainders(x: np.ndarray, upper: np.ndarray, total: int) -> np.ndarray:
    """Floor every quota, then add one to the largest fractional parts until the sum is ``total``.

    A quota already at its upper bound has no fractional part and is never raised. Bounds are
    integers, so the floors stay at or above the lower bounds.
    """
    base = np.floor(x).astype(np.int64)
    frac = np.where(base < upper, x - base, -1.0)
    short = total - int(base.sum())
    order = np.lexsort((np.arange(len(x)), -frac))  # largest remainder first, ties by index
    base[order[:short]] += 1
    return base
