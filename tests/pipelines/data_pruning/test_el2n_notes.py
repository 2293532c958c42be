"""What the EL2N probes measured reaches summary.json, with a warning when they are near
chance; the measurement itself (`_measure`) on probes that learned and probes that did not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metrics.el2n import train_probes
from pipelines.data_pruning.el2n import _measure
from pipelines.data_pruning.summary import _probe_notes


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def separable(n: int = 400, classes: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = np.eye(classes, 16)[y] + 0.1 * rng.standard_normal((n, 16))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), y


def test_probes_that_learned_are_not_flagged():
    x, y = separable()
    probes = train_probes(x[40:], y[40:], 4, models=2, steps=200)
    record = _measure(probes, x, y, held=40, classes=4)
    assert record["held_back_accuracy"] > 0.9 and not record["near_chance"]
    counts = (record["train_samples"], record["held_back_samples"], record["chance"])
    assert counts == (360, 40, 0.25)
    quantiles = list(record["score_quantiles"].values())
    assert quantiles == sorted(quantiles) and quantiles[-1] <= np.sqrt(2)
    notes: dict = {"el2n": {"models": 2}}
    _probe_notes(notes, {**record, "classes": [0, 1, 2, 3]})
    assert notes["el2n"]["models"] == 2 and "warning" not in notes["el2n"]
    assert notes["el2n"]["probes"]["held_back_accuracy"] == record["held_back_accuracy"]


def test_probes_near_chance_are_warned_about():
    x, y = separable()
    untrained = train_probes(x[40:], y[40:], 4, models=1, steps=0)
    record = _measure(untrained, x, np.roll(y, 1), held=40, classes=4)
    assert record["near_chance"]
    notes: dict = {}
    _probe_notes(notes, {**record, "classes": [0, 1, 2, 3]})
    assert notes["el2n"]["warning"].startswith(
        "the EL2N probes are near chance: held-back accuracy"
    )
    assert "4 classes (chance 0.250)" in notes["el2n"]["warning"]
