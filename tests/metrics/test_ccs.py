import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.ccs import (
    allocate,
    check_budget,
    cut_count,
    default_cutoff,
    strata_edges,
    stratify,
    stratum_step,
)


def reference_bin_allocate(num, bins):
    """The CCS reference's uniform bin_allocate, written plainly (stable sort for ties)."""
    sorted_index = sorted(range(len(bins)), key=lambda i: bins[i])
    rest = num
    budgets = [0] * len(bins)
    for position, i in enumerate(sorted_index):
        rest_bins = len(bins) - position
        budgets[i] = min(bins[i], rest // rest_bins)
        rest -= budgets[i]
    return budgets


def test_water_filling_with_empty_strata():
    # Strata sizes (3, 0, 10, 1, 6), budget 12. Smallest first: stratum 1 (0) gets 0;
    # stratum 3: 12 // 4 = 3, capped at 1 (11 left); stratum 0: 11 // 3 = 3 (8 left);
    # stratum 4: 8 // 2 = 4 (4 left); stratum 2: 4 // 1 = 4.
    np.testing.assert_array_equal(allocate(12, np.array([3, 0, 10, 1, 6])), [3, 0, 4, 1, 4])


def test_equal_sizes_tie_by_ascending_stratum():
    # Sizes (5, 5, 5), budget 10: stratum 0 gets 10 // 3 = 3, stratum 1 gets 7 // 2 = 3,
    # stratum 2 gets 4.
    np.testing.assert_array_equal(allocate(10, np.array([5, 5, 5])), [3, 3, 4])


def test_allocation_matches_reference_bin_allocate():
    rng = np.random.default_rng(0)
    for _ in range(300):
        sizes = rng.integers(0, 12, rng.integers(1, 60))
        sizes[rng.random(len(sizes)) < 0.3] = 0  # empty strata
        budget = int(rng.integers(0, sizes.sum() + 1))
        np.testing.assert_array_equal(
            allocate(budget, sizes), reference_bin_allocate(budget, sizes.tolist())
        )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=50), st.floats(0, 1))
def test_property_allocation(sizes, fraction):
    budget = int(fraction * sum(sizes))
    budgets = allocate(budget, np.array(sizes))
    assert budgets.tolist() == reference_bin_allocate(budget, sizes)
    assert budgets.sum() == budget  # the strata can supply it, so it is met exactly
    assert (budgets <= np.array(sizes)).all()


@pytest.mark.parametrize(("n", "cutoff", "expected"), [(10, 0.3, 3), (10, 0.7, 7), (100, 0.29, 29)])
def test_cutoff_count_is_robust_to_float_error(n, cutoff, expected):
    # 0.29 * 100 = 28.999999999999996 in floating point.
    assert cut_count(cutoff, n) == expected


def test_strata_span_the_range_and_the_maximum_goes_to_the_last():
    scores = np.array([0.0, 0.5, 1.0, 0.74])
    step = stratum_step(0.0, 1.0, strata=4)
    np.testing.assert_array_equal(stratify(scores, 0.0, step, strata=4), [0, 2, 3, 2])
    np.testing.assert_allclose(strata_edges(0.0, step, strata=4), [0, 0.25, 0.5, 0.75, 1.0])


def test_all_equal_scores_go_to_stratum_zero():
    step = stratum_step(0.4, 0.4)
    assert step == 0.0
    np.testing.assert_array_equal(stratify(np.full(20, 0.4), 0.4, step), np.zeros(20))
    np.testing.assert_array_equal(strata_edges(0.4, step), np.full(51, 0.4))


def test_budget_beyond_the_remaining_raises():
    with pytest.raises(ValueError, match=r"budget 8 must be an integer in \[0, 7\]"):
        check_budget(8, 10, 3)
    check_budget(7, 10, 3)
    with pytest.raises(ValueError, match="integer"):
        check_budget(4.5, 10, 0)
    with pytest.raises(ValueError, match="cutoff"):
        cut_count(1.5, 3)


@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        (0.95, 0.3),
        (0.9, 0.3),
        (0.85, 0.2),
        (0.8, 0.2),
        (0.75, 0.1),
        (0.7, 0.1),
        (0.5, 0.0),
        (0.0, 0.0),
    ],
)
def test_default_cutoff(rate, expected):
    assert default_cutoff(rate) == expected
