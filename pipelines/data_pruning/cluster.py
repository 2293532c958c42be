"""cluster: spherical k-means (FAISS) on a seeded, recorded sample; assign: every sample's
nearest centroid and cosine distance.

DBP clusters twice (ALGORITHMS.md: deduplicate first, then cluster): the same functions run
as `dbp_cluster`/`dbp_assign` with SemDeDup's duplicates left out of the training sample.
"""

from __future__ import annotations

from collections.abc import Callable

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.errors import NoResultError
from curation.stage import Context
from pipelines.data_pruning.layout import (
    load_array,
    read_table,
    save_array,
    shard_units,
    write_table,
)

Eligible = Callable[[Context], list[np.ndarray]]


def valid_rows(ctx: Context, unit: str) -> np.ndarray:
    """Row indices of samples that were embedded (not failed) in a shard."""
    status = read_table(ctx.run, "embed", f"{unit}.parquet", columns=["status"])["status"]
    return np.flatnonzero(pc.equal(status, "ok").to_numpy(zero_copy_only=False))


def all_valid_rows(ctx: Context) -> list[np.ndarray]:
    return [valid_rows(ctx, unit) for unit in shard_units(ctx)]


def _training_sample(ctx: Context, eligible: Eligible) -> tuple[np.ndarray, np.ndarray]:
    """A seeded uniform sample of eligible rows, at most k * max_points_per_centroid (FAISS
    would otherwise subsample on its own, unrecorded). Returns (vectors, ids)."""
    cfg = ctx.config
    units = shard_units(ctx)
    rows_by_shard = eligible(ctx)
    counts = np.array([len(v) for v in rows_by_shard], dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        raise NoResultError(f"no samples: the {len(units)} input shards hold no decodable image")
    if cfg.clusters > total:
        raise NoResultError(f"--clusters {cfg.clusters} is more than the {total} valid samples")
    size = min(total, cfg.clusters * cfg.max_points_per_centroid)
    chosen = np.sort(np.random.default_rng(cfg.seed).choice(total, size, replace=False))
    starts = np.concatenate([[0], np.cumsum(counts)])
    vectors, ids = [], []
    for i, unit in enumerate(units):
        local = chosen[(chosen >= starts[i]) & (chosen < starts[i + 1])] - starts[i]
        if len(local) == 0:
            continue
        rows = rows_by_shard[i][local]
        vectors.append(load_array(ctx.run, "embed", f"{unit}.npy")[rows].astype(np.float32))
        table_ids = read_table(ctx.run, "embed", f"{unit}.parquet", columns=["id"])["id"]
        ids.append(table_ids.to_numpy()[rows])
    return np.concatenate(vectors), np.concatenate(ids)


def train_clusters(
    ctx: Context, unit: str, folder: str = "cluster", eligible: Eligible = all_valid_rows
) -> dict:
    cfg = ctx.config
    x, ids = _training_sample(ctx, eligible)
    kmeans = faiss.Kmeans(
        x.shape[1], cfg.clusters, niter=cfg.kmeans_iterations, seed=cfg.seed, spherical=True,
        max_points_per_centroid=len(x), min_points_per_centroid=1, verbose=False,
    )  # fmt: skip
    kmeans.train(x)
    centroids = kmeans.centroids.astype(np.float32)
    sizes = np.bincount(kmeans.index.search(x, 1)[1][:, 0], minlength=cfg.clusters)
    save_array(ctx.run, centroids, folder, "centroids.npy")
    save_array(ctx.run, ids, folder, "training_ids.npy")
    ctx.run.write_json(
        {
            "clusters": cfg.clusters,
            "dim": int(x.shape[1]),
            "iterations": cfg.kmeans_iterations,
            "seed": cfg.seed,
            "training_samples": len(x),
            "objective": [float(v) for v in kmeans.obj],
            "training_cluster_sizes": sizes.tolist(),
            "empty_clusters_in_training": int((sizes == 0).sum()),
        },
        folder,
        "clustering.json",
    )
    return {"samples": len(x)}


def assign_shard(
    ctx: Context, unit: str, centroids_from: str = "cluster", folder: str = "assign"
) -> dict:
    centroids = load_array(ctx.run, centroids_from, "centroids.npy")
    embeddings = load_array(ctx.run, "embed", f"{unit}.npy")
    rows = valid_rows(ctx, unit)
    cluster = np.full(len(embeddings), -1, dtype=np.int32)
    distance = np.full(len(embeddings), np.nan, dtype=np.float32)
    if len(rows):
        index = faiss.IndexFlatIP(centroids.shape[1])
        index.add(centroids)
        similarity, nearest = index.search(embeddings[rows].astype(np.float32), 1)
        cluster[rows] = nearest[:, 0]
        distance[rows] = 1.0 - similarity[:, 0]
    table = pa.table({"cluster": cluster, "distance": distance})
    write_table(ctx.run, table, folder, f"{unit}.parquet")
    return {"samples": len(rows)}
