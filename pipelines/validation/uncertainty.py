"""95% intervals for test accuracies and their differences, by bootstrap.

An arm's result is a (seeds, test samples) matrix of correct answers. Each bootstrap draw
resamples the test samples (with replacement) and, independently, the arm's seeds, so the
interval covers the choice of test set, of training seed and, for random arms (a new draw per
seed), of the subset. A difference between two arms is paired: both see the same resampled test
set in each draw (they were tested on the same samples), each resamples its own seeds. A
difference is *established* when its interval excludes 0 (docs/validation.md).
"""

from __future__ import annotations

import numpy as np

DRAWS = 2000
CHUNK = 250  # draws at a time: a (CHUNK, test samples) weight matrix
LEVEL = 0.95


def _check(correct: np.ndarray) -> np.ndarray:
    correct = np.asarray(correct, dtype=np.float64)
    if correct.ndim != 2 or correct.shape[0] == 0 or correct.shape[1] == 0:
        raise ValueError(f"expected a (seeds, test samples) matrix, got shape {correct.shape}")
    return correct


def _seed_weights(rng: np.random.Generator, seeds: int, draws: int) -> np.ndarray:
    """(draws, seeds): how often each seed is drawn, as a share."""
    return rng.multinomial(seeds, np.full(seeds, 1.0 / seeds), size=draws) / seeds


def _bootstrap(arms: list[np.ndarray], signs: list[float], draws: int, seed: int) -> np.ndarray:
    """`draws` values of sum_k signs[k] * accuracy(arms[k]), test samples shared by the arms."""
    rng = np.random.default_rng(seed)
    n = arms[0].shape[1]
    values = []
    for start in range(0, draws, CHUNK):
        count = min(CHUNK, draws - start)
        test = rng.multinomial(n, np.full(n, 1.0 / n), size=count)  # (count, n)
        mixed = sum(
            sign * _seed_weights(rng, len(arm), count) @ arm
            for arm, sign in zip(arms, signs, strict=True)
        )
        values.append((mixed * test).sum(axis=1) / n)
    return np.concatenate(values)


def _interval(values: np.ndarray) -> tuple[float, float]:
    low, high = np.quantile(values, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return float(low), float(high)


def accuracy_interval(correct: np.ndarray, draws: int = DRAWS, seed: int = 0) -> dict:
    """Mean accuracy over seeds and its 95% interval; `per_seed` accuracies."""
    correct = _check(correct)
    low, high = _interval(_bootstrap([correct], [1.0], draws, seed))
    per_seed = correct.mean(axis=1)
    return {"mean": float(per_seed.mean()), "low": low, "high": high,
            "per_seed": [float(v) for v in per_seed]}  # fmt: skip


def difference_interval(a: np.ndarray, b: np.ndarray, draws: int = DRAWS, seed: int = 0) -> dict:
    """accuracy(a) - accuracy(b), paired over the test samples, with its 95% interval and
    whether it is established (the interval excludes 0)."""
    a, b = _check(a), _check(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"arms tested on different test sets ({a.shape[1]} vs {b.shape[1]})")
    low, high = _interval(_bootstrap([a, b], [1.0, -1.0], draws, seed))
    return {"difference": float(a.mean() - b.mean()), "low": low, "high": high,
            "established": bool(low > 0 or high < 0)}  # fmt: skip
