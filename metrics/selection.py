"""Selection rules shared by the criteria: how many to keep, each class's share of them, and a
uniform draw."""

from __future__ import annotations

import numpy as np


def kept_count(valid: int, rate: float) -> int:
    """round((1 - rate) * valid), Python's round (exact halves go to the even integer)."""
    return round((1.0 - rate) * valid)


def proportional_quotas(counts: np.ndarray, total: int) -> np.ndarray:
    """Integer shares of `total` proportional to `counts`, summing to `total`: every share is
    the floor of `total * count / sum(counts)`, then the largest remainders (ties: the smaller
    index) get one more. Exact integer arithmetic; no share exceeds its count."""
    counts = [int(c) for c in np.asarray(counts).tolist()]
    whole = sum(counts)
    if not 0 <= total <= whole:
        raise ValueError(f"total {total} must lie in [0, {whole}]")
    if whole == 0:
        return np.zeros(len(counts), dtype=np.int64)
    shares = [total * c // whole for c in counts]
    remainders = [total * c % whole for c in counts]
    order = sorted(range(len(counts)), key=lambda i: (-remainders[i], i))
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return np.array(shares, dtype=np.int64)


def random_keep(n: int, keep: int, seed: int) -> np.ndarray:
    """Mask of `keep` of `n` positions drawn uniformly without replacement."""
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).choice(n, keep, replace=False)] = True
    return mask
