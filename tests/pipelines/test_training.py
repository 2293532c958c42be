"""The shared training loop: exact step counts, seeded, KD from a teacher on another view."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

from pipelines import training


def _blobs(n: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    centres = rng.normal(0, 3, (3, 8))
    x = centres[labels] + rng.normal(0, 0.5, (n, 8))
    return torch.tensor(x, dtype=torch.float32), torch.tensor(labels)


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(8, 3)


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_trains_exactly_the_steps_and_learns(optimizer):
    x, y = _blobs()
    steps = []
    recipe = training.Recipe(steps=60, batch_size=16, lr=0.05, optimizer=optimizer)
    model = training.train(_model(), x, y, np.arange(150), recipe, seed=0,
                           on_step=lambda step, loss: steps.append(step))  # fmt: skip
    assert steps == list(range(1, 61))
    assert training.accuracy(model, x, y, np.arange(150, 200)) > 0.9
    assert not model.training


def test_same_seed_same_weights_other_seed_other_weights():
    x, y = _blobs()
    recipe = training.Recipe(steps=10, batch_size=8, lr=0.01)
    a = training.train(_model(), x, y, np.arange(100), recipe, seed=1).weight
    b = training.train(_model(), x, y, np.arange(100), recipe, seed=1).weight
    c = training.train(_model(), x, y, np.arange(100), recipe, seed=2).weight
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_a_teacher_on_another_view_is_followed_with_alpha_one():
    x, y = _blobs()
    view = x * 10.0  # what the teacher sees: another representation of the same samples
    teacher = nn.Linear(8, 3)
    with torch.no_grad():
        teacher.weight.copy_(torch.randn(3, 8))
    recipe = training.Recipe(steps=200, batch_size=32, lr=0.05)
    student = training.train(_model(), x, y, np.arange(200), recipe, seed=0, teacher=teacher,
                             alpha=1.0, teacher_inputs=view)  # fmt: skip
    agree = training.predict(student, x, np.arange(200)) == training.predict(
        teacher, view, np.arange(200))  # fmt: skip
    labels_agree = training.predict(student, x, np.arange(200)) == y.numpy()
    assert agree.mean() > 0.8 and agree.mean() > labels_agree.mean()


def test_augmentation_keeps_shape_and_pixels():
    images = torch.randint(0, 255, (5, 3, 8, 8), dtype=torch.uint8)
    out = training.augment_images(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert training.warmup_cosine(100, 0.05)(0) == pytest.approx(0.2)
    assert training.warmup_cosine(100, 0.05)(99) == pytest.approx(0.0, abs=1e-3)


def test_progress_lines_give_steps_per_second_eta_and_running_accuracy():
    x, y = _blobs()
    stream = io.StringIO()
    log = training.TrainingLog("probe", steps=40, interval=0.0, stream=stream)
    recipe = training.Recipe(steps=40, batch_size=16, lr=0.05)
    training.train(_model(), x, y, np.arange(150), recipe, seed=0, log=log)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 40 and lines[-1].startswith("[probe] step 40/40, ")
    assert "steps/s, ETA 0:00:00, running accuracy" in lines[-1]
    accuracy = [float(line.rsplit(" ", 1)[1].rstrip("%")) for line in lines]
    assert accuracy[-1] > 80.0  # the batches since the previous line, once it has learnt
    quiet = io.StringIO()
    slow = training.TrainingLog("probe", steps=40, interval=3600.0, stream=quiet)
    training.train(_model(), x, y, np.arange(150), recipe, seed=0, log=slow)
    assert len(quiet.getvalue().splitlines()) == 1  # only the last step, within the hour


def test_input_statistics_in_chunks_match_the_direct_ones():
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (50, 3, 4, 4), dtype=np.uint8))
    mean, std = training.input_statistics(images, chunk=7)
    x = images.float() / 255.0
    assert mean.shape == (3, 1, 1)
    assert torch.allclose(mean.flatten(), x.mean(dim=(0, 2, 3)), atol=1e-6)
    assert torch.allclose(std.flatten(), x.std(dim=(0, 2, 3)), atol=1e-5)
    vectors = torch.randn(30, 5) * 3 + 1
    mean, std = training.input_statistics(vectors, chunk=4)
    assert torch.allclose(mean, vectors.mean(0), atol=1e-5)
    assert torch.allclose(std, vectors.std(0), atol=1e-5)
    scaled = training.Standardise(*training.input_statistics(images))(images)
    assert abs(float(scaled.mean())) < 1e-4
