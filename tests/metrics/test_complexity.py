import math

import numpy as np
import pytest

from metrics.complexity import (
    cluster_complexity,
    complexity_weights,
    inter_cluster_distance,
    intra_cluster_distance,
)

SQRT3_2 = math.sqrt(3) / 2


def unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


def test_intra_cluster_distance():
    cluster = np.array([0, 0, 1, 2, 2, 2])
    distance = np.array([0.1, 0.3, 0.5, 0.2, 0.4, 0.6])
    d_intra, sizes = intra_cluster_distance(cluster, distance, num_clusters=4)
    np.testing.assert_allclose(d_intra[:3], [0.2, 0.5, 0.4])
    assert np.isnan(d_intra[3])
    np.testing.assert_array_equal(sizes, [2, 1, 3, 0])
    assert d_intra.dtype == np.float64
    assert sizes.dtype == np.int64


def test_intra_cluster_distance_concatenates_shards():
    rng = np.random.default_rng(0)
    cluster, distance = rng.integers(0, 5, 100), rng.random(100)
    whole = intra_cluster_distance(cluster, distance, 5)
    parts = intra_cluster_distance(
        np.concatenate([cluster[:40], cluster[40:]]),
        np.concatenate([distance[:40], distance[40:]]),
        5,
    )
    np.testing.assert_array_equal(whole[0], parts[0])


def test_intra_cluster_distance_rejects_out_of_range():
    with pytest.raises(ValueError):
        intra_cluster_distance(np.array([0, 3]), np.array([0.1, 0.2]), num_clusters=3)


# Centroids at 0, 60, 90 and 180 degrees. Pairwise similarities:
# (0,60) 0.5, (0,90) 0, (0,180) -1, (60,90) sqrt(3)/2, (60,180) -0.5, (90,180) 0.
CENTROIDS = np.array([unit(0), unit(60), unit(90), unit(180)])


def test_inter_cluster_distance_two_neighbours():
    expected = [
        ((1 - 0.5) + (1 - 0)) / 2,
        ((1 - SQRT3_2) + (1 - 0.5)) / 2,
        ((1 - SQRT3_2) + (1 - 0)) / 2,
        ((1 - 0) + (1 + 0.5)) / 2,
    ]
    np.testing.assert_allclose(inter_cluster_distance(CENTROIDS, neighbors=2), expected)


def test_inter_cluster_distance_caps_at_k_minus_one():
    expected = [
        (0.5 + 1 + 2) / 3,
        ((1 - 0.5) + (1 - SQRT3_2) + 1.5) / 3,
        (1 + (1 - SQRT3_2) + 1) / 3,
        (2 + 1.5 + 1) / 3,
    ]
    np.testing.assert_allclose(inter_cluster_distance(CENTROIDS, neighbors=20), expected)
    np.testing.assert_allclose(inter_cluster_distance(CENTROIDS, neighbors=3), expected)


def test_inter_cluster_distance_excludes_self_by_index():
    # Two identical centroids are each other's nearest neighbour at distance 0.
    centroids = np.array([unit(30), unit(30), unit(120)])
    np.testing.assert_allclose(
        inter_cluster_distance(centroids, neighbors=1), [0, 0, 1], atol=1e-12
    )


def test_inter_cluster_distance_single_cluster_is_nan():
    assert np.isnan(inter_cluster_distance(np.array([unit(10)]))).all()
    assert inter_cluster_distance(np.zeros((0, 2))).shape == (0,)


def test_inter_cluster_distance_chunked_rows_agree(monkeypatch):
    rng = np.random.default_rng(1)
    mu = rng.standard_normal((50, 8))
    mu /= np.linalg.norm(mu, axis=1, keepdims=True)
    whole = inter_cluster_distance(mu, neighbors=5)
    monkeypatch.setattr("metrics.complexity._SIM_ELEMENTS", 7 * 50)
    np.testing.assert_allclose(inter_cluster_distance(mu, neighbors=5), whole, rtol=1e-14)


def test_cluster_complexity_fills_small_clusters_with_mean():
    d_intra = np.array([0.2, 0.9, 0.8, 0.4, np.nan, 0.3])
    d_inter = np.array([0.5, 0.9, 0.7, 1.0, 0.6, np.nan])
    sizes = np.array([10, 1, 2, 3, 0, 7])
    c = cluster_complexity(d_intra, d_inter, sizes)
    defined_mean = (0.2 * 0.5 + 0.4 * 1.0) / 2
    np.testing.assert_allclose(
        c, [0.1, defined_mean, defined_mean, 0.4, defined_mean, defined_mean]
    )


def test_cluster_complexity_none_defined_is_ones():
    c = cluster_complexity(np.array([0.2, 0.3]), np.array([0.5, 0.5]), np.array([1, 2]))
    np.testing.assert_array_equal(c, [1.0, 1.0])


def test_complexity_weights_known_values():
    # tau = 0.5, C = (0, 0.5 ln 3): C / tau = (0, ln 3), so P = (1/4, 3/4).
    p = complexity_weights(np.array([0.0, 0.5 * math.log(3)]), tau=0.5)
    np.testing.assert_allclose(p, [0.25, 0.75], rtol=1e-14)


@pytest.mark.parametrize("tau", [0.01, 0.5, 2.0])
def test_complexity_weights_matches_plain_softmax(tau):
    c = np.random.default_rng(2).random(30)
    p = complexity_weights(c, tau)
    plain = np.exp(c / tau) / np.exp(c / tau).sum()
    np.testing.assert_allclose(p, plain, rtol=1e-12)
    assert p.dtype == np.float64
    assert math.isclose(p.sum(), 1.0, rel_tol=1e-14)


def test_complexity_weights_stable_for_large_values():
    p = complexity_weights(np.array([1000.0, 1000.0, 999.0]), tau=0.01)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p, [0.5, 0.5, 0.0], atol=1e-40)


@pytest.mark.parametrize("tau", [0.0, -1.0])
def test_complexity_weights_rejects_bad_tau(tau):
    with pytest.raises(ValueError):
        complexity_weights(np.array([0.1, 0.2]), tau)
