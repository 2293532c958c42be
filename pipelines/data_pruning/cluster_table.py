"""The per-cluster table of a selection: size, d_intra, d_inter, complexity and kept."""

from __future__ import annotations

import numpy as np

from metrics.complexity import cluster_complexity, inter_cluster_distance, intra_cluster_distance
from pipelines.data_pruning.samples import Clustering

CLUSTER_COLUMNS = ("d_inter", "complexity")  # what the report shows of the table, besides size


def cluster_table(clusters: Clustering, rows: np.ndarray, keep: np.ndarray,
                  neighbors: int) -> list[dict]:  # fmt: skip
    """Per cluster, over `rows`: size, d_intra (mean member distance to the centroid), d_inter
    (mean distance to the `neighbors` nearest centroids), complexity and kept."""
    k = len(clusters.centroids)
    cluster = clusters.cluster[rows]
    d_intra, sizes = intra_cluster_distance(cluster, clusters.distance[rows], k)
    d_inter = inter_cluster_distance(clusters.centroids, neighbors)
    complexity = cluster_complexity(d_intra, d_inter, sizes)
    kept = np.bincount(cluster[keep[rows]], minlength=k)
    return [
        {"cluster": j, "size": int(sizes[j]), "d_intra": _number(d_intra[j]),
         "d_inter": _number(d_inter[j]), "complexity": _number(complexity[j]),
         "kept": int(kept[j])}
        for j in range(k)
    ]  # fmt: skip


def _number(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 6)
