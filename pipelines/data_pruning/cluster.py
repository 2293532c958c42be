"""cluster: spherical k-means (FAISS) on a seeded, recorded sample; assign: every sample's
nearest centroid and cosine distance.

DBP clusters twice (ALGORITHMS.md: deduplicate first, then cluster): the same functions run
as `dbp_cluster`/`dbp_assign` with SemDeDup's duplicates left out of the training sample.
"""

from __future__ import annotations

import faiss
import numpy as np

from curation.errors import NoResultError
from curation.seeds import child_seed
from curation.stage import Context
from pipelines.data_pruning import schema


def _eligible_rows(ctx: Context, without_duplicates_at: float | None) -> list[np.ndarray]:
    """Per shard, the rows k-means may train on: every candidate (valid, not held out), or
    (DBP) the candidates SemDeDup keeps at that eps."""
    if without_duplicates_at is not None:
        from pipelines.data_pruning.dedup import non_duplicate_rows

        return non_duplicate_rows(ctx, without_duplicates_at)
    holdout = ctx.config.holdout
    return [schema.candidate_rows(ctx.run, unit, holdout) for unit in schema.shard_units(ctx)]


def _training_sample(
    ctx: Context, rows_by_shard: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded uniform sample of eligible rows, at most k * max_points_per_centroid (FAISS
    would otherwise subsample on its own, unrecorded). Returns (vectors, ids)."""
    cfg = ctx.config
    units = schema.shard_units(ctx)
    counts = np.array([len(v) for v in rows_by_shard], dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        raise NoResultError(f"no samples: the {len(units)} input shards hold no decodable image")
    if cfg.clusters > total:
        raise NoResultError(f"--clusters {cfg.clusters} is more than the {total} valid samples")
    size = min(total, cfg.clusters * cfg.max_points_per_centroid)
    draw = np.random.default_rng(child_seed(cfg.seed, "kmeans sample"))
    chosen = np.sort(draw.choice(total, size, replace=False))
    starts = np.concatenate([[0], np.cumsum(counts)])
    vectors, ids = [], []
    for i, unit in enumerate(units):
        local = chosen[(chosen >= starts[i]) & (chosen < starts[i + 1])] - starts[i]
        if len(local) == 0:
            continue
        rows = rows_by_shard[i][local]
        vectors.append(schema.read_embeddings(ctx.run, unit)[rows].astype(np.float32))
        ids.append(schema.read_rows(ctx.run, unit, ["id"])["id"].to_numpy()[rows])
    return np.concatenate(vectors), np.concatenate(ids)


def train_clusters(
    ctx: Context, unit: str, folder: str = "cluster", without_duplicates_at: float | None = None
) -> dict:
    cfg = ctx.config
    x, ids = _training_sample(ctx, _eligible_rows(ctx, without_duplicates_at))
    kmeans = faiss.Kmeans(
        x.shape[1], cfg.clusters, niter=cfg.kmeans_iterations, spherical=True,
        seed=child_seed(cfg.seed, "kmeans"),
        max_points_per_centroid=len(x), min_points_per_centroid=1, verbose=False,
    )  # fmt: skip
    kmeans.train(x)
    centroids = kmeans.centroids.astype(np.float32)
    sizes = np.bincount(kmeans.index.search(x, 1)[1][:, 0], minlength=cfg.clusters)
    record = {
        "clusters": cfg.clusters,
        "dim": int(x.shape[1]),
        "iterations": cfg.kmeans_iterations,
        "seed": cfg.seed,
        "training_samples": len(x),
        "objective": [float(v) for v in kmeans.obj],
        "training_cluster_sizes": sizes.tolist(),
        "empty_clusters_in_training": int((sizes == 0).sum()),
    }
    schema.write_clustering(ctx.run, folder, centroids, ids, record)
    return {"samples": len(x)}


CANDIDATES = 2  # nearest centroids FAISS proposes; the choice between them is made in float64


def nearest_centroids(
    embeddings: np.ndarray, centroids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's nearest centroid and cosine distance `1 - <e, mu>`, the same on every machine.

    FAISS's float32 search proposes the nearest centroids, but its last digit depends on the
    thread count and the batch; the distances are recomputed in float64 from the stored
    values (exact products), and the nearest is chosen among the proposals in float64, ties
    to the lower centroid. Identical embeddings so get identical distances, and rankings break
    their ties by id as they should."""
    index = faiss.IndexFlatIP(centroids.shape[1])
    index.add(centroids)
    x = embeddings.astype(np.float32)
    _, proposed = index.search(x, min(CANDIDATES, len(centroids)))
    mu = centroids.astype(np.float64)
    similarity = np.einsum("nd,nkd->nk", x.astype(np.float64), mu[proposed])
    similarity[proposed < 0] = -np.inf
    best = np.lexsort((proposed, -similarity))[:, 0]  # highest first, ties to the lower index
    rows = np.arange(len(x))
    return proposed[rows, best].astype(np.int32), 1.0 - similarity[rows, best]


def assign_shard(
    ctx: Context, unit: str, centroids_from: str = "cluster", folder: str = "assign"
) -> dict:
    centroids = schema.read_centroids(ctx.run, centroids_from)
    embeddings = schema.read_embeddings(ctx.run, unit)
    rows = schema.valid_rows(ctx.run, unit)
    cluster = np.full(len(embeddings), -1, dtype=np.int32)
    distance = np.full(len(embeddings), np.nan, dtype=np.float64)
    if len(rows):
        cluster[rows], distance[rows] = nearest_centroids(embeddings[rows], centroids)
    schema.write_assignment(ctx.run, folder, unit, cluster, distance)
    return {"samples": len(rows)}
