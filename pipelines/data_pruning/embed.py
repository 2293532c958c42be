"""embed: decode every sample of a shard and encode its image (L2-normalised, float16).

Decoding runs in threads (Pillow releases the GIL) one batch ahead of the model, so the model
is the bottleneck; JPEGs decode in draft mode at the model's input scale, to uint8 pixels,
and each batch is converted and normalised at once on the model's device. A unit's stats
hold the seconds of each phase: `read` (the tar), `decode` (summed over the decoding
threads, with the batch conversion), `model` (images and captions), `write`; decoding
overlaps the model, so the phases add up to more than the unit's seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pyarrow as pa
from PIL import UnidentifiedImageError

from curation import progress
from curation.stage import Context, Phases
from metrics.clip_score import clip_score
from pipelines.data_pruning import schema
from pipelines.data_pruning.rows import Row, content_tables, row_stats, sample_row, shard_content
from pipelines.data_pruning.workers import embedder_of
from pipelines.embedders import Embedder
from shards.copier import record_layout
from shards.extensions import IMAGE_EXTENSIONS
from shards.members import display_name
from shards.paths import open_shard, shard_size
from shards.tario import Sample, ShardFormatError, iter_samples

DECODE_THREADS = 2  # on the CPU, beside the model's threads; on a GPU, the worker's threads


def _decode(embedder: Embedder, sample: Sample) -> np.ndarray | str:
    """The image's pixels, or why there are none."""
    if sample.error:
        return sample.error
    if sample.unsafe_names:
        return f"unsafe member name: {sample.unsafe_names[0]!r} (absolute or with '..')"
    image = sample.get(*IMAGE_EXTENSIONS)
    if image is None:
        exts = sorted({m.name.rsplit(".", 1)[-1] for m in sample.members}) or ["nothing"]
        return f"no image member (has {display_name(', '.join(exts))})"
    try:
        return embedder.decode(image.data)
    except UnidentifiedImageError:
        return f"cannot decode {display_name(image.name)}: not a recognised image format"
    except Exception as exc:  # any decoder failure makes this one sample fail, not the run
        return f"cannot decode {display_name(image.name)}: {type(exc).__name__}: {exc}"


def _timed_decode(embedder: Embedder, sample: Sample) -> tuple[np.ndarray | str, float]:
    """`_decode` and its seconds (in a decoding thread)."""
    start = time.perf_counter()
    result = _decode(embedder, sample)
    return result, time.perf_counter() - start


def _batches(samples: Iterator[Sample], size: int) -> Iterator[list[Sample]]:
    batch: list[Sample] = []
    for sample in samples:
        batch.append(sample)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _until_damage(stream, shard_error: list[str]) -> Iterator[Sample]:
    """Every sample up to damage in the shard (the damaged one included, with its error)."""
    try:
        yield from iter_samples(stream)
    except ShardFormatError as exc:
        shard_error.append(str(exc))


def _read(url: str, batch_size: int, shard_error: list[str],
          storage_options: dict) -> Iterator[list[Sample]]:  # fmt: skip
    with open_shard(url, storage_options) as stream:
        yield from _batches(_until_damage(stream, shard_error), batch_size)


def decode_threads(ctx: Context) -> int:
    """Threads decoding images: two beside the model's on the CPU; on a GPU, every thread of
    the worker, since the CPU then only decodes."""
    return DECODE_THREADS if ctx.config.device == "cpu" else max(DECODE_THREADS, ctx.threads)


def embed_shard(ctx: Context, unit: str) -> dict:
    """The shard's content, embedded now unless this run already holds it (the same URL with
    the same fingerprint), with the layout of a local plain tar for reshard, then linked as
    input shard `unit`. The phases' seconds are those of this unit's work: none when the
    content was already there."""
    url, content, new = shard_content(ctx, unit)
    phases = Phases()
    if new:
        rows, embeddings, stats = _embed(ctx.config, url, phases, decode_threads(ctx))
        with phases("read"):
            layout = record_layout(url)
        with phases("write"):
            schema.write_content(ctx.run, content, rows, embeddings, stats, layout)
    return {**schema.link_content(ctx.run, unit, int(unit), content), **phases.stats()}


_END = object()


def _timed(items: Iterable, phases: Phases, name: str) -> Iterator:
    """The items of `items`, the time spent producing each counted as phase `name`."""
    iterator = iter(items)
    while True:
        with phases(name):
            item = next(iterator, _END)
        if item is _END:
            return
        yield item


def _embed(cfg, url: str, phases: Phases, threads: int) -> tuple[pa.Table, np.ndarray, dict]:
    """The shard's rows (no ids), embeddings and stats."""
    embedder = embedder_of(cfg)
    rows: list[Row] = []
    vectors: list[np.ndarray] = []
    shard_error: list[str] = []
    size, seen = max(shard_size(url, cfg.storage_options), 1), 0
    batches = _timed(_read(url, cfg.batch_size, shard_error, cfg.storage_options), phases, "read")
    with ThreadPoolExecutor(threads) as pool:
        pending: tuple[list[Sample], list[Future]] | None = None
        for batch in batches:
            decoding = [pool.submit(_timed_decode, embedder, s) for s in batch]
            if pending is not None:
                _encode(embedder, *pending, cfg, rows, vectors, phases)
                seen += sum(s.nbytes for s in pending[0])
                progress.advance(len(pending[0]), min(seen / size, 1.0))
            pending = (batch, decoding)
        if pending is not None:
            _encode(embedder, *pending, cfg, rows, vectors, phases)
    return (*content_tables(rows, vectors), row_stats(rows, next(iter(shard_error), None)))


def _encode(
    embedder: Embedder,
    batch: list[Sample],
    decoding: list[Future],
    cfg,
    rows: list[Row],
    vectors: list[np.ndarray],
    phases: Phases,
) -> None:
    images = []
    for sample, future in zip(batch, decoding, strict=True):
        result, seconds = future.result()
        phases.add("decode", seconds)
        row = sample_row(sample, cfg)
        if isinstance(result, str):
            row.error = result
        elif row.error is None:
            images.append(result)
        rows.append(row)
    encoded: Iterator[np.ndarray] = iter([])
    if images:
        with phases("decode"):
            inputs = embedder.batch(images)
        with phases("model"):
            encoded = iter(embedder.encode_images(inputs))
    batch_rows = rows[len(rows) - len(batch) :]
    for row in batch_rows:
        vectors.append(next(encoded) if row.error is None else None)
    if cfg.needs_captions:
        with phases("model"):
            _score_captions(embedder, batch_rows, vectors[len(vectors) - len(batch) :])


def _score_captions(embedder: Embedder, rows: list[Row], vectors: list) -> None:
    """DataComp's CLIP score: image-text cosine similarity, same model's text tower."""
    scored = [i for i, r in enumerate(rows) if r.error is None and r.caption is not None]
    if not scored:
        return
    texts = embedder.encode_texts([rows[i].caption for i in scored])
    scores = clip_score(np.stack([vectors[i] for i in scored]), texts)
    for i, score in zip(scored, scores, strict=True):
        rows[i].clip_score = float(score)
