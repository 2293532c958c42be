"""Samples and the columns selection reads, one shard at a time.

Selection never holds every sample: each step reads one shard's `ShardSamples` (ids, status,
label, cluster and distance, and the columns the criterion and filter in use declare through
their loaders), decides or counts, and lets it go. `select_stats` gathers each shard's columns
into one file once (SemDeDup's similarities come from every cluster bucket), so that the passes
of the plan and the per-shard decisions read a single file per shard.

`Samples` is every shard at once, for the steps that hold the data anyway (validation trains on
the embeddings; the report shows every decision).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from itertools import pairwise
from typing import Any

import numpy as np
import pyarrow as pa

from curation.storage import Folder
from pipelines.data_pruning import schema

# (run, unit) -> the named columns of one shard, row-aligned with its embed table
Loader = Callable[[Folder, str], dict[str, Any]]


@dataclass
class ShardSamples:
    """One shard's rows in position (= id) order; `columns` holds what the criterion and
    filter in use declared."""

    index: int  # the shard's index in the input
    ids: np.ndarray  # int64: shard index << 32 | position
    valid: np.ndarray  # bool: embedded (not failed)
    heldout: np.ndarray  # bool: set aside for validation (valid, never a candidate)
    label: np.ndarray  # int64, -1 when unknown
    cluster: np.ndarray  # int32, -1 when failed
    distance: np.ndarray  # float64, nan when failed
    columns: dict[str, Any] = field(default_factory=dict)

    COMMON = ("id", "valid", "heldout", "label", "cluster", "distance")

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, name: str) -> Any:
        return self.columns[name]

    @property
    def candidates(self) -> np.ndarray:
        """Rows selection decides about: valid and not held out."""
        return np.flatnonzero(self.valid & ~self.heldout)

    def to_table(self) -> pa.Table:
        common = (self.ids, self.valid, self.heldout, self.label, self.cluster, self.distance)
        texts = {name: pa.array(values, pa.string()) for name, values in self.columns.items()
                 if isinstance(values, np.ndarray) and values.dtype.kind == "O"}  # fmt: skip
        columns = {**dict(zip(self.COMMON, common, strict=True)), **self.columns, **texts}
        return pa.table(columns)

    @classmethod
    def from_table(cls, index: int, table: pa.Table) -> ShardSamples:
        arrays = {name: table[name].to_numpy() for name in table.column_names
                  if not pa.types.is_string(table.schema.field(name).type)}  # fmt: skip
        texts = {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names
                 if name not in arrays}  # fmt: skip
        common = [arrays.pop(name) for name in cls.COMMON]
        return cls(index, *common, columns={**arrays, **texts})


COMMON_ROWS = ["id", "status", "label", "key_hash"]  # what `read_common` reads of the embed rows


def read_common(run: Folder, unit: str, holdout: float,
                rows: pa.Table | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """The columns every rule reads: ids, status, held out, label, cluster and distance (from
    `rows`, the shard's embed rows with `COMMON_ROWS`, when the caller read them already)."""
    rows = schema.read_rows(run, unit, COMMON_ROWS) if rows is None else rows
    assigned = schema.read_assignment(run, "assign", unit)
    valid = schema.valid_mask(rows["status"])
    return {
        "ids": rows["id"].to_numpy(),
        "valid": valid,
        "heldout": valid & schema.heldout_mask(rows["key_hash"].to_numpy(), holdout),
        "label": rows["label"].to_numpy(),
        "cluster": assigned["cluster"].to_numpy(),
        "distance": assigned["distance"].to_numpy().astype(np.float64),  # float32: exact
    }


def load_shard(run: Folder, unit: str, holdout: float, loaders: dict[str, Loader],
               rows: pa.Table | None = None) -> ShardSamples:  # fmt: skip
    """One shard's samples, with the columns of `loaders` (each returns named columns)."""
    samples = ShardSamples(int(unit), **read_common(run, unit, holdout, rows))
    for loader in loaders.values():
        samples.columns.update(loader(run, unit))
    return samples


# Every shard at once (validation, report)


@dataclass
class Clustering:
    """One k-means clustering: centroids and each sample's cluster and cosine distance."""

    centroids: np.ndarray | None  # (k, d) float32; None when the run did not cluster
    cluster: np.ndarray  # int32, -1 when failed
    distance: np.ndarray  # float64, nan when failed


@dataclass
class Samples:
    """Row-aligned columns over all shards, in input order (nan/-1 where not computed)."""

    ids: np.ndarray  # int64: shard index << 32 | position
    valid: np.ndarray  # bool: embedded (not failed)
    heldout: np.ndarray  # bool: set aside for validation (valid, never a candidate)
    label: np.ndarray  # int64, -1 when unknown
    clusters: Clustering
    shard_sizes: np.ndarray  # rows per shard, to split columns back per shard

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def candidates(self) -> np.ndarray:
        """Rows selection decides about: valid and not held out."""
        return np.flatnonzero(self.valid & ~self.heldout)

    def shard_rows(self) -> list[slice]:
        """Each shard's rows, to split columns back per shard."""
        return [slice(start, end) for start, end in pairwise(np.cumsum([0, *self.shard_sizes]))]


def load_samples(run: Folder, units: list[str], holdout: float) -> Samples:
    """Every shard's common columns, copied into arrays allocated once."""
    sizes = np.array([schema.row_count(run, u) for u in units], dtype=np.int64)
    n = int(sizes.sum())
    columns = {"ids": np.empty(n, np.int64), "valid": np.empty(n, bool),
               "heldout": np.empty(n, bool), "label": np.empty(n, np.int64),
               "cluster": np.empty(n, np.int32), "distance": np.empty(n, np.float64)}  # fmt: skip
    for unit, start, end in zip(units, np.cumsum([0, *sizes[:-1]]), np.cumsum(sizes),
                                strict=True):  # fmt: skip
        for name, values in read_common(run, unit, holdout).items():
            columns[name][start:end] = values
    centroids = schema.read_centroids(run) if run.exists("cluster", "centroids.npy") else None
    clusters = Clustering(centroids, columns.pop("cluster"), columns.pop("distance"))
    return Samples(**columns, clusters=clusters, shard_sizes=sizes)


def concat_rows(run: Folder, units: list[str], columns: list[str]) -> pa.Table:
    """Columns of the embed table (key, shard, position, label, caption...), all shards."""
    return pa.concat_tables(schema.read_rows(run, u, columns) for u in units)


def read_column(run: Folder, unit: str, name: str, read: Callable[[Folder, str], Any]) -> dict:
    """A loader of one named column from a per-shard reader."""
    return {name: read(run, unit)}


def column_loader(name: str, read: Callable[[Folder, str], Any]) -> Loader:
    return partial(read_column, name=name, read=read)
