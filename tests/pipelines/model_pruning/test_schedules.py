"""Level targets against their formulas, and a gradual run that meets every one of them."""

import json

import pytest

from pipelines.model_pruning.schedules import level_steps, targets
from tests.pipelines.model_pruning.runs import prune_config, run_prune
from tests.pipelines.model_pruning.test_methods import TOTAL


def _zhu_gupta(final: float, n: int) -> list[float]:
    """s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3 with s_i = 0, t0 = 0, dt = 1."""
    return [final + (0.0 - final) * (1 - t / n) ** 3 for t in range(1, n + 1)]


def test_gradual_targets_follow_the_cubic_formula(data, tmp_path):
    config = prune_config(data, tmp_path, schedule="gradual", levels=10, sparsity=0.9, steps=25)
    assert targets(config, 0.9) == pytest.approx(_zhu_gupta(0.9, 10), abs=1e-15)
    published = [0.244, 0.439, 0.591, 0.706, 0.787, 0.842, 0.876, 0.893, 0.899, 0.9]
    assert [round(t, 3) for t in targets(config, 0.9)] == published  # ALGORITHMS.md's example
    assert level_steps(config, 10) == [3] * 5 + [2] * 5  # 25 steps, the first 25 % 10 get one more


def test_imp_targets_prune_the_rate_of_the_remaining(data, tmp_path):
    by_rate = prune_config(data, tmp_path, schedule="imp", sparsity=0.5)
    assert targets(by_rate, 0.5) == pytest.approx([0.2, 0.36, 0.488, 0.5])  # last one at s
    assert level_steps(by_rate, 4) == [6] * 4  # every level retrains
    by_levels = prune_config(data, tmp_path, schedule="imp", sparsity=0.875, levels=3)
    assert targets(by_levels, 0.875) == pytest.approx([0.5, 0.75, 0.875])  # (1 - s)^(1/3) = 0.5


def test_a_gradual_run_reaches_every_target_exactly(data, tmp_path):
    summary = run_prune(data, tmp_path / "out", schedule="gradual", levels=3, sparsity=0.8)
    reached = [level["sparsity"] for level in summary["level_metrics"]]
    assert reached == [0.0, *(round(t * TOTAL) / TOTAL for t in _zhu_gupta(0.8, 3))]
    assert [level["steps"] for level in summary["level_metrics"]] == [0, 2, 2, 2]
    for level in (1, 2, 3):
        report = json.loads((tmp_path / "out/_run" / f"level_{level}/sparsity_report.json")
                            .read_text())  # fmt: skip
        assert report["total"] - report["unpruned"] == round(reached[level] * TOTAL)
