"""The KD loss against values worked out by hand, and the documented alpha rule."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from metrics.kd import kd_alpha, kd_loss

UNIFORM = torch.zeros(1, 2)
TEACHER = torch.tensor([[math.log(3.0), 0.0]])  # softmax: (0.75, 0.25) at T = 1
LABEL = torch.tensor([0])


def test_known_value_at_temperature_one():
    ce = math.log(2.0)  # uniform student, two classes
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    got = kd_loss(UNIFORM, TEACHER, LABEL, alpha=0.5, temperature=1.0)
    assert got.item() == pytest.approx(0.5 * ce + 0.5 * kl, abs=1e-6)
    assert got.item() == pytest.approx(0.411980, abs=1e-6)


def test_known_value_at_temperature_two_scales_by_t_squared():
    p = math.sqrt(3.0) / (math.sqrt(3.0) + 1.0)  # softmax of (ln 3 / 2, 0)
    kl = p * math.log(p / 0.5) + (1 - p) * math.log((1 - p) / 0.5)
    got = kd_loss(UNIFORM, TEACHER, LABEL, alpha=0.25, temperature=2.0)
    assert got.item() == pytest.approx(0.75 * math.log(2.0) + 0.25 * 4.0 * kl, abs=1e-6)


def test_alpha_zero_is_cross_entropy_and_alpha_one_ignores_labels():
    torch.manual_seed(0)
    student, teacher = torch.randn(8, 5), torch.randn(8, 5)
    labels = torch.randint(0, 5, (8,))
    assert kd_loss(student, teacher, labels, 0.0, 3.0).item() == pytest.approx(
        F.cross_entropy(student, labels).item(), abs=1e-6
    )
    other = (labels + 1) % 5
    assert kd_loss(student, teacher, labels, 1.0, 3.0).item() == pytest.approx(
        kd_loss(student, teacher, other, 1.0, 3.0).item(), abs=1e-6
    )
    assert kd_loss(teacher, teacher, labels, 1.0, 3.0).item() == pytest.approx(0.0, abs=1e-6)


def test_kl_term_is_a_batch_mean():
    one = kd_loss(UNIFORM, TEACHER, LABEL, 1.0, 1.0)
    batch = kd_loss(UNIFORM.repeat(4, 1), TEACHER.repeat(4, 1), LABEL.repeat(4), 1.0, 1.0)
    assert batch.item() == pytest.approx(one.item(), abs=1e-6)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        kd_loss(UNIFORM, TEACHER, LABEL, 1.5, 1.0)
    with pytest.raises(ValueError):
        kd_loss(UNIFORM, TEACHER, LABEL, 0.5, 0.0)


def test_alpha_rule_grows_as_the_kept_fraction_shrinks():
    assert kd_alpha(1.0) == pytest.approx(0.5)
    assert kd_alpha(0.5) == pytest.approx(0.75)
    assert kd_alpha(0.1) == pytest.approx(0.95)
    fractions = [0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0]
    alphas = [kd_alpha(f) for f in fractions]
    assert alphas == sorted(alphas, reverse=True)
    for bad in (0.0, 1.2):
        with pytest.raises(ValueError):
            kd_alpha(bad)
