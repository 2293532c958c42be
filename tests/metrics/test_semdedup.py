import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.semdedup import semdedup


def unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def naive(emb, dist, ids, eps):
    """The rule written plainly: the full similarity matrix, then position by position."""
    emb64 = np.asarray(emb, dtype=np.float32).astype(np.float64)
    sim = (emb64 @ emb64.T).astype(np.float32)
    order = sorted(range(len(ids)), key=lambda i: (-float(dist[i]), int(ids[i])))
    duplicate = np.zeros(len(ids), dtype=bool)
    duplicate_of = np.full(len(ids), -1, dtype=np.int64)
    max_similarity = np.full(len(ids), -np.inf, dtype=np.float32)
    for pos, i in enumerate(order):
        for j in order[:pos]:
            if sim[i, j] > max_similarity[i]:  # strict: the earliest of equal maxima wins
                max_similarity[i] = sim[i, j]
                duplicate_of[i] = ids[j]
        duplicate[i] = float(max_similarity[i]) > 1 - eps
        if not duplicate[i]:
            duplicate_of[i] = -1
    return duplicate, duplicate_of, max_similarity


def assert_matches_naive(emb, dist, ids, eps, block_size):
    result = semdedup(emb, dist, ids, eps, block_size=block_size)
    duplicate, duplicate_of, max_similarity = naive(emb, dist, ids, eps)
    np.testing.assert_array_equal(result.duplicate, duplicate)
    np.testing.assert_array_equal(result.duplicate_of, duplicate_of)
    np.testing.assert_array_equal(result.max_similarity, max_similarity)


def test_chain_removed_member_still_removes():
    # a at 0 deg, b at 15 deg, c at 40 deg; threshold 0.9: a~b (cos 15 = 0.966), b~c
    # (cos 25 = 0.906), a!~c (cos 40 = 0.766). Order by distance: a, b, c.
    emb = np.array([unit(0), unit(15), unit(40)], dtype=np.float32)
    dist = np.array([0.3, 0.2, 0.1])
    ids = np.array([10, 11, 12])
    r = semdedup(emb, dist, ids, eps=0.1)
    # b is removed as a duplicate of a; c is removed as a duplicate of b although b itself was
    # removed and c is not similar to the survivor a: only a is kept.
    np.testing.assert_array_equal(r.duplicate, [False, True, True])
    np.testing.assert_array_equal(r.duplicate_of, [-1, 10, 11])
    np.testing.assert_allclose(
        r.max_similarity, [-np.inf, math.cos(math.radians(15)), math.cos(math.radians(25))], 1e-6
    )


def test_chain_order_dependent():
    # Same vectors, order a, c, b: c is not similar to a, b's best earlier match is a.
    emb = np.array([unit(0), unit(15), unit(40)], dtype=np.float32)
    r = semdedup(emb, np.array([0.3, 0.1, 0.2]), np.array([10, 11, 12]), eps=0.1)
    np.testing.assert_array_equal(r.duplicate, [False, True, False])
    np.testing.assert_array_equal(r.duplicate_of, [-1, 10, -1])


def test_results_in_input_order():
    emb = np.array([unit(40), unit(0), unit(15)], dtype=np.float32)
    r = semdedup(emb, np.array([0.1, 0.3, 0.2]), np.array([12, 10, 11]), eps=0.1)
    np.testing.assert_array_equal(r.duplicate, [True, False, True])
    np.testing.assert_array_equal(r.duplicate_of, [11, -1, 10])
    assert r.max_similarity[1] == -np.inf


def test_ties_by_ascending_id():
    # Two identical vectors at the same distance: the smaller id comes first and survives.
    emb = np.array([unit(0), unit(0)], dtype=np.float32)
    r = semdedup(emb, np.array([0.5, 0.5]), np.array([7, 3]), eps=0.01)
    np.testing.assert_array_equal(r.duplicate, [True, False])
    np.testing.assert_array_equal(r.duplicate_of, [3, -1])


