import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.ccs import _allocate, ccs, default_cutoff


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


def scores_with_strata(sizes, width=1.0):
    """Scores on [0, len(sizes) * width] giving stratum j exactly sizes[j] members."""
    top = len(sizes) * width
    scores = []
    for j, size in enumerate(sizes):
        scores += [(j + 0.5) * width] * size
    # Pin the range: one member of the first stratum at 0 and one of the last at the top.
    first = next(i for i, s in enumerate(scores) if s == 0.5 * width)
    scores[first] = 0.0
    scores[len(scores) - 1] = top
    return np.array(scores)


def test_water_filling_with_empty_strata():
    # Strata sizes (3, 0, 10, 1, 6), budget 12. Smallest first: stratum 1 (0) gets 0;
    # stratum 3: 12 // 4 = 3, capped at 1 (11 left); stratum 0: 11 // 3 = 3 (8 left);
    # stratum 4: 8 // 2 = 4 (4 left); stratum 2: 4 // 1 = 4.
    scores = scores_with_strata([3, 0, 10, 1, 6])
    r = ccs(scores, np.arange(len(scores)), budget=12, cutoff=0.0, strata=5)
    np.testing.assert_array_equal(r.stratum_sizes, [3, 0, 10, 1, 6])
    np.testing.assert_array_equal(r.budgets, [3, 0, 4, 1, 4])
    np.testing.assert_allclose(r.edges, [0, 1, 2, 3, 4, 5])
    assert r.keep.sum() == r.kept == 12
    for j in range(5):
        assert r.keep[r.stratum == j].sum() == r.budgets[j]


def test_equal_sizes_tie_by_ascending_stratum():
    # Sizes (5, 5, 5), budget 10: stratum 0 gets 10 // 3 = 3, stratum 1 gets 7 // 2 = 3,
    # stratum 2 gets 4.
    np.testing.assert_array_equal(_allocate(10, np.array([5, 5, 5])), [3, 3, 4])


def test_allocation_matches_reference_bin_allocate():
    rng = np.random.default_rng(0)
    for _ in range(300):
        sizes = rng.integers(0, 12, rng.integers(1, 60))
        sizes[rng.random(len(sizes)) < 0.3] = 0  # empty strata
        budget = int(rng.integers(0, sizes.sum() + 1))
        np.testing.assert_array_equal(
            _allocate(budget, sizes), reference_bin_allocate(budget, sizes.tolist())
        )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=50), st.floats(0, 1))
def test_property_allocation(sizes, fraction):
    budget = int(fraction * sum(sizes))
    budgets = _allocate(budget, np.array(sizes))
    assert budgets.tolist() == reference_bin_allocate(budget, sizes)
    assert budgets.sum() == budget  # the strata can supply it, so it is met exactly
    assert (budgets <= np.array(sizes)).all()


def test_cutoff_removes_the_hardest_with_ties_by_id():
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.2, 0.9, 0.3, 0.4, 0.6, 0.7])
    ids = np.array([40, 30, 0, 10, 1, 20, 2, 3, 4, 5])
    # floor(0.2 * 10) = 2 cut: the two hardest of the three 0.9s by ascending id (10, 20).
    r = ccs(scores, ids, budget=8, cutoff=0.2, strata=4)
    np.testing.assert_array_equal(np.sort(ids[r.cut]), [10, 20])
    assert (r.stratum[r.cut] == -1).all()
    assert not r.keep[r.cut].any()
    assert r.keep.sum() == 8
    # The strata span the remaining scores: [0.1, 0.9].
    assert r.edges[0] == 0.1
    assert r.edges[-1] == pytest.approx(0.9)


@pytest.mark.parametrize(("n", "cutoff", "expected"), [(10, 0.3, 3), (10, 0.7, 7), (100, 0.29, 29)])
def test_cutoff_count_is_robust_to_float_error(n, cutoff, expected):
    # 0.29 * 100 = 28.999999999999996 in floating point.
    r = ccs(np.arange(n, dtype=float), np.arange(n), budget=0, cutoff=cutoff)
    assert r.cut.sum() == expected
    assert r.cut[n - expected :].all()


