"""Selection rules shared by the criteria: how many to keep, and which by rank or at random."""

from __future__ import annotations

import numpy as np


def kept_count(valid: int, rate: float) -> int:
    """round((1 - rate) * valid), Python's round (exact halves go to the even integer)."""
    return round((1.0 - rate) * valid)


def rank_keep(scores: np.ndarray, ids: np.ndarray, keep: int, highest: bool) -> np.ndarray:
    """Mask of the `keep` highest (or lowest) scores; ties go to the smaller id."""
    order = np.lexsort((ids, -scores if highest else scores))
    mask = np.zeros(len(scores), dtype=bool)
    mask[order[:keep]] = True
    return mask


def random_keep(n: int, keep: int, seed: int) -> np.ndarray:
    """Mask of `keep` of `n` positions drawn uniformly without replacement."""
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).choice(n, keep, replace=False)] = True
    return mask
