"""Reshard copy speed against plain copies of the same tars, measured in one run (issue 13).

Generates realistic shards (20-100 KB JPEGs with a caption and JSON metadata per sample): as
webdataset's `TarWriter` writes them (a pax header on every member) and in curate's normalised
form (its own ustar headers, as the per-sample path writes them). Then times, keep-all and
keep-half (a random half), the best of `--repeats` interleaved runs of:
- `cp` of every tar (one process per file) and `shutil.copyfile`: the plain copy;
- raw ranges: `os.copy_file_range` of each run of consecutive kept samples, the byte ranges
  found beforehand (the floor the issue set: no header is read or written);
- mapped ranges: the same runs faulted into a memory map (`MADV_POPULATE_READ`) and written
  with `os.writev` as views of it: the floor of the way `copy_kept` copies a shard that is in
  the page cache;
- per-sample: the reader and `TarWriter` over a memory map, the path reshard took first;
- copy_kept, recorded layout: `shards.copier.copy_kept` as reshard calls it, with the layout
  embed recorded (`record_layout` and an `.npy` written beforehand, untimed, as embed does),
  read back from its file in the timed run as reshard reads it;
- copy_kept, indexing: the same without a recorded layout (precomputed embeddings).
Outputs go to fresh files on the same filesystem (removed, untimed, before each run); the
inputs are in the page cache, as read back from disk (`settle`), or with `--from-disk`
dropped from it before every run (`copy_kept` then copies by the kernel's range copy).

    python -m benchmarks.reshard --megabytes 300 --repeats 15 [--from-disk]
"""

from __future__ import annotations

import argparse
import io
import json
import mmap
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import webdataset as wds
from PIL import Image

from shards.copier import POPULATE_READ, copy_kept, copy_samples, record_layout
from shards.tarindex import Layout, index_shard
from shards.tario import RECORD, MemoryReader

RECORDED = "**copy_kept, recorded layout**"
FLOORS = ("raw ranges", "mapped ranges")
WORDS = ["a", "photo", "of", "the", "small", "red", "dog", "on", "a", "beach", "at", "sunset"]


def jpeg_pool(rng: np.random.Generator, count: int = 48) -> list[bytes]:
    """Photo-like JPEGs (smooth gradients with noise) of 20 to 100 KB."""
    pool: list[bytes] = []
    while len(pool) < count:
        side = int(rng.integers(200, 520))
        y, x = np.mgrid[0:side, 0:side] / side
        base = np.stack([x, y, (x + y) / 2], axis=-1) * rng.uniform(80, 255, 3)
        pixels = base + rng.normal(0, rng.uniform(10, 40), (side, side, 3))
        buffer = io.BytesIO()
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=85)
        if 20_000 <= len(buffer.getvalue()) <= 100_000:
            pool.append(buffer.getvalue())
    return pool