def test_duplicate_of_ties_pick_earliest():
    # p and q are identical (ids 5 and 2, same distance: order 2, 5); r matches both equally.
    emb = np.array([unit(0), unit(0), unit(10)], dtype=np.float32)
    r = semdedup(emb, np.array([0.5, 0.5, 0.1]), np.array([5, 2, 9]), eps=0.05)
    np.testing.assert_array_equal(r.duplicate, [True, False, True])
    np.testing.assert_array_equal(r.duplicate_of, [2, -1, 2])


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_eps_boundary_is_strict(dtype):
    # eps = 0.25: threshold 0.75. <(1, 0), (0.75, y)> is exactly 0.75 (representable in
    # float16 and float32): not a duplicate. One step above 0.75 is.
    y = math.sqrt(1 - 0.75**2)
    above = float(np.nextafter(dtype(0.75), dtype(1)))
    emb = np.array([[1, 0], [0.75, y], [above, y]], dtype=dtype)
    dist = np.array([0.9, 0.5, 0.1])
    # Separate clusters in effect: compare each pair alone.
    r_equal = semdedup(emb[:2], dist[:2], np.array([0, 1]), eps=0.25)
    assert r_equal.max_similarity[1] == np.float32(0.75)
    assert not r_equal.duplicate[1]
    r_above = semdedup(emb[[0, 2]], dist[[0, 2]], np.array([0, 2]), eps=0.25)
    assert r_above.duplicate[1]
    assert r_above.duplicate_of[1] == 0


def test_empty_and_single():
    r = semdedup(np.zeros((0, 4), np.float32), np.zeros(0), np.zeros(0, np.int64), eps=0.1)
    assert r.duplicate.shape == r.duplicate_of.shape == r.max_similarity.shape == (0,)
    r = semdedup(np.array([unit(3)], np.float32), np.array([0.2]), np.array([4]), eps=0.1)
    np.testing.assert_array_equal(r.duplicate, [False])
    np.testing.assert_array_equal(r.duplicate_of, [-1])
    np.testing.assert_array_equal(r.max_similarity, [-np.inf])
    assert r.duplicate.dtype == bool
    assert r.duplicate_of.dtype == np.int64
    assert r.max_similarity.dtype == np.float32


def clustered(seed: int, n: int, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Near-duplicate groups at several noise levels, exact copies and ties in distance."""
    rng = np.random.default_rng(seed)
    bases = rng.standard_normal((n // 6, d))
    emb = bases[rng.integers(0, len(bases), n)]
    emb += rng.standard_normal((n, d)) * rng.choice([0.0, 0.02, 0.1, 0.3], size=(n, 1))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    dist = np.round(rng.random(n), 2)  # many ties, resolved by id
    ids = rng.permutation(10 * n)[:n].astype(np.int64)
    return emb, dist, ids


@pytest.mark.parametrize("block_size", [1, 2, 7, 64, 299, 300, 301, 4096])
def test_matches_naive_for_any_block_size(block_size):
    emb, dist, ids = clustered(0, 300, 16)
    assert_matches_naive(emb, dist, ids, eps=0.05, block_size=block_size)


def test_identical_across_block_sizes_on_float16():
    emb, dist, ids = clustered(1, 400, 32)
    emb = emb.astype(np.float16)
    results = [semdedup(emb, dist, ids, 0.02, block_size=b) for b in (2, 3, 50, 128, 399, 4096)]
    assert results[0].duplicate.any() and not results[0].duplicate.all()
    for r in results[1:]:
        np.testing.assert_array_equal(r.duplicate, results[0].duplicate)
        np.testing.assert_array_equal(r.duplicate_of, results[0].duplicate_of)
        np.testing.assert_array_equal(r.max_similarity, results[0].max_similarity)


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    n=st.integers(0, 24),
    d=st.integers(1, 4),
    eps=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0, 1.5]),
    block_size=st.integers(1, 9),
)
def test_property_matches_naive(data, n, d, eps, block_size):
    # Coordinates in multiples of 1/4: every similarity is exact in float32, so ties between
    # similarities and with the threshold happen exactly and must resolve as the rule says.
    coords = st.integers(-4, 4).map(lambda v: v / 4)
    emb = np.array(
        data.draw(st.lists(st.lists(coords, min_size=d, max_size=d), min_size=n, max_size=n)),
        dtype=np.float32,
    ).reshape(n, d)
    dist = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.1, 0.5]), min_size=n, max_size=n)))
    ids = np.array(
        data.draw(st.lists(st.integers(-50, 50), min_size=n, max_size=n, unique=True)),
        dtype=np.int64,
    )
    assert_matches_naive(emb, dist, ids, eps, block_size)


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        semdedup(np.zeros((3, 2)), np.zeros(2), np.arange(3), eps=0.1)
    with pytest.raises(ValueError):
        semdedup(np.zeros((3, 2)), np.zeros(3), np.arange(3), eps=0.1, block_size=0)
    with pytest.raises(ValueError):
        semdedup(np.full((1, 2), np.nan), np.zeros(1), np.arange(1), eps=0.1)
