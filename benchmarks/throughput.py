"""Embed and reshard throughput against their limits, measured in one run on the same shards.

- embed: images/s of the whole `embed` unit (read tar, decode, preprocess, encode, write)
  against the model-only forward on pre-decoded tensors of the same images and batch size.
- reshard: input MB/s of the `reshard` copy against a plain byte copy of the same tars.

Usage: python benchmarks/throughput.py [--images 512] [--model ViT-B-32] [--repeats 3]
Shards are generated (photo-like JPEGs, 256-384 px); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from curation.executors import local_threads
from curation.stage import Context
from curation.storage import Folder
from pipelines.data_pruning.config import PruneConfig
from pipelines.data_pruning.embed import embed_shard
from pipelines.data_pruning.workers import embedder_of, setup_threads
from shards.copier import copy_kept
from shards.tario import TarWriter, iter_samples


def photo_like(rng: np.random.Generator) -> bytes:
    """Smooth colour fields plus texture: compresses like a photo (tens of KB at q90)."""
    w, h = (int(v) for v in rng.integers(256, 385, 2))
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    image = (
        np.stack(
            [np.sin(x / rng.uniform(8, 60) + c) * np.cos(y / rng.uniform(8, 60)) for c in range(3)],
            axis=-1,
        )
        * 90
        + 128
    )
    image += rng.normal(0, 12, image.shape)
    buffer = io.BytesIO()
    Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def write_shards(folder: Path, images: int, shards: int) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    per = images // shards
    for s in range(shards):
        path = folder / f"{s:05d}.tar"
        with open(path, "wb") as f:
            writer = TarWriter(f)
            for i in range(per):
                key = f"{s:05d}{i:06d}"
                writer.add(f"{key}.jpg", photo_like(rng))
                writer.add(f"{key}.txt", f"caption {key}".encode())
                writer.add(f"{key}.json", b'{"source": "benchmark"}')
            writer.close()
        paths.append(str(path))
    return paths


def time_embed(ctx: Context, units: list[str]) -> float:
    start = time.perf_counter()
    for unit in units:
        embed_shard(ctx, unit)
    return time.perf_counter() - start


def time_model_only(ctx: Context, shards: list[str]) -> float:
    embedder = embedder_of(ctx.config)
    tensors = []
    for shard in shards:
        with open(shard, "rb") as f:
            tensors += [embedder.decode(s.get("jpg").data) for s in iter_samples(f)]
    size = ctx.config.batch_size
    batches = [torch.stack(tensors[i : i + size]) for i in range(0, len(tensors), size)]
    start = time.perf_counter()
    for batch in batches:
        embedder.encode_images(batch)
    return time.perf_counter() - start


def sample_counts(shards: list[str]) -> list[int]:
    counts = []
    for shard in shards:
        with open(shard, "rb") as f:
            counts.append(sum(1 for _ in iter_samples(f)))
    return counts


def time_reshard(shards: list[str], counts: list[int], out: Path, keep_every: int) -> float:
    """The reshard copy (`copy_kept`) of every `keep_every`-th sample, keep lists decided."""
    keeps = [np.arange(0, count, keep_every) for count in counts]
    start = time.perf_counter()
    for shard, keep in zip(shards, keeps, strict=True):
        with open(out / Path(shard).name, "wb") as f:
            copy_kept(shard, keep, f)
    return time.perf_counter() - start


def time_copy(shards: list[str], out: Path) -> float:
    start = time.perf_counter()
    for shard in shards:
        shutil.copyfile(shard, out / Path(shard).name)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="curate-bench-"))
    try:
        shards = write_shards(work, args.images, args.shards)
        megabytes = sum(Path(s).stat().st_size for s in shards) / 1e6
        config = PruneConfig(
            shards=shards,
            output=str(work / "out"),
            run_dir=str(work / "run"),
            rate=0.5,
            model=args.model,
            pretrained="random",
            batch_size=args.batch_size,
        )
        ctx = Context(Folder(config.run_dir), config, local_threads(1))
        setup_threads(ctx)
        units = [f"{i:05d}" for i in range(len(shards))]
        time_embed(ctx, units[:1])  # warm-up: model load, first-call allocations
        embed, model = [], []
        for _ in range(args.repeats):
            embed.append(time_embed(ctx, units))
            model.append(time_model_only(ctx, shards))
        out = work / "copy"
        out.mkdir()
        counts = sample_counts(shards)
        reshard_all, reshard_half, copy = [], [], []
        for _ in range(args.repeats * 5):
            copy.append(time_copy(shards, out))
            reshard_all.append(time_reshard(shards, counts, out, 1))
            reshard_half.append(time_reshard(shards, counts, out, 2))
        n = args.images
        e, m = statistics.median(embed), statistics.median(model)
        c = statistics.median(copy)
        ra, rh = statistics.median(reshard_all), statistics.median(reshard_half)
        print(
            f"shards: {len(shards)} x {n // len(shards)} images, {megabytes:.1f} MB; "
            f"model {args.model}, batch {args.batch_size}, threads {ctx.threads}"
        )
        print(f"embed (whole unit)     {n / e:8.1f} images/s")
        print(f"model forward only     {n / m:8.1f} images/s")
        print(f"embed / limit          {m / e:8.2f}")
        print(f"plain byte copy        {megabytes / c:8.1f} MB/s")
        print(f"reshard, keep all      {megabytes / ra:8.1f} MB/s  ratio {c / ra:.2f}")
        print(f"reshard, keep half     {megabytes / rh:8.1f} MB/s  ratio {c / rh:.2f}")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