def write_webdataset_shards(folder: Path, megabytes: float, shards: int, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    pool = jpeg_pool(rng)
    paths = []
    for s in range(shards):
        path = folder / f"wds-{s:05d}.tar"
        size, i = 0, 0
        with wds.TarWriter(str(path)) as sink:
            while size < megabytes * 1e6 / shards:
                key = f"{s:05d}{i:04d}"
                caption = " ".join(rng.choice(WORDS, int(rng.integers(4, 30))))
                meta = json.dumps({"key": key, "width": 256, "caption": caption}).encode()
                jpg = pool[int(rng.integers(len(pool)))]
                sink.write({"__key__": key, "jpg": jpg, "txt": caption, "json": meta})
                size += len(jpg) + len(caption) + len(meta) + 3 * 1536  # headers, padding
                i += 1
        paths.append(path)
    return paths


def write_curate_shards(sources: list[Path], counts: list[int], folder: Path) -> list[Path]:
    paths = []
    for source, count in zip(sources, counts, strict=True):
        path = folder / source.name.replace("wds-", "curate-")
        with open(source, "rb") as given, open(path, "wb") as out:
            copy_samples(given, np.arange(count), out)
        paths.append(path)
    return paths


def settle(paths: list[Path]) -> None:
    """Put the shards in the page cache as a pipeline meets them, read from storage: written
    to disk, dropped from the cache, read back once. (Freshly written by `tarfile`'s small
    writes, a file sits in small pages that take three times longer to map.)"""
    for path in paths:
        with open(path, "rb") as f:
            os.fsync(f.fileno())
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            while f.read(1 << 20):
                pass


def sample_ranges(path: Path) -> list[tuple[int, int]]:
    """(start, end) bytes of each sample: its first header to the end of its last member."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        layout = index_shard(mapped)
    assert layout is not None, f"{path} is not in the common form"
    first = np.searchsorted(layout.sample, np.arange(layout.samples))
    last = np.searchsorted(layout.sample, np.arange(layout.samples), side="right") - 1
    return list(zip(layout.start[first].tolist(), layout.end[last].tolist(), strict=True))


def _runs(ranges: list[tuple[int, int]], keep: np.ndarray) -> list[list[int]]:
    """[start, end) of each run of consecutive kept samples."""
    runs: list[list[int]] = []
    for position in keep.tolist():
        start, end = ranges[position]
        if runs and runs[-1][1] == start:
            runs[-1][1] = end
        else:
            runs.append([start, end])
    return runs


def raw_ranges(source: Path, ranges: list[tuple[int, int]], keep: np.ndarray, out: Path) -> None:
    """The kept samples' input bytes, runs of consecutive samples merged, then the end."""
    runs = _runs(ranges, keep)
    with open(source, "rb") as src, open(out, "wb") as dst:
        written = 0
        for start, end in runs:
            while start < end:
                done = os.copy_file_range(src.fileno(), dst.fileno(), end - start, start)
                start += done
                written += done
        dst.write(bytes(2 * 512 + (-(written + 1024) % RECORD)))


def mapped_ranges(source: Path, ranges: list[tuple[int, int]], keep: np.ndarray, out: Path) -> None:
    """The same runs as `raw_ranges`, faulted into a map and written as views of it."""
    runs = _runs(ranges, keep)
    with open(source, "rb") as src, open(out, "wb") as dst:
        mapped = mmap.mmap(src.fileno(), 0, access=mmap.ACCESS_READ)
        for start, end in runs:
            low = start - start % mmap.PAGESIZE
            mapped.madvise(POPULATE_READ, low, end - low)
        view = memoryview(mapped)
        pieces = [view[start:end] for start, end in runs]
        written = 0
        for first in range(0, len(pieces), 1024):
            written += os.writev(dst.fileno(), pieces[first : first + 1024])
        del pieces
        view.release()
        mapped.close()
        dst.write(bytes(2 * 512 + (-(written + 1024) % RECORD)))


def per_sample(source: Path, keep: np.ndarray, out: Path) -> None:
    with open(source, "rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    reader = MemoryReader(mapped)
    with open(out, "wb") as dst:
        copy_samples(reader, keep, dst)
    reader.release()
    mapped.close()


def store_layout(source: Path) -> Path:
    """The shard's layout, recorded and stored as embed stores it (`Layout.records`)."""
    path = source.with_suffix(".layout.npy")
    np.save(path, record_layout(str(source)).records(), allow_pickle=False)
    return path


def new_path(source: Path, keep: np.ndarray, out: Path, layout_file: Path | None = None) -> None:
    """`copy_kept`; with the layout read back from `layout_file`, as reshard reads it."""
    layout = None
    if layout_file is not None:
        layout = Layout.from_records(np.load(layout_file, allow_pickle=False))
    with open(out, "wb") as dst:
        copy_kept(str(source), keep, dst, layout=layout)


def timed(run: Callable[[], None], outputs: list[Path], evict: list[Path]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run, child processes (`cp`) included in the CPU;
    `evict`: inputs dropped from the page cache first (written back already: `settle`)."""
    for path in outputs:
        path.unlink(missing_ok=True)
    for path in evict:
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    before, start = _cpu_seconds(), time.perf_counter()
    run()
    return time.perf_counter() - start, _cpu_seconds() - before


def _cpu_seconds() -> float:
    """User and system time of this process and its waited-for children."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=300)
    parser.add_argument("--shards", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", help="where to write the shards (default: a temporary dir)")
    parser.add_argument(
        "--from-disk",
        action="store_true",
        help="drop the inputs from the page cache before every run",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="curate-reshard-", dir=args.workdir))
    try:
        run(work, args)
    finally:
        shutil.rmtree(work)


def jobs(sets: dict, keeps: dict, outputs: list[Path]) -> dict[tuple, Callable[[], None]]:
    """(shard kind, keep, method) -> a run over every shard of that kind."""
    result: dict[tuple, Callable[[], None]] = {}
    for kind, paths in sets.items():
        pairs = list(zip(paths, outputs, strict=True))
        result[kind, "-", "cp"] = lambda pairs=pairs: [
            subprocess.run(["cp", s, o], check=True) for s, o in pairs
        ]
        result[kind, "-", "shutil.copyfile"] = lambda pairs=pairs: [
            shutil.copyfile(s, o) for s, o in pairs
        ]
        ranges = [sample_ranges(p) for p in paths]
        layouts = [store_layout(p) for p in paths]  # as embed records them
        for keep_name, keep in keeps.items():
            runs = list(zip(paths, keep, ranges, outputs, layouts, strict=True))
            result[kind, keep_name, "raw ranges"] = lambda runs=runs: [
                raw_ranges(s, r, k, o) for s, k, r, o, _ in runs
            ]
            result[kind, keep_name, "mapped ranges"] = lambda runs=runs: [
                mapped_ranges(s, r, k, o) for s, k, r, o, _ in runs
            ]
            result[kind, keep_name, "per-sample (first)"] = lambda runs=runs: [
                per_sample(s, k, o) for s, k, _, o, _ in runs
            ]
            result[kind, keep_name, "copy_kept, indexing"] = lambda runs=runs: [
                new_path(s, k, o) for s, k, _, o, _ in runs
            ]
            result[kind, keep_name, RECORDED] = lambda runs=runs: [
                new_path(s, k, o, layout) for s, k, _, o, layout in runs
            ]
    return result


def run(work: Path, args: argparse.Namespace) -> None:
    (work / "out").mkdir()
    wds_shards = write_webdataset_shards(work, args.megabytes, args.shards, args.seed)
    counts = [len(sample_ranges(p)) for p in wds_shards]
    sets = {"webdataset": wds_shards, "curate": write_curate_shards(wds_shards, counts, work)}
    settle(wds_shards + sets["curate"])
    rng = np.random.default_rng(args.seed)
    keeps = {
        "all": [np.arange(c) for c in counts],
        "half": [np.sort(rng.choice(c, c // 2, replace=False)) for c in counts],
    }
    outputs = [work / "out" / f"{i:05d}.tar" for i in range(args.shards)]
    times: dict[tuple, list[tuple[float, float]]] = {}
    planned = jobs(sets, keeps, outputs)
    for _ in range(args.repeats):
        for key, job in planned.items():
            evict = sets[key[0]] if args.from_disk else []
            times.setdefault(key, []).append(timed(job, outputs, evict))
    report(sets, counts, times, args)


def report(sets, counts, times, args) -> None:
    """Best wall time and best CPU time of each method, as markdown tables."""
    wall = {key: min(w for w, _ in values) for key, values in times.items()}
    cpu = {key: min(c for _, c in values) for key, values in times.items()}
    samples = sum(counts)
    for kind, paths in sets.items():
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        where = "from disk" if args.from_disk else "in the page cache"
        print(
            f"\n{kind} shards: {len(paths)} files, {megabytes:.0f} MB, {samples} samples "
            f"({megabytes * 1e3 / samples:.0f} KB each), {where}; best of {args.repeats}\n"
        )
        print(
            "| keep | method | wall s | MB/s | vs cp | vs raw ranges | vs mapped ranges "
            "| CPU s | CPU vs cp |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        cp = (kind, "-", "cp")
        rows = [(kind, "-", name) for name in ("cp", "shutil.copyfile")]
        for keep in ("all", "half"):
            rows += [
                (kind, keep, name)
                for name in (*FLOORS, "per-sample (first)", "copy_kept, indexing", RECORDED)
            ]
        for key in rows:
            floors = [wall.get((kind, key[1], name)) for name in FLOORS]
            against = " | ".join("" if f is None else f"{f / wall[key]:.2f}" for f in floors)
            print(
                f"| {key[1]} | {key[2]} | {wall[key]:.3f} | {megabytes / wall[key]:,.0f} "
                f"| {wall[cp] / wall[key]:.2f} | {against} "
                f"| {cpu[key]:.3f} | {cpu[cp] / cpu[key]:.2f} |"
            )
    spread = max(statistics.median(w for w, _ in v) / min(w for w, _ in v) for v in times.values())
    print(f"\nwall time, median over best, worst method: {spread:.2f}")


if __name__ == "__main__":
    main()
