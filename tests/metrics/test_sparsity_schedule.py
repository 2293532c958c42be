import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.prunable import PruningError
from metrics.sparsity_schedule import (
    gradual_schedule,
    gradual_sparsity,
    imp_levels,
    imp_schedule,
    imp_sparsity,
    one_shot,
    step_amounts,
)

ZHU_GUPTA_EXAMPLE = [0, 0.244, 0.439, 0.591, 0.706, 0.787, 0.842, 0.876, 0.893, 0.899, 0.9]


def test_gradual_matches_the_example():
    schedule = gradual_schedule(0.9, 10)
    assert [round(s, 3) for s in schedule] == ZHU_GUPTA_EXAMPLE
    assert schedule[0] == 0.0 and schedule[-1] == 0.9
    assert schedule[1] == pytest.approx(0.9 * (1 - 0.9**3))


def test_gradual_from_a_nonzero_start():
    # s_1 = 0.9 + (0.5 - 0.9) * (1 - 1/2)^3 = 0.85.
    assert gradual_schedule(0.9, 2, initial=0.5) == pytest.approx([0.5, 0.85, 0.9])


def test_gradual_sparsity_at_training_steps():
    def at(step):
        return gradual_sparsity(step, 0.9, n=10, t0=100, dt=10)

    assert at(0) == at(99) == at(100) == at(109) == 0.0
    assert at(110) == at(119) == pytest.approx(0.2439)
    assert at(150) == pytest.approx(0.9 * (1 - 0.5**3))
    assert at(200) == at(10_000) == 0.9


def test_step_amounts_of_the_example():
    amounts = step_amounts(gradual_schedule(0.9, 10))
    assert amounts[0] == 0.0
    assert amounts[1] == pytest.approx(0.2439)
    assert amounts[2] == pytest.approx(1 - (1 - 0.4392) / (1 - 0.2439))
    # Pruning each amount of what is left reaches 0.9 in all.
    density = 1.0
    for amount in amounts:
        density *= 1 - amount
    assert density == pytest.approx(0.1)
    assert step_amounts([0.5, 0.75]) == [0.5, 0.5]
    assert step_amounts([0.75], current=0.5) == [0.5]


def test_one_shot():
    assert one_shot(0.8) == [0.8]
    assert step_amounts(one_shot(0.8)) == [0.8]


def test_imp_levels_and_sparsities():
    assert imp_sparsity(0) == 0.0
    assert imp_sparsity(1) == pytest.approx(0.2)
    assert imp_sparsity(2) == pytest.approx(0.36)
    assert imp_sparsity(3, rate=0.5) == 0.875
    assert imp_levels(0.9) == 11  # 0.8^10 = 0.107, 0.8^11 = 0.086
    assert imp_levels(0.36) == 2  # 1 - 0.8^2 is 0.3599999999999999 in floating point
    assert imp_levels(0.2) == 1
    assert imp_levels(0.21) == 2
    assert imp_levels(0.0) == 0
    assert imp_levels(0.875, rate=0.5) == 3
    assert imp_schedule(3) == pytest.approx([0.2, 0.36, 0.488])
    assert step_amounts(imp_schedule(3)) == pytest.approx([0.2, 0.2, 0.2])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: gradual_schedule(0.5, 10, initial=0.6), "initial sparsity 0.6 is above"),
        (lambda: gradual_schedule(0.9, 0), "n must be a positive int"),
        (lambda: gradual_sparsity(5, 0.9, 10, dt=0), "dt must be a positive int"),
        (lambda: one_shot(1.2), "final sparsity must lie in"),
        (lambda: imp_levels(1.0), "IMP needs sparsity < 1"),
        (lambda: imp_levels(0.5, rate=0.0), "0 < rate < 1"),
        (lambda: imp_sparsity(-1), "level must be a non-negative int"),
        (lambda: step_amounts([0.5, 0.4]), "current sparsity 0.5 is above the target 0.4"),
    ],
)
def test_bad_schedules_raise(call, match):
    with pytest.raises(PruningError, match=match):
        call()


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 0.999), st.floats(0.01, 0.99))
def test_property_imp_levels_is_the_fewest(sparsity, rate):
    levels = imp_levels(sparsity, rate)
    assert imp_sparsity(levels, rate) >= sparsity - 1e-12
    assert levels == 0 or imp_sparsity(levels - 1, rate) < sparsity - 1e-12


@settings(max_examples=100, deadline=None)
@given(st.floats(0, 1), st.floats(0, 1), st.integers(1, 50))
def test_property_gradual_rises_from_initial_to_final(a, b, n):
    initial, final = min(a, b), max(a, b)
    schedule = gradual_schedule(final, n, initial)
    assert schedule[0] == pytest.approx(initial) and schedule[-1] == final
    assert all(x <= y + 1e-12 for x, y in itertools.pairwise(schedule))
