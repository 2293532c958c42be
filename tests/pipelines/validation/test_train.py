"""Training one validation model on synthetic data (no run directory): matched compute, seeds,
input statistics from the model's own subset, networks on images, KD from a cached teacher."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from pipelines.training import batch_schedule
from pipelines.validation.config import ValidationConfig
from pipelines.validation.data import ValidationData
from pipelines.validation.teachers import Teacher, _prepare
from pipelines.validation.train import correct_on_test, recipe, train_model


def blobs(pool: int = 300, test: int = 100, classes: int = 4, seed: int = 0) -> ValidationData:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, pool + test)
    centres = rng.normal(0, 1, (classes, 16)) * 3
    x = centres[labels] + rng.normal(0, 1, (pool + test, 16))
    return ValidationData(torch.tensor(x, dtype=torch.float32), torch.tensor(labels),
                          np.arange(pool), classes, "synthetic")  # fmt: skip


def tiny_images(pool: int = 36, test: int = 12, size: int = 8) -> ValidationData:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, pool + test)
    images = rng.integers(0, 80, (pool + test, 3, size, size)) + 150 * labels[:, None, None, None]
    return ValidationData(torch.tensor(images, dtype=torch.uint8), torch.tensor(labels),
                          np.arange(pool), 2, "synthetic")  # fmt: skip


CONFIG = ValidationConfig(steps=60, batch_size=32, lr=1e-2)  # short runs need a larger rate


@pytest.mark.parametrize("size", [5, 32, 100, 1000])
def test_every_subset_gets_the_same_steps_and_batch(size):
    schedule = batch_schedule(np.arange(size), steps=50, batch_size=32, seed=0)
    assert schedule.shape == (50, 32)
    counts = np.bincount(schedule.ravel(), minlength=size)
    if size <= 50 * 32:  # every sample is visited, each as often as the others (within one)
        assert counts.min() >= 1 and counts.max() - counts.min() <= 1


def test_matched_compute_counts_optimiser_steps_whatever_the_subset():
    data = blobs()
    counted = []
    handle = register_optimizer_step_post_hook(lambda *args: counted.append(1))
    try:
        for subset in (data.pool, data.pool[:10]):
            counted.clear()
            train_model(data, subset, CONFIG, steps=37, seed=0)
            assert len(counted) == 37
    finally:
        handle.remove()


def test_same_seed_same_model_and_other_seed_differs():
    data = blobs()
    first = train_model(data, data.pool, CONFIG, 40, seed=3)
    again = train_model(data, data.pool, CONFIG, 40, seed=3)
    other = train_model(data, data.pool, CONFIG, 40, seed=4)
    for name, value in first.state_dict().items():
        assert torch.equal(value, again.state_dict()[name])
    assert not torch.equal(first.state_dict()["1.weight"], other.state_dict()["1.weight"])


def test_probe_learns_separable_data_and_is_tested_on_the_test_rows_only():
    data = blobs()
    model = train_model(data, data.pool, CONFIG, 100, seed=0)
    correct = correct_on_test(model, data, CONFIG)
    assert correct.shape == (100,) and correct.mean() > 0.9


def test_input_statistics_come_from_the_models_own_subset():
    data = blobs()
    data.inputs[:150] += 100.0  # the first half of the pool is far from the rest
    late = data.pool[150:]
    model = train_model(data, late, CONFIG, 1, seed=0)
    assert torch.allclose(model[0].mean, data.inputs[late].mean(0), atol=1e-4)
    assert torch.allclose(model[0].std, data.inputs[late].std(0), atol=1e-4)


def test_a_network_on_images_trains_with_sgd_nesterov_and_augmentation(capsys):
    data = tiny_images()
    config = ValidationConfig(on="images", steps=3, batch_size=8)
    assert recipe(config, 3).optimizer == "sgd" and recipe(config, 3).augment
    assert config.learning_rate == 0.1
    a = train_model(data, data.pool, config, 3, seed=0, label="net")
    b = train_model(data, data.pool, config, 3, seed=0)
    c = train_model(data, data.pool, config, 3, seed=1)
    x = data.inputs[:6]
    assert torch.equal(a(x), b(x)) and not torch.equal(a(x), c(x))  # the seed sets the init
    assert a(x).shape == (6, 2)
    line = capsys.readouterr().err.splitlines()[0]
    assert line.startswith("[net] step 3/3,") and "steps/s" in line
    assert "ETA" in line and "running accuracy" in line


def test_a_cached_teacher_teaches_exactly_as_the_live_one_on_embeddings():
    data = blobs()
    teacher = train_model(data, data.pool, CONFIG, 50, seed=0)
    live = Teacher(teacher, None)
    cached = _prepare(teacher, data.inputs, CONFIG.model_copy(update={"teacher_cache": True}), data)
    assert cached.inputs is not None
    a = train_model(data, data.pool[:60], CONFIG, 30, seed=2, teacher=live, alpha=0.8)
    b = train_model(data, data.pool[:60], CONFIG, 30, seed=2, teacher=cached, alpha=0.8)
    for name, value in a.state_dict().items():
        assert torch.allclose(value, b.state_dict()[name], atol=1e-6)


def test_default_steps_follow_the_pool_and_have_a_floor():
    assert ValidationConfig(epochs=10, batch_size=100).total_steps(10_000) == 1000
    assert ValidationConfig().total_steps(50) == 200
    assert ValidationConfig(steps=7).total_steps(10_000) == 7
