"""Where each stage keeps its outputs in the run directory, and how they are read back."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curation.stage import Context
from curation.storage import Folder

ALL = "all"  # the single unit of a barrier stage


def unit_name(shard_index: int) -> str:
    return f"{shard_index:05d}"


def shard_units(ctx: Context) -> list[str]:
    return [unit_name(i) for i in range(len(ctx.config.shards))]


def barrier_unit(ctx: Context) -> list[str]:
    return [ALL]


def sample_ids(shard_index: int, positions: np.ndarray) -> np.ndarray:
    """Internal ids: shard index in the high bits, position in the low bits, so sorting ids
    is sorting by input order, and ids never collide even when keys repeat."""
    return (np.int64(shard_index) << np.int64(32)) | positions.astype(np.int64)


def save_array(folder: Folder, array: np.ndarray, *parts: str) -> None:
    folder.write_buffer(lambda buf: np.save(buf, array, allow_pickle=False), *parts)


def load_array(folder: Folder, *parts: str) -> np.ndarray:
    return np.load(io.BytesIO(folder.read_bytes(*parts)), allow_pickle=False)


def write_table(folder: Folder, table: pa.Table, *parts: str) -> None:
    folder.write_buffer(lambda buf: pq.write_table(table, buf), *parts)


def read_table(folder: Folder, *parts: str, columns: list[str] | None = None) -> pa.Table:
    with folder.open_read(*parts) as f:
        return pq.read_table(f, columns=columns)
