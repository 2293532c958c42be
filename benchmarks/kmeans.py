"""k-means against what users would pick, and the assign stage against FAISS's search alone.

- ours: the cluster stage's FAISS spherical k-means on a seeded sample of
  `clusters x points-per-centroid` points, then every point assigned as the assign stage does
  (`nearest_centroids`, 10,000 points at a time), for each (iterations, points per centroid).
- kmeans, minibatch: scikit-learn's `KMeans` and `MiniBatchKMeans` with their defaults
  (k-means++ initialisation) on every point; `fit` labels every point.
- assign: per shard of 10,000 points, FAISS's `search` for the nearest centroid (float32
  points given) against `nearest_centroids` and against the whole `assign` unit (read the
  shard's embeddings, decide, write), on a run directory written for it.

The objective is the spherical one: the mean cosine of each point to its assigned centroid,
normalised (sklearn's centroids are not). Seconds are wall-clock for training and assigning
every point; CPU seconds too (less sensitive to other jobs on a shared machine).

The points (float16, as the embed stage stores them) are a mixture with CLIP-like structure,
generated once and cached (`mixture`). Each measurement runs in a fresh subprocess limited
to `--threads` threads. sklearn's `KMeans` at 1M x 512 and k = 1,000 takes hours on two
cores: give it its own `--samples`.

Usage, from the repository root (scikit-learn is in the `dev` extra):
    python -m benchmarks.kmeans [--samples 1000000] [--clusters 1000] [--threads 2]
        [--methods ours minibatch kmeans assign] [--iterations 5 10 20 40]
        [--points-per-centroid 32 64 128 256] [--workdir /tmp]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DIM = 512
SHARD = 10_000  # points per shard, as an embed unit of web data
CONCEPTS = 4_000  # mixture components: more than k, so clusters merge concepts
TOPICS = 100  # concepts share a topic direction
RANK = 10  # directions of each concept's own spread
DUPLICATES = 0.03  # near-copies of another point (cosine about 0.9998)
SEED = 0
METHODS = ("ours", "minibatch", "kmeans", "assign")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def mixture(samples: int, seed: int = SEED) -> np.ndarray:
    """Unit vectors (float16) with the structure of CLIP image embeddings of web data:

    - a shared direction (CLIP embeddings sit in a narrow cone: mean pairwise cosine about
      0.25 here), 100 topics and 4,000 concepts, each concept's centre the sum of the shared
      direction, its topic's and its own;
    - concept sizes log-normal with sigma 1.5 (heavy-tailed: the largest concepts hold
      hundreds of times the median);
    - within a concept, spread half along 10 directions of its own and half isotropic, its
      scale log-normal (median 1.2, sigma 0.25), so that points lie at cosine 0.5-0.8 of
      their concept's centre;
    - 3% near-duplicates of other points."""
    rng = np.random.default_rng(seed)
    shared = _unit(rng.standard_normal(DIM))
    topics = _unit(rng.standard_normal((TOPICS, DIM)))
    own = _unit(rng.standard_normal((CONCEPTS, DIM)))
    centres = _unit(shared + 0.5 * topics[rng.integers(TOPICS, size=CONCEPTS)] + 0.7 * own)
    scales = rng.lognormal(np.log(1.2), 0.25, CONCEPTS)
    weights = rng.lognormal(0.0, 1.5, CONCEPTS)
    member = rng.choice(CONCEPTS, samples, p=weights / weights.sum())
    order = np.argsort(member, kind="stable")
    bounds = np.searchsorted(member[order], np.arange(CONCEPTS + 1))
    out = np.empty((samples, DIM), dtype=np.float16)
    for concept in range(CONCEPTS):
        rows = order[bounds[concept] : bounds[concept + 1]]
        basis = _unit(rng.standard_normal((RANK, DIM)))
        low = rng.standard_normal((len(rows), RANK)) @ basis / np.sqrt(RANK)
        iso = rng.standard_normal((len(rows), DIM)) / np.sqrt(DIM)
        out[rows] = _unit(centres[concept] + scales[concept] * np.sqrt(0.5) * (low + iso))
    copies = np.flatnonzero(rng.random(samples) < DUPLICATES)
    sources = rng.integers(samples, size=len(copies))
    noise = rng.standard_normal((len(copies), DIM)) * 0.02 / np.sqrt(DIM)
    out[copies] = _unit(out[sources].astype(np.float64) + noise)
    return out


def points(workdir: Path, samples: int) -> np.ndarray:
    """The cached mixture of this size (written on first use, 1 KB a point)."""
    path = workdir / f"kmeans-mixture-{samples}-{DIM}-{SEED}.npy"
    if not path.exists():
        start = time.perf_counter()
        np.save(path.with_suffix(".tmp.npy"), mixture(samples))
        path.with_suffix(".tmp.npy").rename(path)
        print(f"{samples:,} points generated in {time.perf_counter() - start:.0f} s",
              file=sys.stderr)  # fmt: skip
    return np.load(path)


def spherical_objective(x: np.ndarray, centroids: np.ndarray, labels: np.ndarray) -> float:
    """Mean cosine of each point to its (normalised) assigned centroid, in float64."""
    mu = _unit(centroids.astype(np.float64))
    total = 0.0
    for start in range(0, len(x), SHARD):
        part = slice(start, start + SHARD)
        total += float(np.einsum("nd,nd->n", x[part].astype(np.float64), mu[labels[part]]).sum())
    return total / len(x)


class Clock:
    """Wall and CPU seconds since it started."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def measure_ours(x16: np.ndarray, clusters: int, iterations: int, per_centroid: int) -> dict:
    """Train on the seeded sample, then assign every point shard by shard."""
    from pipelines.data_pruning.cluster import nearest_centroids, spherical_kmeans

    clock = Clock()
    draw = np.random.default_rng(SEED)
    size = min(len(x16), clusters * per_centroid)
    sample = x16[np.sort(draw.choice(len(x16), size, replace=False))].astype(np.float32)
    kmeans = spherical_kmeans(sample, clusters, iterations, SEED)
    centroids = kmeans.centroids.astype(np.float32)
    train_s, _ = clock.read()
    labels = np.empty(len(x16), dtype=np.int64)
    distance = np.empty(len(x16), dtype=np.float64)
    for start in range(0, len(x16), SHARD):
        part = slice(start, start + SHARD)
        labels[part], distance[part] = nearest_centroids(x16[part], centroids)
    seconds, cpu = clock.read()
    return {"train_s": train_s, "seconds": seconds, "cpu_s": cpu, "training_points": size,
            "objective": float(1.0 - distance.mean())}  # fmt: skip


