"""Concept-cluster complexity and its softmax weights (DBP, Abbas et al. ICLR 2024).

ALGORITHMS.md, DBP steps 2-4: per cluster ``d_intra`` (mean member distance to the centroid),
``d_inter`` (mean distance to the ``L`` nearest other centroids), complexity
``C = d_inter * d_intra`` (undefined values take the mean of the others) and weights
``P = softmax(C / tau)``.
"""

from __future__ import annotations

import numpy as np

# Rows of the centroid similarity matrix computed at once in `inter_cluster_distance`:
# bounds its memory to _SIM_ELEMENTS float64 values whatever the number of clusters.
_SIM_ELEMENTS = 1 << 22

# Clusters with fewer members have no meaningful complexity (DBP: "clusters of one or two").
_MIN_DEFINED_SIZE = 3


def intra_cluster_distance(
    cluster: np.ndarray, distance: np.ndarray, num_clusters: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean cosine distance of the members to their centroid, and the cluster sizes.

    ``cluster`` (n,) is each sample's cluster in ``[0, num_clusters)``, ``distance`` (n,) its
    cosine distance ``1 - <e_i, mu_c(i)>``. Returns ``(d_intra, sizes)``: float64 (k,) with nan
    for empty clusters, int64 (k,). Sums are taken with ``np.bincount``, so samples from several
    shards can simply be concatenated first.
    """
    cluster = np.asarray(cluster, dtype=np.int64)
    distance = np.asarray(distance, dtype=np.float64)
    if cluster.shape != distance.shape or cluster.ndim != 1:
        raise ValueError(f"cluster {cluster.shape} and distance {distance.shape} must be (n,)")
    if len(cluster) and (cluster.min() < 0 or cluster.max() >= num_clusters):
        raise ValueError(f"cluster ids must lie in [0, {num_clusters})")
    sizes = np.bincount(cluster, minlength=num_clusters).astype(np.int64)
    sums = np.bincount(cluster, weights=distance, minlength=num_clusters)
    with np.errstate(invalid="ignore", divide="ignore"):
        d_intra = np.where(sizes > 0, sums / sizes, np.nan)
    return d_intra, sizes


def inter_cluster_distance(centroids: np.ndarray, neighbors: int = 20) -> np.ndarray:
    """Mean cosine distance of each centroid to its ``L`` nearest other centroids.

    ``L = min(neighbors, k - 1)`` (reference default 20); nearest means highest cosine
    similarity; a centroid is never its own neighbour (excluded by index, so an identical other
    centroid still counts, at distance 0). ``centroids`` (k, d) are unit vectors (spherical
    k-means). Returns float64 (k,); all nan when k == 1.
    """
    mu = np.asarray(centroids, dtype=np.float64)
    if mu.ndim != 2:
        raise ValueError(f"centroids must be (k, d), got {mu.shape}")
    if neighbors < 1:
        raise ValueError(f"neighbors must be >= 1, got {neighbors}")
    k = len(mu)
    num = min(neighbors, k - 1)
    if num < 1:
        return np.full(k, np.nan)
    d_inter = np.empty(k)
    rows = max(1, _SIM_ELEMENTS // k)
    for r0 in range(0, k, rows):
        r1 = min(r0 + rows, k)
        sim = mu[r0:r1] @ mu.T
        sim[np.arange(r1 - r0), np.arange(r0, r1)] = -np.inf
        nearest = -np.partition(-sim, num - 1, axis=1)[:, :num]
        d_inter[r0:r1] = (1.0 - nearest).mean(axis=1)
    return d_inter


def cluster_complexity(d_intra: np.ndarray, d_inter: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Complexity ``C_j = d_inter(j) * d_intra(j)`` with undefined values filled.

    Undefined: clusters of size 0, 1 or 2, or a non-finite product. They take the mean of the
    defined values (DBP rule); if no value is defined every cluster gets 1.0 (any constant gives
    uniform weights). Returns float64 (k,).
    """
    d_intra = np.asarray(d_intra, dtype=np.float64)
    d_inter = np.asarray(d_inter, dtype=np.float64)
    sizes = np.asarray(sizes)
    if not d_intra.shape == d_inter.shape == sizes.shape or d_intra.ndim != 1:
        raise ValueError(
            f"d_intra {d_intra.shape}, d_inter {d_inter.shape}, sizes {sizes.shape} must be (k,)"
        )
    with np.errstate(invalid="ignore"):
        c = d_inter * d_intra
    defined = (sizes >= _MIN_DEFINED_SIZE) & np.isfinite(c)
    fill = c[defined].mean() if defined.any() else 1.0
    return np.where(defined, c, fill)


def complexity_weights(complexity: np.ndarray, tau: float = 0.5) -> np.ndarray:
    """Cluster weights ``P = softmax(C / tau)`` (reference default ``tau = 0.5``).

    Shifted by the maximum before exponentiating, so large ``C / tau`` cannot overflow.
    Returns float64 (k,) summing to 1.
    """
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    z = np.asarray(complexity, dtype=np.float64) / tau
    if z.ndim != 1 or not np.isfinite(z).all():
        raise ValueError("complexity must be a finite (k,) array")
    if len(z) == 0:
        return z
    w = np.exp(z - z.max())
    return w / w.sum()
