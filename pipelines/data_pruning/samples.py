"""Every sample's identity and scores, gathered from the run directory into columns.

This is what selection reads: the `select` stage and `curate sweep` both decide from it, so a
sweep over rates and metrics never recomputes embeddings or clusters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.storage import Folder
from pipelines.data_pruning.layout import read_table


@dataclass
class Samples:
    """Row-aligned columns over all shards, in input order."""

    ids: np.ndarray  # int64
    valid: np.ndarray  # bool: embedded (not failed)
    cluster: np.ndarray  # int32, -1 when failed
    distance: np.ndarray  # float64 cosine distance to the nearest centroid, nan when failed
    label: np.ndarray  # int64, -1 when unknown
    shard_sizes: np.ndarray  # rows per shard, to split columns back per shard

    def __len__(self) -> int:
        return len(self.ids)

    def per_shard(self, column: np.ndarray) -> list[np.ndarray]:
        return np.split(column, np.cumsum(self.shard_sizes)[:-1])


def _shard_columns(run: Folder, unit: str) -> pa.Table:
    rows = read_table(run, "embed", f"{unit}.parquet", columns=["id", "status", "label"])
    assigned = read_table(run, "assign", f"{unit}.parquet")
    return rows.append_column("cluster", assigned["cluster"]).append_column(
        "distance", assigned["distance"].cast(pa.float64())
    )


def load_samples(run: Folder, units: list[str]) -> Samples:
    tables = [_shard_columns(run, unit) for unit in units]
    table = pa.concat_tables(tables)
    return Samples(
        ids=table["id"].to_numpy(),
        valid=pc.equal(table["status"], "ok").to_numpy(zero_copy_only=False).astype(bool),
        cluster=table["cluster"].to_numpy(),
        distance=table["distance"].to_numpy(zero_copy_only=False),
        label=table["label"].to_numpy(),
        shard_sizes=np.array([len(t) for t in tables], dtype=np.int64),
    )
