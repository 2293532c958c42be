import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.quotas import QuotaError, _real_quotas, balance_lower_bounds, quotas


def test_unconstrained_quotas_are_the_targets():
    np.testing.assert_array_equal(
        quotas(np.array([0.5, 0.25, 0.25]), np.array([99] * 3), 8), [4, 2, 2]
    )


def test_capped_cluster_pushes_the_rest_up():
    # Targets 40 * (0.5, 0.3, 0.2) = (20, 12, 8). Cluster 0 holds only 10; the other 10 are
    # shared equally (same lambda): 12 + 5, 8 + 5.
    x = quotas(np.array([0.5, 0.3, 0.2]), np.array([10, 100, 100]), 40)
    np.testing.assert_array_equal(x, [10, 17, 13])
    assert x.dtype == np.int64


def test_cascade_of_caps():
    # Targets (6, 3, 1); caps (1, 2, 50): 6 - 1 + 3 - 2 = 6 surplus goes to cluster 2.
    x = quotas(np.array([0.6, 0.3, 0.1]), np.array([1, 2, 50]), 10)
    np.testing.assert_array_equal(x, [1, 2, 7])


def test_lower_bounds_pull_down_the_rest():
    # lb = min(2, sizes) = (2, 2, 1). Targets (8, 0, 0): clusters 1, 2 sit at their bounds and
    # cluster 0 gives up what they take: 8 - 3 = 5.
    x = quotas(np.array([1.0, 0.0, 0.0]), np.array([10, 5, 1]), 8, lower=2)
    np.testing.assert_array_equal(x, [5, 2, 1])


def test_per_cluster_lower_bounds():
    x = quotas(np.array([1.0, 0.0, 0.0]), np.array([10, 5, 5]), 8, lower=np.array([0, 3, 1]))
    np.testing.assert_array_equal(x, [4, 3, 1])


def test_largest_remainders():
    # Real quotas 10 * (0.05, 0.35, 0.6) = (0.5, 3.5, 6) are not dyadic; use (1/8, 3/8, 1/2)
    # with total 4: real (0.5, 1.5, 2.0), floors (0, 1, 2) leave one unit; the fractional parts
    # tie at 0.5, so the lower index wins.
    x = quotas(np.array([0.125, 0.375, 0.5]), np.array([9, 9, 9]), 4)
    np.testing.assert_array_equal(x, [1, 1, 2])


def test_largest_remainder_goes_to_largest_fraction():
    # Real (1.2, 1.7, 2.1) -> floors (1, 1, 2), one unit to the 0.7.
    x = quotas(np.array([0.24, 0.34, 0.42]), np.array([9, 9, 9]), 5)
    np.testing.assert_array_equal(x, [1, 2, 2])


def test_equal_thirds_tie_order():
    x = quotas(np.full(3, 1 / 3), np.array([9, 9, 9]), 10)
    np.testing.assert_array_equal(x, [4, 3, 3])
    x = quotas(np.full(3, 1 / 3), np.array([9, 9, 9]), 11)
    np.testing.assert_array_equal(x, [4, 4, 3])


def test_all_clusters_taken_whole_and_empty_cases():
    np.testing.assert_array_equal(quotas(np.array([0.9, 0.1]), np.array([3, 4]), 7), [3, 4])
    np.testing.assert_array_equal(quotas(np.array([0.9, 0.1]), np.array([3, 4]), 0), [0, 0])
    assert quotas(np.zeros(0), np.zeros(0, np.int64), 0).shape == (0,)


@pytest.mark.parametrize(
    ("weights", "sizes", "total", "lower", "match"),
    [
        ([0.5, 0.5], [3, 4], 8, 0, r"total 8 exceeds the upper bound.*only 7"),
        ([0.5, 0.5], [3, 4], 3, 2, r"total 3 is below the lower bound.*sum to 4"),
        ([0.5, 0.5], [3, 4], -1, 0, r"total must be >= 0, got -1"),
        ([0.5, 0.5, 0.0], [3, 4], 2, 0, r"weights \(3,\) and sizes \(2,\)"),
        ([1.5, -0.5], [3, 4], 2, 0, r"non-negative"),
        ([0.5, 0.5], [3, -4], 2, 0, r"sizes must be non-negative"),
        ([0.5, 0.5], [3, 4], 2, -1, r"lower bounds must be non-negative"),
        ([0.5, 0.5], [3, 4], 2, [0, 0, 0], r"lower \(3,\)"),
    ],
)
def test_infeasible_requests_raise(weights, sizes, total, lower, match):
    with pytest.raises(QuotaError, match=match):
        quotas(np.array(weights), np.array(sizes), total, lower)


def test_quota_error_is_value_error():
    assert issubclass(QuotaError, ValueError)


