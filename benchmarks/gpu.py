"""The GPU path: embed images/s against the model-only forward, and k-means on the GPU.

- embed: the whole embed unit (read the tar, decode in the worker's threads to uint8, batch
  through pinned memory, normalise on the device, float16 autocast forward, write) over
  generated photo-like JPEGs, against the forward alone on batches already on the device.
- k-means: the cluster stage's spherical k-means (faiss-gpu when installed, else CPU FAISS:
  the results say which) on the k-means benchmark's mixture, then the assignment of every
  point (`nearest_centroids`, float32 products on the device, float64 decision on the CPU);
  seconds and the spherical objective.

Run by benchmarks/gpu.sh; `--device cpu` runs the same code on the CPU (the tests do).
Results go to `--out` as a markdown table, with the JSON beside it (`.json`).

Usage: python -m benchmarks.gpu [--device cuda] [--images 4096] [--batch-size 256]
    [--model ViT-B-32] [--points 500000] [--clusters 1000] [--iterations 20] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.kmeans import points
from benchmarks.throughput import time_embed, time_model_only, write_shards

SHARDS = 8


def embed_rates(work: Path, args: argparse.Namespace) -> dict:
    """Images/s of the embed units and of the model alone (after a warm-up unit)."""
    from curation.stage import Context
    from curation.storage import Folder
    from pipelines.data_pruning.config import prune_config
    from pipelines.data_pruning.embed import decode_threads
    from pipelines.data_pruning.workers import setup_embedder

    (work / "shards").mkdir(parents=True)
    shards = write_shards(work / "shards", args.images, SHARDS)
    config = prune_config(shards, str(work / "out"), str(work / "run"), rate=0.5,
                          model=args.model, pretrained="random", batch_size=args.batch_size,
                          device=args.device)  # fmt: skip
    ctx = Context(Folder(config.run_dir), config, os.cpu_count() or 1)
    setup_embedder(ctx)
    units = [f"{i:05d}" for i in range(len(shards))]
    time_embed(ctx, units[:1])  # warm-up: first-call allocations, cuDNN autotuning
    embed = time_embed(ctx, units)
    model = time_model_only(ctx, shards)
    return {"images": args.images, "model": args.model, "batch_size": args.batch_size,
            "decode_threads": decode_threads(ctx), "embed_images_per_s": args.images / embed,
            "model_images_per_s": args.images / model,
            "embed_over_model": model / embed}  # fmt: skip


def kmeans_figures(work: Path, args: argparse.Namespace) -> dict:
    """Train on the seeded sample on the device k-means may use, assign every point."""
    from pipelines.data_pruning.cluster import kmeans_device, nearest_centroids, spherical_kmeans

    x16 = points(work, args.points)
    device = kmeans_device(args.device)
    draw = np.random.default_rng(0)
    size = min(len(x16), args.clusters * 256)
    sample = x16[np.sort(draw.choice(len(x16), size, replace=False))].astype(np.float32)
    start = time.perf_counter()
    centroids = spherical_kmeans(sample, args.clusters, args.iterations, 0, device).centroids
    train = time.perf_counter() - start
    start = time.perf_counter()
    distance = np.concatenate([nearest_centroids(x16[i : i + 10_000], centroids, args.device)[1]
                               for i in range(0, len(x16), 10_000)])  # fmt: skip
    assign = time.perf_counter() - start
    return {"points": len(x16), "clusters": args.clusters, "iterations": args.iterations,
            "training_points": size, "kmeans_device": device, "train_s": train,
            "assign_s": assign, "objective": float(1.0 - distance.mean())}  # fmt: skip


def machine(device: str) -> dict:
    import faiss
    import torch

    found = {"python": platform.python_version(), "torch": torch.__version__,
             "faiss": faiss.__version__, "faiss_gpus": faiss.get_num_gpus(),
             "cpus": os.cpu_count(), "device": device}  # fmt: skip
    if device.startswith("cuda"):
        found["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return found


def markdown(results: dict) -> str:
    m, e, k = results["machine"], results["embed"], results["kmeans"]
    return "\n".join([
        f"Machine: {m.get('gpu', m['device'])}, {m['cpus']} CPUs; torch {m['torch']}, "
        f"faiss {m['faiss']} ({m['faiss_gpus']} GPUs visible to FAISS).",
        "",
        "| measure | result |",
        "|---|---|",
        f"| embed, whole unit ({e['model']}, batch {e['batch_size']}, {e['decode_threads']} "
        f"decode threads) | {e['embed_images_per_s']:,.0f} images/s |",
        f"| model forward alone, same batches | {e['model_images_per_s']:,.0f} images/s |",
        f"| embed / model | {e['embed_over_model']:.2f} |",
        f"| k-means train, {k['training_points']:,} points, k = {k['clusters']:,}, "
        f"{k['iterations']} iterations, on {k['kmeans_device']} | {k['train_s']:.1f} s |",
        f"| assign {k['points']:,} points | {k['assign_s']:.1f} s |",
        f"| objective (mean cosine to the assigned centroid) | {k['objective']:.4f} |",
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--points", type=int, default=500_000)
    parser.add_argument("--clusters", type=int, default=1_000)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("gpu-results.md"))
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="curate-gpu-", dir=args.workdir))
    try:
        results = {"machine": machine(args.device), "embed": embed_rates(work, args)}
        results["kmeans"] = kmeans_figures(work, args)
    finally:
        shutil.rmtree(work)
    args.out.write_text(markdown(results) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
