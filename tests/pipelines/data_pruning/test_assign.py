"""The assignment is the float64 nearest centroid over all centroids, ties to the lower index,
whatever the batch, the chunking or the thread count; the float32 products only decide the
rows whose lead is beyond their rounding error (issue 13, item 5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipelines.data_pruning import cluster
from pipelines.data_pruning.cluster import nearest_centroids


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def _exact(embeddings: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Brute force, one row and one centroid at a time, in float64."""
    x, mu = embeddings.astype(np.float64), centroids.astype(np.float64)
    similarity = np.array([[float(np.dot(row, m)) for m in mu] for row in x])
    best = similarity.argmax(axis=1)  # the first maximum: the lower index
    return best, similarity[np.arange(len(x)), best]


def _near_ties(rng: np.random.Generator, dim: int = 64, k: int = 30):
    """Centroids with exact duplicates and pairs a few float32 ulps apart, and embeddings
    (float16) placed between the members of such pairs."""
    mu = _unit(rng.normal(size=(k, dim))).astype(np.float32)
    mu[7] = mu[3]  # an exact tie: 3 must win
    tilt = _unit(rng.normal(size=dim)).astype(np.float32)
    mu[12] = _unit(mu[11] + 1e-6 * tilt)  # nearly equal: float32 cannot order them reliably
    between = _unit((mu[[3, 11, 11, 5]] + mu[[7, 12, 12, 5]]) / 2)
    others = _unit(rng.normal(size=(200, dim)))
    return np.concatenate([between, others]).astype(np.float16), mu


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_nearest_is_the_float64_nearest_whatever_the_chunking(chunk, monkeypatch):
    rng = np.random.default_rng(2)  # float32 alone picks 11 for rows 1 and 2 here
    embeddings, centroids = _near_ties(rng)
    monkeypatch.setattr(cluster, "SCORES_AT_ONCE", chunk * len(centroids))
    monkeypatch.setattr(cluster, "ROWS_AT_ONCE", chunk)
    found, distance = nearest_centroids(embeddings, centroids)
    best, similarity = _exact(embeddings, centroids)
    assert found[0] == 3 and found.dtype == np.int32
    np.testing.assert_array_equal(found, best)
    np.testing.assert_allclose(distance, 1.0 - similarity, rtol=0, atol=1e-12)


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_row_gets_the_same_bits_in_any_batch(threads, restore_threads):
    torch.set_num_threads(threads)
    rng = np.random.default_rng(3)
    embeddings, centroids = _near_ties(rng)
    alone = [nearest_centroids(embeddings[i : i + 1], centroids) for i in range(6)]
    together = nearest_centroids(embeddings, centroids)
    for i, (cluster_alone, distance_alone) in enumerate(alone):
        assert cluster_alone[0] == together[0][i]
        assert distance_alone[0].tobytes() == together[1][i].tobytes()


def test_a_single_centroid_takes_every_row():
    rng = np.random.default_rng(2)
    centroid = _unit(rng.normal(size=(1, 16))).astype(np.float32)
    embeddings = _unit(rng.normal(size=(5, 16))).astype(np.float16)
    found, distance = nearest_centroids(embeddings, centroid)
    assert found.tolist() == [0] * 5
    np.testing.assert_allclose(distance, 1.0 - _exact(embeddings, centroid)[1], atol=1e-12)


@pytest.mark.parametrize("gpus", [0, 1])
def test_a_cuda_run_clusters_on_the_gpu_only_with_faiss_gpu_and_says_when_not(gpus, monkeypatch):
    monkeypatch.setattr(cluster.faiss, "get_num_gpus", lambda: gpus)
    assert cluster.kmeans_device("cpu") == "cpu" and cluster.gpu_fallback_note("cpu") is None
    assert cluster.kmeans_device("cuda:0") == ("cuda:0" if gpus else "cpu")
    note = cluster.gpu_fallback_note("cuda:0")
    assert (note is None) if gpus else ("k-means runs on the CPU" in note and "curate[gpu]" in note)
