"""Selection at scale: samples/s and peak memory of the `select` stage at 1M and 10M samples.

No images and no model: the run directory is written directly with the files the upstream
stages leave there (embed rows, assignments, centroids, SemDeDup and DBP outputs, EL2N
scores), 10,000 samples per shard and 1,000 clusters; `select` reads no embeddings, so none
are written. Each (size, metric) runs `select` in a fresh subprocess, so its peak RSS
(imports included: the package imports torch) is that of selection alone; seconds time the
`select` unit itself, not the interpreter start and imports.

Usage, from the repository root (`-m` so that the checkout's packages are measured, not an
installed copy):
    python -m benchmarks.selection [--sizes 1000000 10000000]
        [--metrics prototypicality random semdedup dbp el2n ccs] [--workdir /tmp]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from curation.stage import Context
from curation.storage import Folder
from pipelines.data_pruning.config import PruneConfig
from pipelines.data_pruning.criteria import CRITERIA
from pipelines.data_pruning.schema import ROW_SCHEMA, save_array, unit_name, write_table

REPO = Path(__file__).resolve().parents[1]
METRICS = list(CRITERIA)
PER_SHARD = 10_000
CLUSTERS = 1_000
DIM = 512
BUCKETS = 64  # as the dedup stage: buckets by cluster mod min(clusters, 64)
FAILED_FRACTION = 0.002
RATE = 0.5
DISK_PER_SAMPLE = 200  # bytes: the run directory plus select's outputs (~100), with a margin


def row_ids(rows: np.ndarray) -> np.ndarray:
    """Internal ids (shard << 32 | position) of global rows."""
    return (rows // PER_SHARD << 32) | (rows % PER_SHARD)


def keys(start: int, count: int) -> pa.StringArray:
    """`laion_000123456`-style keys for global rows [start, start + count), built as one byte
    buffer: a Python string per key would dominate the generation time."""
    index = np.arange(start, start + count, dtype=np.int64)
    chars = np.empty((count, 15), dtype=np.uint8)
    chars[:, :6] = np.frombuffer(b"laion_", dtype=np.uint8)
    chars[:, 6:] = index[:, None] // 10 ** np.arange(8, -1, -1) % 10 + ord("0")
    offsets = np.arange(0, 15 * (count + 1), 15, dtype=np.int32)
    return pa.StringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(chars))


def write_embed(run: Folder, failed: np.ndarray, rng: np.random.Generator) -> None:
    """The embed stage's row tables: no captions, a few failed samples with their error."""
    for shard, start in enumerate(range(0, len(failed), PER_SHARD)):
        bad = failed[start : start + PER_SHARD]
        n = len(bad)
        errors: list[str | None] = [None] * n
        for row in np.flatnonzero(bad):
            errors[row] = "cannot decode 000000000.jpg: not a recognised image format"
        table = pa.table(
            {
                "id": row_ids(np.arange(start, start + n)),
                "key": keys(start, n),
                "shard": np.full(n, shard, dtype=np.int32),
                "position": np.arange(n, dtype=np.int32),
                "label": rng.integers(0, 1000, n),
                "caption": pa.nulls(n, pa.string()),
                "nbytes": rng.integers(5_000, 60_000, n),
                "clip_score": np.full(n, np.nan),
                "status": np.where(bad, "failed", "ok"),
                "error": pa.array(errors, pa.string()),
                "key_hash": np.arange(start, start + n, dtype=np.uint64) * np.uint64(2654435761),
                "uid": pa.nulls(n, pa.string()),
            },
            schema=ROW_SCHEMA,
        )
        write_table(run, table, "embed", f"{unit_name(shard)}.parquet")


def write_clustering(run: Folder, valid: np.ndarray, rng: np.random.Generator,
                     centroids: str, assigned: str) -> np.ndarray:  # fmt: skip
    """Centroids and per-shard assignments: skewed cluster sizes (log-normal weights), cosine
    distances in a CLIP-like range, -1/nan for failed samples. Returns the clusters."""
    mu = rng.standard_normal((CLUSTERS, DIM)).astype(np.float32)
    save_array(run, mu / np.linalg.norm(mu, axis=1, keepdims=True), centroids, "centroids.npy")
    weights = rng.lognormal(0.0, 1.0, CLUSTERS)
    cluster = rng.choice(CLUSTERS, len(valid), p=weights / weights.sum()).astype(np.int32)
    cluster[~valid] = -1
    distance = (rng.beta(4.0, 6.0, len(valid)) * 0.8).astype(np.float32)
    distance[~valid] = np.nan
    for shard, start in enumerate(range(0, len(valid), PER_SHARD)):
        part = slice(start, start + PER_SHARD)
        table = pa.table({"cluster": cluster[part], "distance": distance[part]})
        write_table(run, table, assigned, f"{unit_name(shard)}.parquet")
    return cluster


