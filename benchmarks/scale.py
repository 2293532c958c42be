"""Scale: every stage's seconds and peak memory as the input grows, with a tiny model.

Runs the whole pipeline (`curate prune`, one worker, in a fresh process per size) on
generated shards of 1,000 samples (small photo-like JPEGs, a caption and a label each), then
reads every unit's stats: seconds, the phases' seconds, its peak RSS (VmHWM, reset before each
unit) and the RSS it started from. For each stage it prints the seconds at each size and their
growth exponent between the smallest and the largest size (1: linear), and each unit's largest
peak above its starting RSS: flat for the stages whose units are shards (embed, assign, group,
dbp_assign, reshard), at most linear for the barriers (cluster, dedup buckets, select,
summary). The model is open_clip with a 32-pixel, one-layer vision tower, untrained.

Usage, from the repository root:
    python -m benchmarks.scale [--sizes 2000 8000 32000] [--metric dbp] [--clusters 20]
        [--workdir /tmp]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from curation import rundir
from curation.storage import Folder
from shards.tario import TarWriter

REPO = Path(__file__).resolve().parents[1]
PER_SHARD = 1_000
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def image(rng: np.random.Generator) -> bytes:
    """A 64-96 px JPEG: a colour field with texture."""
    w, h = (int(v) for v in rng.integers(64, 97, 2))
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    pixels = np.stack([np.sin(x / rng.uniform(4, 20) + c) * np.cos(y / rng.uniform(4, 20))
                       for c in range(3)], axis=-1) * 90 + 128  # fmt: skip
    pixels += rng.normal(0, 12, pixels.shape)
    buffer = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def write_shards(folder: Path, samples: int, per_shard: int = PER_SHARD) -> list[str]:
    """`samples` samples in shards of `per_shard`: jpg, txt, cls; seeded."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths = []
    for s in range(samples // per_shard):
        path = folder / f"{s:05d}.tar"
        with open(path, "wb") as f:
            writer = TarWriter(f)
            for i in range(per_shard):
                key = f"{s:05d}{i:05d}"
                writer.add(f"{key}.jpg", image(rng))
                writer.add(f"{key}.txt", f"a photo of thing {i % 10}".encode())
                writer.add(f"{key}.cls", str(i % 10).encode())
            writer.close()
        paths.append(str(path))
    return paths


def prune(work: Path, shards: list[str], metric: str, clusters: int) -> float:
    """`curate prune` in its own process; returns its wall seconds (imports included)."""
    model = work / "tiny-clip.json"
    model.write_text(json.dumps(TINY_CLIP))
    command = [sys.executable, "-m", "curation", "prune", *shards, "--output", str(work / "out"),
               "--rate", "0.5", "--model", str(model), "--pretrained", "random",
               "--clusters", str(clusters), "--metric", metric, "--workers", "1"]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"curate prune failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def stage_stats(run: Folder) -> dict[str, dict]:
    """Per stage: summed seconds and phases, samples, the largest peak and unit growth."""
    found = {}
    for name in rundir.stage_names(run):
        units = rundir.all_stats(run, name)
        phases = sorted({k for u in units for k in u if k.endswith("_seconds")})
        found[name] = {
            "units": len(units),
            "samples": sum(u.get("samples", 0) for u in units),
            "seconds": sum(u["seconds"] for u in units),
            "phases": {
                p.removesuffix("_seconds"): sum(u.get(p, 0.0) for u in units) for p in phases
            },
            "peak_mib": max(u["peak_rss_mib"] for u in units),
            "growth_mib": max(u["peak_rss_mib"] - u["start_rss_mib"] for u in units),
        }
    return found


def measure(workdir: Path, samples: int, metric: str, clusters: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="scale-bench-", dir=workdir))
    try:
        shards = write_shards(work / "in", samples)
        seconds = prune(work, shards, metric, clusters)
        return {"samples": samples, "process_seconds": seconds,
                "stages": stage_stats(Folder(str(work / "out" / "_run")))}  # fmt: skip
    finally:
        shutil.rmtree(work)


def exponent(small: float, large: float, ratio: float) -> str:
    """log(large / small) / log(ratio): 1 is linear; '-' when the times are too short."""
    if min(small, large) < 0.05:
        return "-"
    return f"{math.log(large / small) / math.log(ratio):.2f}"


def table(results: list[dict]) -> str:
    sizes = [r["samples"] for r in results]
    ratio = sizes[-1] / sizes[0]
    head = " | ".join(f"s @ {s:,}" for s in sizes)
    mem = " | ".join(f"MiB @ {s:,}" for s in sizes)
    lines = [f"| stage | {head} | exponent | peak {mem.replace('MiB', 'RSS MiB')} "
             f"| unit growth {mem} | phases at {sizes[-1]:,} (s) |",
             "|---|" + "---:|" * (3 * len(sizes) + 1) + "---|"]  # fmt: skip
    for name in results[-1]["stages"]:
        per = [r["stages"][name] for r in results]
        phases = ", ".join(f"{p} {v:.2f}" for p, v in per[-1]["phases"].items())
        lines.append(
            f"| {name} | " + " | ".join(f"{p['seconds']:.2f}" for p in per)
            + f" | {exponent(per[0]['seconds'], per[-1]['seconds'], ratio)} | "
            + " | ".join(f"{p['peak_mib']:,.0f}" for p in per) + " | "
            + " | ".join(f"{p['growth_mib']:,.1f}" for p in per) + f" | {phases} |"
        )  # fmt: skip
    lines.append("| whole process (imports included) | "
                 + " | ".join(f"{r['process_seconds']:.1f}" for r in results) + " | "
                 + exponent(results[0]["process_seconds"], results[-1]["process_seconds"],
                            ratio) + " |" + " |" * (2 * len(sizes) + 1))  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2_000, 8_000, 32_000])
    parser.add_argument("--metric", default="dbp")
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    if any(s % PER_SHARD for s in args.sizes):
        parser.error(f"sizes must be multiples of {PER_SHARD} (samples per shard)")
    results = []
    for samples in sorted(args.sizes):
        results.append(measure(args.workdir, samples, args.metric, args.clusters))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(table(results))


if __name__ == "__main__":
    main()