def test_all_equal_scores_go_to_stratum_zero():
    r = ccs(np.full(20, 0.4), np.arange(20), budget=7, cutoff=0.0, strata=50)
    assert (r.stratum == 0).all()
    assert r.stratum_sizes[0] == 20
    assert r.stratum_sizes[1:].sum() == 0
    assert r.budgets[0] == 7
    np.testing.assert_array_equal(r.edges, np.full(51, 0.4))
    assert r.keep.sum() == 7


def test_maximum_goes_to_last_stratum():
    r = ccs(np.array([0.0, 0.5, 1.0]), np.arange(3), budget=3, cutoff=0.0, strata=4)
    np.testing.assert_array_equal(r.stratum, [0, 2, 3])


def test_sampling_follows_the_documented_procedure():
    rng = np.random.default_rng(5)
    scores = rng.random(200)
    ids = rng.permutation(1000)[:200]
    r = ccs(scores, ids, budget=60, cutoff=0.1, strata=10, seed=42)
    expected = np.zeros(200, dtype=bool)
    gen = np.random.default_rng(42)
    for j in range(10):
        members = [i for i in sorted(range(200), key=lambda i: ids[i]) if r.stratum[i] == j]
        expected[gen.permutation(np.array(members, dtype=np.int64))[: r.budgets[j]]] = True
    np.testing.assert_array_equal(r.keep, expected)


def test_seeded_reproducibility_and_input_order_independence():
    rng = np.random.default_rng(6)
    scores = rng.random(500)
    ids = rng.permutation(10**6)[:500]
    a = ccs(scores, ids, budget=100, cutoff=0.2, seed=1)
    b = ccs(scores, ids, budget=100, cutoff=0.2, seed=1)
    c = ccs(scores, ids, budget=100, cutoff=0.2, seed=2)
    np.testing.assert_array_equal(a.keep, b.keep)
    assert (a.keep != c.keep).any()
    np.testing.assert_array_equal(a.budgets, c.budgets)
    perm = rng.permutation(500)
    d = ccs(scores[perm], ids[perm], budget=100, cutoff=0.2, seed=1)
    np.testing.assert_array_equal(np.sort(ids[perm][d.keep]), np.sort(ids[a.keep]))


def test_result_types():
    r = ccs(np.random.default_rng(0).random(30), np.arange(30), budget=10, cutoff=0.1, strata=5)
    assert r.keep.dtype == bool and r.cut.dtype == bool
    assert r.stratum.dtype == r.budgets.dtype == r.stratum_sizes.dtype == np.int64
    assert r.edges.dtype == np.float64 and r.edges.shape == (6,)
    assert r.budgets.shape == r.stratum_sizes.shape == (5,)


def test_budget_beyond_the_remaining_raises():
    with pytest.raises(ValueError, match="budget 8"):
        ccs(np.arange(10.0), np.arange(10), budget=8, cutoff=0.3)
    ccs(np.arange(10.0), np.arange(10), budget=7, cutoff=0.3)


def test_everything_cut_and_empty_input():
    r = ccs(np.arange(3.0), np.arange(3), budget=0, cutoff=1.0, strata=2)
    assert r.cut.all() and not r.keep.any()
    r = ccs(np.zeros(0), np.zeros(0, np.int64), budget=0, cutoff=0.0)
    assert r.keep.shape == (0,) and r.budgets.sum() == 0


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        ccs(np.array([0.1, np.nan]), np.arange(2), budget=1, cutoff=0.0)
    with pytest.raises(ValueError):
        ccs(np.arange(3.0), np.arange(2), budget=1, cutoff=0.0)
    with pytest.raises(ValueError):
        ccs(np.arange(3.0), np.arange(3), budget=1, cutoff=0.0, strata=0)
    with pytest.raises(ValueError):
        ccs(np.arange(3.0), np.arange(3), budget=1, cutoff=1.5)


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


def test_budget_must_be_integral():
    assert ccs(np.arange(10.0), np.arange(10), budget=np.float64(4), cutoff=0.0).kept == 4
    with pytest.raises(ValueError, match="integer"):
        ccs(np.arange(10.0), np.arange(10), budget=4.5, cutoff=0.0)