def write_dedup(run: Folder, cluster: np.ndarray, rng: np.random.Generator) -> None:
    """SemDeDup's bucket tables: every valid sample's highest similarity to an earlier member
    of its cluster and that member's id; each cluster's first member repeats nothing."""
    rows = np.flatnonzero(cluster >= 0)
    rows = rows[np.argsort(cluster[rows], kind="stable")]
    grouped = cluster[rows]
    first = np.searchsorted(grouped, grouped, side="left")
    size = np.searchsorted(grouped, grouped, side="right") - first
    nearest = row_ids(rows[first + (rng.random(len(rows)) * size).astype(np.int64)])
    similarity = rng.uniform(0.5, 1.0, len(rows)).astype(np.float32)
    leads = np.arange(len(rows)) == first
    similarity[leads], nearest[leads] = -np.inf, -1
    bucket = grouped % BUCKETS
    for b in range(BUCKETS):
        mine = bucket == b
        table = pa.table({"id": row_ids(rows[mine]), "max_similarity": similarity[mine],
                          "nearest": nearest[mine]})  # fmt: skip
        write_table(run, table, "dedup", f"{b:05d}.parquet")


def write_el2n(run: Folder, valid: np.ndarray, rng: np.random.Generator) -> None:
    scores = rng.uniform(0.0, np.sqrt(2.0), len(valid))
    scores[~valid] = np.nan
    for shard, start in enumerate(range(0, len(valid), PER_SHARD)):
        save_array(run, scores[start : start + PER_SHARD], "el2n", f"{unit_name(shard)}.npy")


def build_run(path: Path, samples: int, metrics: list[str]) -> None:
    """Everything `select` reads for `metrics`, seeded."""
    run = Folder(str(path))
    rng = np.random.default_rng(0)
    valid = rng.random(samples) >= FAILED_FRACTION
    write_embed(run, ~valid, rng)
    cluster = write_clustering(run, valid, rng, "cluster", "assign")
    if {"semdedup", "dbp"} & set(metrics):
        write_dedup(run, cluster, rng)
    if "dbp" in metrics:
        write_clustering(run, valid, rng, "dbp_cluster", "dbp_assign")
    if {"el2n", "ccs"} & set(metrics):
        write_el2n(run, valid, rng)


def config(run: str, shards: int, metric: str) -> PruneConfig:
    """CCS stratifies EL2N scores, so that it reads the el2n files like the el2n metric."""
    return PruneConfig(
        shards=[f"/data/laion/{unit_name(i)}.tar" for i in range(shards)],
        output=f"{run}/out",
        run_dir=run,
        rate=RATE,
        metric=metric,
        clusters=CLUSTERS,
        ccs_score="el2n",
    )


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM). Not `ru_maxrss`: Linux carries the parent's
    peak over fork and exec into the child's, so it would report the generator's memory."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024  # kB


def measure_select(run: str, shards: int, metric: str) -> dict:
    """In the subprocess: run the `select` unit and report its time, the process's peak RSS
    and, apart, the RSS its imports alone reached (the package imports torch)."""
    from pipelines.data_pruning.select import select_samples

    imports = peak_rss_mib()
    ctx = Context(Folder(run), config(run, shards, metric), 1)
    start = time.perf_counter()
    stats = select_samples(ctx, "all")
    seconds = time.perf_counter() - start
    return {**stats, "seconds": seconds, "peak_mib": peak_rss_mib(), "imports_mib": imports}


def run_metric(run: Path, shards: int, metric: str) -> dict:
    command = [sys.executable, "-m", "benchmarks.selection", "--child", str(run), str(shards),
               metric]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"select {metric} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def check_disk(workdir: Path, samples: int) -> None:
    needed = samples * DISK_PER_SAMPLE
    free = shutil.disk_usage(workdir).free
    if free < needed:
        raise SystemExit(f"{workdir}: {free / 1e9:.1f} GB free, {needed / 1e9:.1f} GB needed")


def bench_size(workdir: Path, samples: int, metrics: list[str]) -> None:
    """Write one run directory for this size, select from it once per metric, remove it."""
    check_disk(workdir, samples)
    path = Path(tempfile.mkdtemp(prefix="selection-bench-", dir=workdir))
    try:
        start = time.perf_counter()
        build_run(path, samples, metrics)
        seconds = time.perf_counter() - start
        print(f"{samples:,} samples: run directory written in {seconds:.1f} s", file=sys.stderr)
        for metric in metrics:
            result = {"metric": metric, **run_metric(path, samples // PER_SHARD, metric)}
            print(row(result), flush=True)
    finally:
        shutil.rmtree(path)


def row(r: dict) -> str:
    rate = r["samples"] / r["seconds"]
    return (f"| {r['metric']} | {r['samples']:,} | {r['seconds']:.1f} | {rate:,.0f} "
            f"| {r['peak_mib']:,.0f} | {r['imports_mib']:,.0f} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--metrics", nargs="+", choices=METRICS, default=METRICS)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--child", nargs=3, metavar=("RUN", "SHARDS", "METRIC"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    if args.child:
        run, shards, metric = args.child
        print(json.dumps(measure_select(run, int(shards), metric)))
        return
    bad = [s for s in args.sizes if s % PER_SHARD]
    if bad:
        parser.error(f"sizes must be multiples of {PER_SHARD} (samples per shard): {bad}")
    print("| metric | samples | seconds | samples/s | peak RSS MiB | after imports MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for samples in args.sizes:
        bench_size(args.workdir, samples, args.metrics)


if __name__ == "__main__":
    main()
