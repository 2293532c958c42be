"""Every sample's identity and scores, gathered from the run directory into columns.

This is what selection reads: the `select` stage and `curate sweep` both decide from it, so a
sweep over rates and metrics never recomputes embeddings, clusters or scores. The columns a
criterion adds (EL2N scores, SemDeDup similarities, a second clustering) come from the loaders
it declares; the ones here are read for every criterion.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import pairwise
from typing import Any

import numpy as np
import pyarrow as pa

from curation.storage import Folder
from pipelines.data_pruning import schema


@dataclass
class Clustering:
    """One k-means clustering: centroids and each sample's cluster and cosine distance."""

    centroids: np.ndarray  # (k, d) float32
    cluster: np.ndarray  # int32, -1 when failed
    distance: np.ndarray  # float64, nan when failed


@dataclass
class Samples:
    """Row-aligned columns over all shards, in input order (nan/-1 where not computed);
    `columns` holds what the criterion and filter in use declared."""

    ids: np.ndarray  # int64: shard index << 32 | position
    valid: np.ndarray  # bool: embedded (not failed)
    heldout: np.ndarray  # bool: set aside for validation (valid, never a candidate)
    label: np.ndarray  # int64, -1 when unknown
    clusters: Clustering
    shard_sizes: np.ndarray  # rows per shard, to split columns back per shard
    columns: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, name: str) -> Any:
        return self.columns[name]

    @property
    def candidates(self) -> np.ndarray:
        """Rows selection decides about: valid and not held out."""
        return np.flatnonzero(self.valid & ~self.heldout)

    def shard_rows(self) -> list[slice]:
        """Each shard's rows, to split columns back per shard."""
        return _slices(self.shard_sizes)

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Global row of each id (a row per position)."""
        offsets = np.concatenate([[0], np.cumsum(self.shard_sizes)])
        return offsets[schema.id_shard(ids)] + schema.id_position(ids)


def _slices(sizes: np.ndarray) -> list[slice]:
    """Consecutive row ranges of the given sizes."""
    return [slice(start, end) for start, end in pairwise(np.cumsum([0, *sizes]))]


def per_shard(units: list[str], rows: list[slice],
              read: Callable[[str], Any]) -> Iterator[tuple[slice, Any]]:  # fmt: skip
    """Each shard's rows and what `read(unit)` gives for it. Callers copy into arrays
    allocated once: per-shard arrays concatenated at the end would double the peak (freed
    small arrays stay on the heap)."""
    for unit, shard_rows in zip(units, rows, strict=True):
        yield shard_rows, read(unit)


def shard_array(run: Folder, units: list[str], rows: list[slice],
                read: Callable[[Folder, str], np.ndarray], dtype) -> np.ndarray:  # fmt: skip
    """One column over all shards from a per-shard reader."""
    n = rows[-1].stop if rows else 0
    column = np.empty(n, dtype=dtype)
    for part, values in per_shard(units, rows, partial(read, run)):
        column[part] = values
    return column


def load_clustering(run: Folder, units: list[str], rows: list[slice], centroids: str,
                    assigned: str) -> Clustering:  # fmt: skip
    n = rows[-1].stop if rows else 0
    cluster, distance = np.empty(n, dtype=np.int32), np.empty(n, dtype=np.float64)
    for part, table in per_shard(units, rows, partial(schema.read_assignment, run, assigned)):
        cluster[part] = table["cluster"].to_numpy()
        distance[part] = table["distance"].to_numpy()  # float32 to float64: exact
    return Clustering(schema.read_centroids(run, centroids), cluster, distance)


def load_samples(run: Folder, units: list[str], loaders: dict[str, Callable],
                 holdout: float) -> Samples:  # fmt: skip
    """The columns every rule reads, and those of `loaders` (name -> loader)."""
    sizes = np.array([schema.row_count(run, u) for u in units], dtype=np.int64)
    rows = _slices(sizes)
    n = int(sizes.sum())
    ids, valid = np.empty(n, dtype=np.int64), np.empty(n, dtype=bool)
    label, heldout = np.empty(n, dtype=np.int64), np.empty(n, dtype=bool)
    read = partial(schema.read_rows, run, columns=["id", "status", "label", "key_hash"])
    for part, table in per_shard(units, rows, read):
        ids[part] = table["id"].to_numpy()
        valid[part] = schema.valid_mask(table["status"])
        label[part] = table["label"].to_numpy()
        heldout[part] = schema.heldout_mask(table["key_hash"].to_numpy(), holdout)
    heldout &= valid
    clusters = load_clustering(run, units, rows, "cluster", "assign")
    samples = Samples(ids, valid, heldout, label, clusters, sizes)
    for name, loader in loaders.items():
        samples.columns[name] = loader(run, units, rows)
    return samples


def concat_rows(run: Folder, units: list[str], columns: list[str]) -> pa.Table:
    """Columns of the embed table (key, shard, position, label, caption...), all shards."""
    return pa.concat_tables(schema.read_rows(run, u, columns) for u in units)
