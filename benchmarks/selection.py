"""Selection at scale: samples/s and peak memory of each selection stage (`select_stats`,
`select_repeats`, `select_plan`, `select`) at 1M, 10M and 100M samples.

No images and no model: the run directory is written directly with the files the upstream
stages leave there (embed rows, assignments, centroids, SemDeDup's per-shard tables, DBP's
second clustering, EL2N scores), 10,000 samples per shard, 1,000 clusters, 1,000 labels and a
repeated key in every shard; `select` reads no embeddings, so none are written. Every shard is
generated from its index alone, so any size is the same data cut at a different place.

Each (size, metric, stage) runs in a fresh subprocess that runs every unit of the stage in turn,
as one worker would: its peak RSS (`VmHWM`, imports included) is that of the stage's largest
unit, and seconds time the units, not the interpreter start and imports.

`--stream` sizes (100M by default) write only what `select_repeats` and `select_plan` read
(the per-shard columns `select_stats` would write, the sorted key hashes and the keys) and
measure those two stages: the per-shard stages hold one shard at a time whatever the size, and
the files of every stage at 100M would not fit the disk.

Usage, from the repository root (`-m` so that the checkout's packages are measured):
    python -m benchmarks.selection [--sizes 1000000 10000000] [--stream 100000000]
        [--metrics prototypicality random semdedup dbp el2n ccs] [--workdir /tmp]
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from curation.driver import prepare_stage, stage_digests
from curation.stage import Context
from curation.storage import Folder
from metrics.topk import hash_rank
from pipelines.data_pruning import duplicates, schema
from pipelines.data_pruning.config import PruneConfig
from pipelines.data_pruning.criteria import loaders, ranked
from pipelines.data_pruning.samples import ShardSamples

REPO = Path(__file__).resolve().parents[1]
METRICS = ranked()  # the criteria that rank embedded samples
STAGES = ("select_stats", "select_repeats", "select_plan", "select")
STREAMED = ("select_repeats", "select_plan")
PER_SHARD = 10_000
CLUSTERS = 1_000
LABELS = 1_000
DIM = 512
BUCKETS = 64  # as the dedup stage: buckets by cluster mod min(clusters, 64)
FAILED_FRACTION = 0.002
RATE = 0.5
DISK_PER_SAMPLE = {"full": 400, "stream": 110}  # bytes, with a margin


def keys(rows: np.ndarray) -> pa.StringArray:
    """`laion_000123456`-style keys of global rows, built as one byte buffer."""
    chars = np.empty((len(rows), 15), dtype=np.uint8)
    chars[:, :6] = np.frombuffer(b"laion_", dtype=np.uint8)
    chars[:, 6:] = rows[:, None] // 10 ** np.arange(8, -1, -1) % 10 + ord("0")
    offsets = np.arange(0, 15 * (len(rows) + 1), 15, dtype=np.int32)
    return pa.StringArray.from_buffers(len(rows), pa.py_buffer(offsets), pa.py_buffer(chars))


def shard(index: int) -> dict:
    """One shard's columns, from its index alone: skewed cluster sizes, CLIP-like distances,
    SemDeDup similarities to a random earlier sample, EL2N scores, and the key of the
    previous shard's first sample repeated at position 7."""
    rng = np.random.default_rng(index)
    start = index * PER_SHARD
    rows = np.arange(start, start + PER_SHARD, dtype=np.int64)
    if index:
        rows[7] = start - PER_SHARD  # the key (and so the hash) of an earlier sample
    valid = rng.random(PER_SHARD) >= FAILED_FRACTION
    weights = np.random.default_rng(0).lognormal(0.0, 1.0, CLUSTERS)
    p = weights / weights.sum()

    def clustering():
        cluster = np.where(valid, rng.choice(CLUSTERS, PER_SHARD, p=p), -1).astype(np.int32)
        distance = np.where(valid, rng.beta(4.0, 6.0, PER_SHARD) * 0.8, np.nan)
        return cluster, distance.astype(np.float32)

    cluster, distance = clustering()
    dbp_cluster, dbp_distance = clustering()
    similarity = rng.uniform(0.5, 1.0, PER_SHARD).astype(np.float32)
    nearest = (rng.random(PER_SHARD) * np.maximum(start + np.arange(PER_SHARD), 1)).astype(np.int64)
    lead = (rng.random(PER_SHARD) < 1e-3) | ~valid
    similarity[lead] = -np.inf
    return {
        "ids": schema.sample_ids(index, np.arange(PER_SHARD)), "rows": rows, "valid": valid,
        "label": rng.integers(0, LABELS, PER_SHARD), "cluster": cluster, "distance": distance,
        "dbp_cluster": dbp_cluster, "dbp_distance": dbp_distance, "similarity": similarity,
        "nearest": np.where(lead, -1, (nearest // PER_SHARD << 32) | (nearest % PER_SHARD)),
        "nearest_row": np.where(lead, -1, nearest), "hash": hash_rank(rows, 12345),
        "el2n": np.where(valid, rng.uniform(0.0, np.sqrt(2.0), PER_SHARD), np.nan),
    }  # fmt: skip


def embed_rows(c: dict, index: int) -> pa.Table:
    n = PER_SHARD
    errors = pa.array(np.where(c["valid"], None, "cannot decode 000000000.jpg").tolist(),
                      pa.string())  # fmt: skip
    return pa.table({
        "id": c["ids"], "key": keys(c["rows"]), "shard": np.full(n, index, dtype=np.int32),
        "position": np.arange(n, dtype=np.int32), "label": c["label"],
        "caption": pa.nulls(n, pa.string()), "nbytes": np.full(n, 30_000, dtype=np.int64),
        "clip_score": np.full(n, np.nan), "status": np.where(c["valid"], "ok", "failed"),
        "error": errors, "key_hash": c["hash"], "uid": pa.nulls(n, pa.string()),
    }, schema=schema.ROW_SCHEMA)  # fmt: skip


def dedup_table(c: dict) -> pa.Table:
    named = c["nearest_row"] >= 0
    nearest_key = keys(np.where(named, c["nearest_row"], 0)).to_numpy(zero_copy_only=False)
    nearest_key = pa.array(np.where(named, nearest_key, None).tolist(), pa.string())
    table = pa.table({"id": c["ids"], "max_similarity": c["similarity"], "nearest": c["nearest"],
                      "nearest_key": nearest_key}, schema=schema.DEDUP_SCHEMA)  # fmt: skip
    return table.filter(pa.array(c["valid"]))


def write_centroids(run: Folder) -> None:
    mu = np.random.default_rng(1).standard_normal((CLUSTERS, DIM)).astype(np.float32)
    for folder in ("cluster", "dbp_cluster"):
        schema.save_array(run, mu / np.linalg.norm(mu, axis=1, keepdims=True), folder,
                          "centroids.npy")  # fmt: skip


def build_run(path: Path, samples: int, metrics: list[str]) -> None:
    """Everything the selection stages read for `metrics`."""
    run = Folder(str(path))
    write_centroids(run)
    for index in range(samples // PER_SHARD):
        c, unit = shard(index), schema.unit_name(index)
        schema.write_table(run, embed_rows(c, index), "embed", f"{unit}.parquet")
        schema.write_assignment(run, "assign", unit, c["cluster"], c["distance"])
        if {"semdedup", "dbp"} & set(metrics):
            table = dedup_table(c)
            bucket = c["cluster"][c["valid"]] % BUCKETS
            for b in np.unique(bucket).tolist():
                schema.write_dedup(run, schema.bucket_name(b), unit, table.filter(bucket == b))
        if "dbp" in metrics:
            schema.write_assignment(run, "dbp_assign", unit, c["dbp_cluster"], c["dbp_distance"])
        if {"el2n", "ccs"} & set(metrics):
            schema.save_array(run, c["el2n"], "el2n", f"{unit}.npy")


def build_streamed(path: Path, samples: int, metrics: list[str]) -> None:
    """Only what `select_repeats` and `select_plan` read: each shard's selection columns (as
    `select_stats` writes them, the columns of every metric in `metrics`; SemDeDup's nearest
    members, which no plan reads, left out), sorted key hashes, and the keys."""
    run = Folder(str(path))
    write_centroids(run)
    columns = {name for m in metrics for name in loaders(config(str(path), 1, m))}
    for index in range(samples // PER_SHARD):
        c, unit = shard(index), schema.unit_name(index)
        extra = {}
        if "dedup" in columns:
            extra["similarity"] = c["similarity"].astype(np.float64)
        if "dbp_clusters" in columns:
            extra.update(dbp_cluster=c["dbp_cluster"],
                         dbp_distance=c["dbp_distance"].astype(np.float64))  # fmt: skip
        if "el2n" in columns:
            extra["el2n"] = c["el2n"]
        samples_ = ShardSamples(index, c["ids"], c["valid"], np.zeros(PER_SHARD, bool),
                                c["label"], c["cluster"], c["distance"].astype(np.float64),
                                extra)  # fmt: skip
        schema.write_shard_columns(run, unit, samples_.to_table())
        duplicates.write_hashes(run, unit, c["hash"], c["ids"])
        schema.write_table(run, pa.table({"key": keys(c["rows"])}), "embed", f"{unit}.parquet")


def config(run: str, shards: int, metric: str) -> PruneConfig:
    """CCS stratifies EL2N scores, so that it reads the el2n files like the el2n metric. The
    weights are named, as in a worker's config read from the run: left unset, the config would
    ask open_clip for the model's default weights, importing torch into the measurement."""
    return PruneConfig(
        shards=[f"/data/laion/{schema.unit_name(i)}.tar" for i in range(shards)],
        output=f"{run}/out", run_dir=run, rate=RATE, metric=metric, clusters=CLUSTERS,
        ccs_score="el2n", pretrained="openai",
    )  # fmt: skip


MODEL_LIBRARIES = {"torch", "faiss", "open_clip", "timm"}  # what selection must never import


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM). Not `ru_maxrss`: Linux carries the parent's
    peak over fork and exec into the child's, so it would report the generator's memory."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024  # kB


def measure_stage(run: str, shards: int, metric: str, stage: str) -> dict:
    """In the subprocess: run every unit of one selection stage, as one worker would."""
    from pipelines.data_pruning.pipeline import stages

    cfg = config(run, shards, metric)
    pipeline = stages(cfg)
    declared = next(s for s in pipeline if s.name == stage)
    importlib.import_module(declared.process.path.partition(":")[0])  # not timed
    imports = peak_rss_mib()
    ctx = Context(Folder(run), cfg, 1)
    Folder(run).remove(stage)
    units = prepare_stage(declared, ctx, stage_digests(pipeline, cfg)[stage])
    start = time.perf_counter()
    for unit in units:
        declared.process(ctx, unit)
    seconds = time.perf_counter() - start
    return {"stage": stage, "units": len(units), "seconds": seconds, "peak_mib": peak_rss_mib(),
            "imports_mib": imports,
            "model_libraries": sorted(MODEL_LIBRARIES & set(sys.modules))}  # fmt: skip


def run_stage(run: Path, shards: int, metric: str, stage: str) -> dict:
    command = [sys.executable, "-m", "benchmarks.selection", "--child", str(run), str(shards),
               metric, stage]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{stage} {metric} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def check_disk(workdir: Path, samples: int, kind: str) -> None:
    needed = samples * DISK_PER_SAMPLE[kind]
    free = shutil.disk_usage(workdir).free
    if free < needed:
        raise SystemExit(f"{workdir}: {free / 1e9:.1f} GB free, {needed / 1e9:.1f} GB needed")


def bench_size(workdir: Path, samples: int, metrics: list[str], streamed: bool) -> None:
    """Write one run directory for this size, run each metric's stages on it, remove it."""
    check_disk(workdir, samples, "stream" if streamed else "full")
    path = Path(tempfile.mkdtemp(prefix="selection-bench-", dir=workdir))
    try:
        start = time.perf_counter()
        (build_streamed if streamed else build_run)(path, samples, metrics)
        print(f"{samples:,} samples: written in {time.perf_counter() - start:.0f} s",
              file=sys.stderr, flush=True)  # fmt: skip
        for metric in metrics:
            for stage in STREAMED if streamed else STAGES:
                result = run_stage(path, samples // PER_SHARD, metric, stage)
                print(row({"metric": metric, "samples": samples, **result}), flush=True)
    finally:
        shutil.rmtree(path)


def row(r: dict) -> str:
    rate = r["samples"] / r["seconds"]
    return (f"| {r['metric']} | {r['stage']} | {r['samples']:,} | {r['units']:,} "
            f"| {r['seconds']:.1f} | {rate:,.0f} | {r['peak_mib']:,.0f} "
            f"| {r['imports_mib']:,.0f} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--stream", type=int, nargs="*", default=[100_000_000])
    parser.add_argument("--metrics", nargs="+", choices=METRICS, default=METRICS)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--child", nargs=4, metavar=("RUN", "SHARDS", "METRIC", "STAGE"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    if args.child:
        run, shards, metric, stage = args.child
        print(json.dumps(measure_stage(run, int(shards), metric, stage)))
        return
    bad = [s for s in [*args.sizes, *args.stream] if s % PER_SHARD]
    if bad:
        parser.error(f"sizes must be multiples of {PER_SHARD} (samples per shard): {bad}")
    print(
        "| metric | stage | samples | units | seconds | samples/s | peak RSS MiB "
        "| after imports MiB |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for samples in args.sizes:
        bench_size(args.workdir, samples, args.metrics, streamed=False)
    for samples in args.stream:
        bench_size(args.workdir, samples, args.metrics, streamed=True)


if __name__ == "__main__":
    main()
