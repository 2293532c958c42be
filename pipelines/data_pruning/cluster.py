"""cluster: spherical k-means (FAISS) on a seeded, recorded sample; assign: every sample's
nearest centroid and cosine distance.

DBP clusters twice (ALGORITHMS.md: deduplicate first, then cluster): the same functions run
as `dbp_cluster`/`dbp_assign` with SemDeDup's duplicates left out of the training sample, and
SemDeDup with `--dedup-clusters` as `dedup_cluster`/`dedup_assign`, with its own k.

With `--device cuda`, k-means trains on the GPU when FAISS has GPU support (`curate[gpu]`),
else on the CPU (`kmeans_device` says which, and the record keeps it); the assignment's
float32 products run on the device with torch, its float64 decision on the CPU.
"""

from __future__ import annotations

import faiss
import numpy as np
import torch

from curation.errors import CurateError, NoResultError
from curation.seeds import child_seed
from curation.stage import Context, Phases
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
    ctx: Context, rows_by_shard: list[np.ndarray], clusters: int
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded uniform sample of eligible rows, at most k * max_points_per_centroid (FAISS
    would otherwise subsample on its own, unrecorded). Returns (vectors, ids)."""
    cfg = ctx.config
    units = schema.shard_units(ctx)
    counts = np.array([len(v) for v in rows_by_shard], dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        raise NoResultError(f"no samples: the {len(units)} input shards hold no decodable image")
    if clusters > total:
        raise NoResultError(f"{clusters} clusters are more than the {total} valid samples "
                            "(--clusters, --dedup-clusters)")  # fmt: skip
    size = min(total, clusters * cfg.max_points_per_centroid)
    draw = np.random.default_rng(child_seed(cfg.seed, "kmeans sample"))
    chosen = np.sort(draw.choice(total, size, replace=False))
    starts = np.concatenate([[0], np.cumsum(counts)])
    vectors, ids, first = [], [], None
    for i, unit in enumerate(units):
        local = chosen[(chosen >= starts[i]) & (chosen < starts[i + 1])] - starts[i]
        if len(local) == 0:
            continue
        rows = rows_by_shard[i][local]
        vectors.append(schema.read_embeddings(ctx.run, unit)[rows].astype(np.float32))
        first = cfg.shards[i] if first is None else first
        check_width(vectors[-1].shape[1], vectors[0].shape[1], cfg.shards[i], first)
        ids.append(schema.read_rows(ctx.run, unit, ["id"])["id"].to_numpy()[rows])
    return np.concatenate(vectors), np.concatenate(ids)


def check_width(width: int, expected: int, shard: str, other: str) -> None:
    """Embeddings of one model throughout: precomputed ones can mix models (a b32 and an l14
    file), which no clustering can use."""
    if width != expected:
        raise CurateError(f"the embeddings of {shard} have {width} values and {other}'s "
                          f"{expected}: every shard's must come from one model")  # fmt: skip


def kmeans_device(device: str) -> str:
    """Where k-means runs for `--device`: the GPU when FAISS was built with GPU support."""
    if not device.startswith("cuda"):
        return "cpu"
    return device if faiss.get_num_gpus() > 0 else "cpu"


def gpu_fallback_note(device: str) -> str | None:
    """The one line a run on a GPU prints when its k-means must run on the CPU."""
    if not device.startswith("cuda") or kmeans_device(device) != "cpu":
        return None
    return (f"curate: note: --device {device}: this FAISS has no GPU support, so k-means runs "
            "on the CPU (install curate[gpu] for faiss-gpu)")  # fmt: skip


def _gpu_index(dim: int, device: str) -> faiss.Index:
    """An inner-product index on the GPU `device` names (cuda or cuda:N), holding its GPU
    resources (FAISS's way: freed with the index, not before)."""
    _, _, number = device.partition(":")
    resources = faiss.StandardGpuResources()
    index = faiss.index_cpu_to_gpu(resources, int(number or 0), faiss.IndexFlatIP(dim))
    index.referenced_objects = [resources]
    return index


def spherical_kmeans(
    x: np.ndarray, clusters: int, iterations: int, seed: int, device: str = "cpu"
) -> faiss.Kmeans:
    """FAISS spherical k-means on all of `x` (already the seeded sample: no subsampling),
    on `device` (cpu, or a GPU when `kmeans_device` allows it)."""
    kmeans = faiss.Kmeans(
        x.shape[1], clusters, niter=iterations, spherical=True, seed=seed,
        max_points_per_centroid=len(x), min_points_per_centroid=1, verbose=False,
    )  # fmt: skip
    if device != "cpu":
        kmeans.index = _gpu_index(x.shape[1], device)
    kmeans.train(x)
    return kmeans


def train_clusters(ctx: Context, unit: str, folder: str = "cluster",
                   without_duplicates_at: float | None = None,
                   clusters: int | None = None) -> dict:  # fmt: skip
    """k-means with the run's `--clusters` (or `clusters`), recorded in `folder`."""
    cfg = ctx.config
    k = cfg.clusters if clusters is None else clusters
    phases = Phases()
    with phases("read"):
        x, ids = _training_sample(ctx, _eligible_rows(ctx, without_duplicates_at), k)
    device = kmeans_device(cfg.device)
    with phases("model"):
        kmeans = spherical_kmeans(x, k, cfg.kmeans_iterations, child_seed(cfg.seed, "kmeans"),
                                  device)  # fmt: skip
        centroids = kmeans.centroids.astype(np.float32)
        sizes = np.bincount(kmeans.index.search(x, 1)[1][:, 0], minlength=k)
    record = {
        "clusters": k,
        "dim": int(x.shape[1]),
        "iterations": cfg.kmeans_iterations,
        "seed": cfg.seed,
        "training_samples": len(x),
        "objective": [float(v) for v in kmeans.obj],
        "training_cluster_sizes": sizes.tolist(),
        "empty_clusters_in_training": int((sizes == 0).sum()),
    }
    if device != "cpu":
        record["device"] = device
    with phases("write"):
        schema.write_clustering(ctx.run, folder, centroids, ids, record)
    return {"samples": len(x), **phases.stats()}


SCORES_AT_ONCE = 2**24  # float32 products in one BLAS call (64 MB): large calls use threads well
ROWS_AT_ONCE = 4096  # rows recomputed in float64 together: 16 MB at d = 512, reused from the heap
UNIT_ROUNDOFF = 2.0**-24  # float32


def _as(rows: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """`rows` converted by torch (exact widening; several times faster than numpy's from
    float16)."""
    return torch.from_numpy(np.ascontiguousarray(rows)).to(dtype).numpy()


def _dot64(x: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Row-wise inner products in float64 of float32 rows `x` (widened exactly by numpy, several
    times faster than from float16), each row summed in the same order whatever the rows around
    it."""
    return np.einsum("nd,nd->n", x.astype(np.float64), mu)


def _products(x: np.ndarray, centroids_t: np.ndarray | torch.Tensor) -> np.ndarray:
    """The rows' float32 inner products with every centroid: numpy's BLAS on the CPU (faster
    here than torch's), torch on a GPU. `centroids_t` is d x k, contiguous."""
    if isinstance(centroids_t, np.ndarray):
        return x @ centroids_t
    return (torch.from_numpy(x).to(centroids_t.device) @ centroids_t).cpu().numpy()


def _nearest_in_chunk(x: np.ndarray, scores: np.ndarray, mu: np.ndarray,
                      largest: float) -> np.ndarray:  # fmt: skip
    """The float64 nearest centroid of each row (ties to the lower index), from its float32
    products `scores` (overwritten). Each product's rounding error is at most
    `d * 2^-24 * |x| * |mu|` (`error` is twice that): a centroid more than 2 `error` below
    the best product is below it in float64 too, so a row whose second best is that far
    below is decided, and the others (near-ties, rare) compare in float64 the centroids
    within 2 `error` of their best."""
    rows = np.arange(len(x))
    first = scores.argmax(axis=1)
    best = scores[rows, first].astype(np.float64)
    scores[rows, first] = -np.inf
    second = scores.max(axis=1) if scores.shape[1] > 1 else np.full(len(x), -np.inf)
    error = 2 * x.shape[1] * UNIT_ROUNDOFF * np.linalg.norm(x, axis=1) * largest
    for row in np.flatnonzero(best - second <= 2 * error):
        scores[row, first[row]] = best[row]
        reach = np.flatnonzero(scores[row] >= best[row] - 2 * error[row])  # ascending
        similarity = _dot64(np.broadcast_to(x[row], (len(reach), x.shape[1])), mu[reach])
        first[row] = reach[np.argmax(similarity)]  # the first maximum: the lower index
    return first


def nearest_centroids(
    embeddings: np.ndarray, centroids: np.ndarray, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's nearest centroid and cosine distance `1 - <e, mu>`, the same on every machine,
    thread count, batch and device: the nearest in float64 over all centroids, ties to the
    lower index, found from float32 products on `device` (see `_nearest_in_chunk`), and the
    distance recomputed in float64 from the stored values. Identical embeddings so get
    identical distances, and rankings break their ties by id as they should."""
    mu = centroids.astype(np.float64)
    on_device = np.ascontiguousarray(centroids.T, dtype=np.float32)
    if device != "cpu":
        on_device = torch.from_numpy(on_device).to(device)
    largest = float(np.linalg.norm(mu, axis=1).max())
    step = max(1, SCORES_AT_ONCE // len(centroids))
    cluster = np.empty(len(embeddings), dtype=np.int32)
    similarity = np.empty(len(embeddings), dtype=np.float64)
    for start in range(0, len(embeddings), step):
        x = _as(embeddings[start : start + step], torch.float32)
        nearest = _nearest_in_chunk(x, _products(x, on_device), mu, largest)
        cluster[start : start + len(x)] = nearest
        for at in range(0, len(x), ROWS_AT_ONCE):
            rows = slice(at, at + ROWS_AT_ONCE)
            similarity[start + at : start + at + len(x[rows])] = _dot64(x[rows], mu[nearest[rows]])
    return cluster, 1.0 - similarity


def assign_shard(
    ctx: Context, unit: str, centroids_from: str = "cluster", folder: str = "assign"
) -> dict:
    phases = Phases()
    with phases("read"):
        centroids = schema.read_centroids(ctx.run, centroids_from)
        embeddings = schema.read_embeddings(ctx.run, unit)
        rows = schema.valid_rows(ctx.run, unit)
    cluster = np.full(len(embeddings), -1, dtype=np.int32)
    distance = np.full(len(embeddings), np.nan, dtype=np.float64)
    if len(rows):
        check_width(embeddings.shape[1], centroids.shape[1], ctx.config.shards[int(unit)],
                    "the clustering")  # fmt: skip
    with phases("model"):
        if len(rows):
            cluster[rows], distance[rows] = nearest_centroids(embeddings[rows], centroids,
                                                              ctx.config.device)  # fmt: skip
    with phases("write"):
        schema.write_assignment(ctx.run, folder, unit, cluster, distance)
    return {"samples": len(rows), **phases.stats()}
