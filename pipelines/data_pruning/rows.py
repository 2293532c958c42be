"""A sample's row in the embed stage's table: what is read of it without decoding its image
(key, label, caption when a filter reads it, DataComp uid, size), and the failure that keeps
it out of selection. Shared by embedding with a model and reading precomputed embeddings."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from pipelines.data_pruning import schema
from shards.labels import LabelError, sample_label
from shards.paths import check_unchanged
from shards.tario import Sample

UID = re.compile(r"[0-9a-fA-F]{32}")  # DataComp's 128-bit uid in hex


@dataclass
class Row:
    key: str
    position: int
    label: int
    caption: str | None
    nbytes: int
    uid: str | None = None
    error: str | None = None
    clip_score: float = float("nan")


def _caption(sample: Sample) -> str | None:
    txt = sample.get("txt")
    return None if txt is None else bytes(txt.data).decode("utf-8", "replace")


def _uid(sample: Sample) -> str | None:
    """DataComp's per-sample id, from the json member."""
    meta = sample.get("json")
    if meta is None:
        return None
    try:
        record = json.loads(bytes(meta.data))
    except (ValueError, RecursionError):
        return None
    uid = record.get("uid") if isinstance(record, dict) else None
    return uid.lower() if isinstance(uid, str) and UID.fullmatch(uid) else None


def sample_row(sample: Sample, config) -> Row:
    """The row of a sample; `error` set when its label is not a class index."""
    try:
        label, error = sample_label(sample, config.label_field), None
    except LabelError as exc:
        label, error = None, str(exc)
    caption = _caption(sample) if config.needs_captions else None  # stored only when used
    row = Row(sample.key, sample.position, -1 if label is None else label, caption,
              sample.nbytes, _uid(sample))  # fmt: skip
    row.error = error
    return row


def content_tables(
    rows: list[Row], vectors: list[np.ndarray | None]
) -> tuple[pa.Table, np.ndarray]:
    """The content's sample table and its float16 embeddings (zeros for failed rows)."""
    dim = next((v.shape[0] for v in vectors if v is not None), 0)
    matrix = np.zeros((len(rows), dim), dtype=np.float16)
    for i, vector in enumerate(vectors):
        if vector is not None:
            matrix[i] = vector
    table = pa.table(
        {
            "key": [r.key for r in rows],
            "position": np.array([r.position for r in rows], dtype=np.int32),
            "label": np.array([r.label for r in rows], dtype=np.int64),
            "caption": [r.caption for r in rows],
            "nbytes": np.array([r.nbytes for r in rows], dtype=np.int64),
            "clip_score": np.array([r.clip_score for r in rows], dtype=np.float64),
            "status": [schema.FAILED if r.error else schema.OK for r in rows],
            "error": [r.error for r in rows],
            "key_hash": schema.key_hashes([r.key for r in rows]),
            "uid": [r.uid for r in rows],
        },
        schema=schema.CONTENT_SCHEMA,
    )
    return table, matrix


def row_stats(rows: list[Row], shard_error: str | None) -> dict:
    stats = {"samples": len(rows), "failed": sum(r.error is not None for r in rows),
             "bytes": sum(r.nbytes for r in rows)}  # fmt: skip
    if shard_error:
        stats["shard_error"] = shard_error
    return stats


def shard_content(ctx, unit: str) -> tuple[str, str, bool]:
    """Input shard `unit`'s URL, the name of its content (its URL and fingerprint), and whether
    this run must write that content (it holds none by that name); a shard to be read that
    changed since the run started is an error here, before it is read."""
    cfg = ctx.config
    url, fingerprint = cfg.shards[int(unit)], cfg.fingerprints[int(unit)]
    content = schema.content_id(url, fingerprint)
    new = not schema.has_content(ctx.run, content)
    if new:
        check_unchanged(url, fingerprint, cfg.storage_options)
    return url, content, new
