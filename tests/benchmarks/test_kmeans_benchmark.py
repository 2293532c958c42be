"""The k-means benchmark measures the real cluster and assign code on a mixture with the
structure it claims, and compares like with like."""

from __future__ import annotations

import numpy as np

from benchmarks.kmeans import (
    DUPLICATES,
    SHARD,
    measure_assign,
    measure_ours,
    measure_sklearn,
    mixture,
    spherical_objective,
)


def test_the_mixture_is_seeded_unit_vectors_with_near_duplicates():
    x = mixture(4000)
    assert x.dtype == np.float16 and x.shape == (4000, 512)
    np.testing.assert_allclose(np.linalg.norm(x.astype(np.float64), axis=1), 1.0, atol=2e-3)
    assert np.array_equal(x, mixture(4000))
    similarity = x[:400].astype(np.float32) @ x.astype(np.float32).T
    np.fill_diagonal(similarity, 0.0)
    near_copies = (similarity.max(axis=1) > 0.999).mean()
    assert DUPLICATES / 3 < near_copies < 3 * DUPLICATES
    off = similarity[:, 400:]
    assert 0.1 < off.mean() < 0.5  # a shared direction, as CLIP embeddings have


def test_ours_and_sklearn_report_the_same_objective_for_the_same_assignment():
    x16 = mixture(1000)
    ours = measure_ours(x16, 8, 5, 64)
    assert ours["training_points"] == 512 and 0.3 < ours["objective"] < 1
    for method in ("kmeans", "minibatch"):
        found = measure_sklearn(x16, 8, method)
        assert 0.3 < found["objective"] < 1 and found["seconds"] > 0
    centroids = 3.0 * x16[:8].astype(np.float64)  # the objective normalises centroids
    cosine = x16.astype(np.float64) @ (centroids / np.linalg.norm(centroids, axis=1)[:, None]).T
    labels = np.argmax(cosine, axis=1)
    assert abs(spherical_objective(x16, centroids, labels) - cosine.max(axis=1).mean()) < 1e-9


def test_the_assign_comparison_runs_the_assign_unit(tmp_path):
    result = measure_assign(mixture(2 * SHARD), 10, tmp_path, 1)
    assert set(result) >= {"search_s", "nearest_centroids_s", "assign_unit_s"}
    assert result["unit_over_search"] > 0 and result["nearest_over_search"] > 0
