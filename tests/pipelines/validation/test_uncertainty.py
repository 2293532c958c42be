"""Bootstrap intervals: they cover the truth about 95% of the time, widen with seed spread,
and a paired difference is established only when it is real."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.validation.uncertainty import accuracy_interval, difference_interval


def answers(rng, p: float, seeds: int = 1, n: int = 400) -> np.ndarray:
    return rng.random((seeds, n)) < p


def test_the_interval_covers_the_true_accuracy_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    covered = []
    for trial in range(200):
        result = accuracy_interval(answers(rng, 0.7), draws=500, seed=trial)
        covered.append(result["low"] <= 0.7 <= result["high"])
    assert 0.90 <= np.mean(covered) <= 0.99


def test_the_mean_is_over_seeds_and_seed_spread_widens_the_interval():
    rng = np.random.default_rng(1)
    base = answers(rng, 0.6, n=500)[0]
    same = np.stack([base, base, base])
    spread = np.stack([base, rng.random(500) < 0.3, rng.random(500) < 0.9])
    a, b = accuracy_interval(same), accuracy_interval(spread)
    assert a["per_seed"] == [pytest.approx(base.mean())] * 3
    assert b["mean"] == pytest.approx(np.mean(b["per_seed"]))
    assert (b["high"] - b["low"]) > 2 * (a["high"] - a["low"])


def test_a_real_difference_is_established_and_no_difference_is_not():
    rng = np.random.default_rng(2)
    better, worse = answers(rng, 0.8, seeds=2), answers(rng, 0.6, seeds=2)
    found = difference_interval(better, worse)
    assert found["established"] and found["low"] > 0
    assert found["difference"] == pytest.approx(better.mean() - worse.mean())
    again = difference_interval(worse, better)
    assert again["established"] and again["high"] < 0
    twin = difference_interval(better, better.copy())
    assert not twin["established"] and twin["low"] <= 0 <= twin["high"]


def test_pairing_on_the_test_samples_narrows_the_difference():
    """Two models that fail on mostly the same hard samples: the paired interval is far
    narrower than the two separate intervals suggest."""
    rng = np.random.default_rng(3)
    hard = rng.random(600) < 0.3
    a = (~hard & (rng.random(600) < 0.98))[None, :]
    b = (~hard & (rng.random(600) < 0.93))[None, :]
    paired = difference_interval(a, b)
    separate = accuracy_interval(a)["high"] - accuracy_interval(a)["low"]
    assert paired["high"] - paired["low"] < separate
    assert paired["established"]


def test_same_seed_same_interval_and_bad_shapes_are_refused():
    rng = np.random.default_rng(4)
    x = answers(rng, 0.5, seeds=3)
    assert accuracy_interval(x, seed=7) == accuracy_interval(x, seed=7)
    with pytest.raises(ValueError, match="seeds, test samples"):
        accuracy_interval(np.zeros(5))
    with pytest.raises(ValueError, match="different test sets"):
        difference_interval(x, x[:, :10])
