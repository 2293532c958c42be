"""Training at matched compute, seeded reproducibility and the held-out split, on synthetic
data (no run directory needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from pipelines.training import batch_schedule
from pipelines.validation.config import ValidationConfig
from pipelines.validation.data import LabelledData, heldout_mask
from pipelines.validation.train import accuracy, train_model


def blobs(n: int = 400, classes: int = 4, dim: int = 16, seed: int = 0) -> LabelledData:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centres = rng.normal(0, 1, (classes, dim)) * 3
    x = centres[labels] + rng.normal(0, 1, (n, dim))
    train = ~heldout_mask(np.arange(n, dtype=np.int64), 0.25)
    return LabelledData(
        torch.tensor(x, dtype=torch.float32), torch.tensor(labels), np.arange(n), train, classes
    )


def tiny_images(n: int = 48, size: int = 8) -> LabelledData:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, n)
    images = rng.integers(0, 80, (n, 3, size, size)) + 150 * labels[:, None, None, None]
    train = np.arange(n) % 4 != 0
    return LabelledData(
        torch.tensor(images, dtype=torch.uint8), torch.tensor(labels), np.arange(n), train, 2
    )


CONFIG = ValidationConfig(steps=60, batch_size=32, lr=1e-2)  # short runs need a larger rate


@pytest.mark.parametrize("size", [5, 32, 100, 1000])
def test_every_subset_gets_the_same_steps_and_batch(size):
    schedule = batch_schedule(np.arange(size), steps=50, batch_size=32, seed=0)
    assert schedule.shape == (50, 32)
    counts = np.bincount(schedule.ravel(), minlength=size)
    if size <= 50 * 32:  # every sample is visited, each as often as the others (within one)
        assert counts.min() >= 1 and counts.max() - counts.min() <= 1


def _count_steps():
    counted = []
    handle = register_optimizer_step_post_hook(lambda *args: counted.append(1))
    return counted, handle


def test_matched_compute_counts_optimiser_steps_whatever_the_subset():
    data = blobs()
    for subset in (data.train_indices, data.train_indices[:10]):
        counted, handle = _count_steps()
        try:
            train_model(data, subset, CONFIG, steps=37, seed=0)
        finally:
            handle.remove()
        assert len(counted) == 37


def test_same_seed_same_model_and_other_seed_differs():
    data = blobs()
    first = train_model(data, data.train_indices, CONFIG, 40, seed=3)
    again = train_model(data, data.train_indices, CONFIG, 40, seed=3)
    other = train_model(data, data.train_indices, CONFIG, 40, seed=4)
    for name, value in first.state_dict().items():
        assert torch.equal(value, again.state_dict()[name])
    assert not torch.equal(first.state_dict()["1.weight"], other.state_dict()["1.weight"])


def test_probe_learns_separable_data():
    data = blobs()
    model = train_model(data, data.train_indices, CONFIG, 100, seed=0)
    assert accuracy(model, data, data.test_indices) > 0.9


def test_student_with_alpha_one_follows_the_teacher_not_the_labels():
    data = blobs()
    teacher = train_model(data, data.train_indices, CONFIG, 100, seed=0)
    data.labels = torch.zeros_like(data.labels)  # labels now useless
    student = train_model(data, data.train_indices, CONFIG, 100, seed=1, teacher=teacher, alpha=1.0)
    test = torch.from_numpy(data.test_indices)
    agree = student(data.inputs[test]).argmax(1) == teacher(data.inputs[test]).argmax(1)
    assert agree.float().mean() > 0.9


def test_small_cnn_trains_reproducibly_on_images():
    data = tiny_images()
    config = ValidationConfig(on="images", steps=4, batch_size=8)
    a = train_model(data, data.train_indices, config, 4, seed=0)
    b = train_model(data, data.train_indices, config, 4, seed=0)
    x = data.inputs[:6]
    assert torch.equal(a(x), b(x))
    assert a(x).shape == (6, 2)


def test_heldout_split_is_a_stable_hash_of_the_id():
    ids = np.arange(20000, dtype=np.int64) * 7919
    mask = heldout_mask(ids, 0.2)
    assert 0.18 < mask.mean() < 0.22
    assert np.array_equal(heldout_mask(ids[::3], 0.2), mask[::3])  # independent of neighbours
    assert np.array_equal(mask, heldout_mask(ids, 0.2))


def test_default_steps_follow_the_full_split_and_have_a_floor():
    assert ValidationConfig(epochs=10, batch_size=100).total_steps(10_000) == 1000
    assert ValidationConfig().total_steps(50) == 200
    assert ValidationConfig(steps=7).total_steps(10_000) == 7