def test_balance_lower_bounds():
    # floor(0.5 * 100 / 4) = 12, capped by the sizes.
    np.testing.assert_array_equal(
        balance_lower_bounds(np.array([5, 50, 12, 30]), 100, 0.5), [5, 12, 12, 12]
    )
    np.testing.assert_array_equal(balance_lower_bounds(np.array([5, 50]), 100, 0.0), [0, 0])
    # 0.29 * 100 / 1 is 28.999999999999996 in floating point: still 29.
    np.testing.assert_array_equal(balance_lower_bounds(np.array([1000]), 100, 0.29), [29])
    assert balance_lower_bounds(np.zeros(0, np.int64), 10, 1.0).shape == (0,)
    with pytest.raises(ValueError):
        balance_lower_bounds(np.array([5]), 10, 1.5)


def test_balance_one_levels_large_clusters():
    sizes = np.array([2, 100, 100, 100])
    lb = balance_lower_bounds(sizes, 40, 1.0)
    np.testing.assert_array_equal(lb, [2, 10, 10, 10])
    # All weight on cluster 1: it gets what the bounds leave, 40 - 2 - 10 - 10.
    np.testing.assert_array_equal(
        quotas(np.array([0.0, 1.0, 0.0, 0.0]), sizes, 40, lb), [2, 18, 10, 10]
    )


@st.composite
def problems(draw):
    k = draw(st.integers(1, 10))
    sizes = np.array(draw(st.lists(st.integers(0, 30), min_size=k, max_size=k)), dtype=np.int64)
    raw = draw(st.lists(st.floats(0, 10), min_size=k, max_size=k))
    weights = np.array(raw) / sum(raw) if sum(raw) > 0 else np.zeros(k)
    lower = np.array(draw(st.lists(st.integers(0, 6), min_size=k, max_size=k)), dtype=np.int64)
    lb = np.minimum(lower, sizes)
    total = draw(st.integers(int(lb.sum()), int(sizes.sum())))
    return weights, sizes, total, lower


def assert_kkt(x, target, lb, upper, total):
    """The real optimum: it sums to total and one lambda explains every cluster.

    Free clusters sit at ``target - lambda``; clusters at a bound are there because
    ``target - lambda`` lies beyond it. Clusters with ``lb == upper`` are fixed and say nothing.
    """
    tol = 1e-9 * max(1.0, float(np.abs(target).max()))
    assert abs(x.sum() - total) < 1e-9 * max(1, total)
    assert ((x >= lb) & (x <= upper)).all()
    movable = lb < upper
    free = movable & (x > lb + tol) & (x < upper - tol)
    at_lower = movable & (x <= lb + tol)
    at_upper = movable & (x >= upper - tol)
    lam = target - x
    # lambda must satisfy: lam == target - x on free clusters,
    # lam >= target - lb on clusters at their lower bound, lam <= target - upper at the upper.
    lo = max(lam[free].max(initial=-np.inf), (target - lb)[at_lower].max(initial=-np.inf))
    hi = min(lam[free].min(initial=np.inf), (target - upper)[at_upper].min(initial=np.inf))
    assert lo <= hi + tol


@settings(max_examples=200, deadline=None)
@given(problems())
def test_property_quotas(problem):
    weights, sizes, total, lower = problem
    lb = np.minimum(lower, sizes)
    x = quotas(weights, sizes, total, lower)
    assert x.sum() == total
    assert ((lb <= x) & (x <= sizes)).all()
    real = _real_quotas(total * weights, lb, sizes, total)
    assert_kkt(real, total * weights, lb, sizes, total)
    assert (np.abs(x - real) < 1).all()


@settings(max_examples=100, deadline=None)
@given(problems(), st.floats(0, 1))
def test_property_balance_bounds_are_feasible(problem, balance):
    weights, sizes, total, _ = problem
    lb = balance_lower_bounds(sizes, total, balance)
    assert lb.sum() <= total
    x = quotas(weights, sizes, total, lb)
    assert x.sum() == total
    assert (x >= lb).all()


def test_large_scale_sum_is_exact():
    rng = np.random.default_rng(3)
    sizes = rng.integers(0, 10**6, 50_000)
    weights = rng.random(50_000) ** 4
    weights /= weights.sum()
    total = int(sizes.sum() * 0.3)
    x = quotas(weights, sizes, total, lower=1)
    assert x.sum() == total
    assert ((np.minimum(1, sizes) <= x) & (x <= sizes)).all()


def test_total_must_be_integral():
    np.testing.assert_array_equal(quotas(np.array([0.5, 0.5]), np.array([3, 4]), 4.0), [2, 2])
    with pytest.raises(QuotaError, match="integer"):
        quotas(np.array([0.5, 0.5]), np.array([3, 4]), 4.5)