def measure_sklearn(x16: np.ndarray, clusters: int, method: str) -> dict:
    """sklearn's defaults, as a user would call them."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    x = x16.astype(np.float32)
    model = (KMeans if method == "kmeans" else MiniBatchKMeans)(clusters, random_state=SEED)
    clock = Clock()
    model.fit(x)
    seconds, cpu = clock.read()
    objective = spherical_objective(x16, model.cluster_centers_, model.labels_)
    return {"seconds": seconds, "cpu_s": cpu, "iterations_run": int(model.n_iter_),
            "objective": objective}  # fmt: skip


def _assign_run(folder: Path, x16: np.ndarray, centroids: np.ndarray, threads: int):
    """A run directory holding what the assign stage reads: each shard's rows and
    embeddings, and the centroids. Returns its context."""
    import pyarrow as pa

    from curation.stage import Context
    from curation.storage import Folder
    from pipelines.data_pruning import schema
    from pipelines.data_pruning.config import PruneConfig

    run = Folder(str(folder))
    shards = [f"/data/{schema.unit_name(i)}.tar" for i in range(len(x16) // SHARD)]
    for i in range(len(shards)):
        n = SHARD
        rows = pa.table({"key": [f"{i:05d}{j:05d}" for j in range(n)],
                         "position": np.arange(n, dtype=np.int32),
                         "label": np.full(n, -1), "caption": pa.nulls(n, pa.string()),
                         "nbytes": np.zeros(n, dtype=np.int64), "clip_score": np.full(n, np.nan),
                         "status": [schema.OK] * n, "error": pa.nulls(n, pa.string()),
                         "key_hash": np.zeros(n, dtype=np.uint64),
                         "uid": pa.nulls(n, pa.string())},
                        schema=schema.CONTENT_SCHEMA)  # fmt: skip
        schema.write_content(run, f"c{i}", rows, x16[i * n : (i + 1) * n], {"samples": n})
        schema.link_content(run, schema.unit_name(i), i, f"c{i}")
    schema.write_clustering(run, "cluster", centroids, np.zeros(0, np.int64), {})
    config = PruneConfig(shards=shards, output=str(folder / "out"), run_dir=str(folder),
                         rate=0.5, pretrained="random")  # fmt: skip
    return Context(run, config, threads)


def measure_assign(x16: np.ndarray, clusters: int, workdir: Path, threads: int) -> dict:
    """Per shard, interleaved so that other jobs slow all three alike: FAISS's search alone
    (with the float32 conversion the old assign made), `nearest_centroids`, and the whole
    assign unit."""
    import faiss

    from pipelines.data_pruning.cluster import assign_shard, nearest_centroids, spherical_kmeans
    from pipelines.data_pruning.schema import unit_name

    draw = np.random.default_rng(SEED)
    sample = x16[draw.choice(len(x16), min(len(x16), clusters * 64), replace=False)]
    centroids = spherical_kmeans(sample.astype(np.float32), clusters, 5, SEED).centroids
    index = faiss.IndexFlatIP(DIM)
    index.add(centroids)
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        ctx = _assign_run(Path(folder), x16, centroids, threads)
        calls = {
            "search": lambda i, shard: index.search(shard.astype(np.float32), 1),
            "nearest_centroids": lambda i, shard: nearest_centroids(shard, centroids),
            "assign_unit": lambda i, shard: assign_shard(ctx, unit_name(i)),
        }
        seconds = dict.fromkeys(calls, 0.0)
        for i in range(len(x16) // SHARD):
            shard = x16[i * SHARD : (i + 1) * SHARD]
            for name, call in calls.items():
                start = time.perf_counter()
                call(i, shard)
                seconds[name] += time.perf_counter() - start
    return {**{f"{k}_s": v for k, v in seconds.items()},
            "nearest_over_search": seconds["nearest_centroids"] / seconds["search"],
            "unit_over_search": seconds["assign_unit"] / seconds["search"]}  # fmt: skip


def child(args: argparse.Namespace) -> dict:
    """One measurement, in this (fresh) process."""
    import faiss
    import torch

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    x16 = points(args.workdir, args.samples)
    if args.child == "ours":
        return measure_ours(x16, args.clusters, args.iterations[0], args.points_per_centroid[0])
    if args.child == "assign":
        return measure_assign(x16, args.clusters, args.workdir, args.threads)
    return measure_sklearn(x16, args.clusters, args.child)


def run_child(args: argparse.Namespace, method: str, iterations: int = 0,
              per_centroid: int = 0) -> dict:  # fmt: skip
    command = [sys.executable, "-m", "benchmarks.kmeans", "--child", method,
               "--samples", str(args.samples), "--clusters", str(args.clusters),
               "--threads", str(args.threads), "--workdir", str(args.workdir),
               "--iterations", str(iterations),
               "--points-per-centroid", str(per_centroid)]  # fmt: skip
    env = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, str(args.threads))}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                            check=False)  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{result.stderr}")
    found = json.loads(result.stdout.strip().splitlines()[-1])
    return {"method": method, "samples": args.samples, "iterations": iterations or None,
            "points_per_centroid": per_centroid or None, **found}  # fmt: skip


def row(r: dict) -> str:
    if r["method"] == "assign":
        return (f"| assign | {r['samples']:,} | search {r['search_s']:.1f} s, nearest_centroids "
                f"{r['nearest_centroids_s']:.1f} s ({r['nearest_over_search']:.2f}x), unit "
                f"{r['assign_unit_s']:.1f} s ({r['unit_over_search']:.2f}x) |")  # fmt: skip
    if r["method"] == "ours":
        setting = f"{r['iterations']} it, {r['training_points']:,} training points"
    else:
        setting = f"defaults ({r['iterations_run']} iterations run)"
    return (f"| {r['method']} | {r['samples']:,} | {setting} | {r['seconds']:.1f} "
            f"| {r['cpu_s']:.1f} | {r['objective']:.4f} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--clusters", type=int, default=1_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--iterations", type=int, nargs="+", default=[5, 10, 20, 40])
    parser.add_argument("--points-per-centroid", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    if args.samples % SHARD:
        parser.error(f"--samples must be a multiple of {SHARD}")
    points(args.workdir, args.samples)  # generated once, before any timing
    print("| method | points | setting | seconds | CPU seconds | objective |")
    print("|---|---:|---|---:|---:|---:|")
    for method in args.methods:
        if method == "ours":
            runs = [(it, ppc) for ppc in args.points_per_centroid for it in args.iterations]
        else:
            runs = [(0, 0)]
        for iterations, per_centroid in runs:
            result = run_child(args, method, iterations, per_centroid)
            print(row(result), flush=True)
            print(json.dumps(result), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
