"""The per-cluster table of a selection: size, d_intra, d_inter, complexity and kept.

Sizes and distance sums are accumulated shard by shard in input order (`ClusterSums`), which
gives the same float64 sums, bit for bit, as one `np.bincount` over every sample; the kept
column is counted by each shard as it is decided, and summed when the table is read.
"""

from __future__ import annotations

import numpy as np

from metrics.complexity import cluster_complexity, inter_cluster_distance

CLUSTER_COLUMNS = ("d_inter", "complexity")  # what the report shows of the table, besides size
# What the per-cluster columns and the clustering's record mean, in one line each (the report)
MEANINGS = {
    "d_intra": "mean cosine distance of the cluster's members to its centroid: how spread out "
    "the cluster is",
    "d_inter": "mean cosine distance of the cluster's centroid to its --neighbors nearest "
    "centroids: how far the cluster lies from the others",
    "complexity": "d_intra x d_inter (DBP): a spread-out, isolated cluster is complex and gets "
    "a larger share of the kept samples",
    "k-means objective": "the sum over the training sample of each vector's squared L2 "
    "distance to its nearest centroid, after the last iteration (lower: tighter clusters)",
}


class ClusterSums:
    """Members and summed cosine distances per cluster, added shard by shard."""

    def __init__(self, clusters: int):
        self.sizes = np.zeros(clusters, dtype=np.int64)
        self.sums = np.zeros(clusters, dtype=np.float64)

    def add(self, cluster: np.ndarray, distance: np.ndarray) -> None:
        """Rows in input order: `np.add.at` adds them one by one, as `np.bincount` does."""
        np.add.at(self.sums, cluster, distance)
        self.sizes += np.bincount(cluster, minlength=len(self.sizes))

    @property
    def d_intra(self) -> np.ndarray:
        """Mean member distance to the centroid; nan for an empty cluster."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.sizes > 0, self.sums / self.sizes, np.nan)


def complexity(sums: ClusterSums, centroids: np.ndarray, neighbors: int) -> tuple[np.ndarray, ...]:
    """d_intra, d_inter (mean distance to the `neighbors` nearest centroids) and complexity."""
    d_intra = sums.d_intra
    d_inter = inter_cluster_distance(centroids, neighbors)
    return d_intra, d_inter, cluster_complexity(d_intra, d_inter, sums.sizes)


def cluster_table(sums: ClusterSums, centroids: np.ndarray, neighbors: int) -> list[dict]:
    """Per cluster: size, d_intra, d_inter, complexity; kept is counted by the shards
    (`schema.read_selection_record` fills it in)."""
    d_intra, d_inter, complexities = complexity(sums, centroids, neighbors)
    return [
        {"cluster": j, "size": int(sums.sizes[j]), "d_intra": _number(d_intra[j]),
         "d_inter": _number(d_inter[j]), "complexity": _number(complexities[j]), "kept": None}
        for j in range(len(centroids))
    ]  # fmt: skip


def _number(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 6)
