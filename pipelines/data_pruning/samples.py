"""Every sample's identity and scores, gathered from the run directory into columns.

This is what selection reads: the `select` stage and `curate sweep` both decide from it, so a
sweep over rates and metrics never recomputes embeddings, clusters or scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.config import PruneConfig
from curation.storage import Folder
from pipelines.data_pruning.layout import load_array, read_table

POSITION_MASK = 0xFFFFFFFF


@dataclass
class Clustering:
    """One k-means clustering: centroids and each sample's cluster and cosine distance."""

    centroids: np.ndarray  # (k, d) float32
    cluster: np.ndarray  # int32, -1 when failed
    distance: np.ndarray  # float64, nan when failed


@dataclass
class Samples:
    """Row-aligned columns over all shards, in input order (nan/-1 where not computed)."""

    ids: np.ndarray  # int64: shard index << 32 | position
    valid: np.ndarray  # bool: embedded (not failed)
    label: np.ndarray  # int64, -1 when unknown
    clip_score: np.ndarray  # float64, nan without caption or when not computed
    clusters: Clustering
    shard_sizes: np.ndarray  # rows per shard, to split columns back per shard
    el2n: np.ndarray | None = None  # float64, nan when unlabelled
    max_similarity: np.ndarray | None = None  # SemDeDup: highest similarity to an earlier member
    nearest: np.ndarray | None = None  # SemDeDup: id of that member, -1 for none
    dbp_clusters: Clustering | None = None  # DBP's re-clustering without duplicates

    def __len__(self) -> int:
        return len(self.ids)

    def per_shard(self, column: np.ndarray) -> list[np.ndarray]:
        return np.split(column, np.cumsum(self.shard_sizes)[:-1])

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Global row of each id (ids are shard << 32 | position; a row per position)."""
        offsets = np.concatenate([[0], np.cumsum(self.shard_sizes)])
        return offsets[ids >> 32] + (ids & POSITION_MASK)


def _clustering(run: Folder, units: list[str], centroids: str, assigned: str) -> Clustering:
    table = pa.concat_tables([read_table(run, assigned, f"{u}.parquet") for u in units])
    return Clustering(
        centroids=load_array(run, centroids, "centroids.npy"),
        cluster=table["cluster"].to_numpy(),
        distance=table["distance"].cast(pa.float64()).to_numpy(zero_copy_only=False),
    )


def load_samples(run: Folder, units: list[str], config: PruneConfig) -> Samples:
    columns = ["id", "status", "label", "clip_score"]
    tables = [read_table(run, "embed", f"{u}.parquet", columns=columns) for u in units]
    table = pa.concat_tables(tables)
    samples = Samples(
        ids=table["id"].to_numpy(),
        valid=pc.equal(table["status"], "ok").to_numpy(zero_copy_only=False).astype(bool),
        label=table["label"].to_numpy(),
        clip_score=table["clip_score"].to_numpy(zero_copy_only=False),
        clusters=_clustering(run, units, "cluster", "assign"),
        shard_sizes=np.array([len(t) for t in tables], dtype=np.int64),
    )
    if config.needs_el2n:
        samples.el2n = np.concatenate([load_array(run, "el2n", f"{u}.npy") for u in units])
    if config.needs_dedup:
        _add_dedup(samples, run)
    if config.metric == "dbp":
        samples.dbp_clusters = _clustering(run, units, "dbp_cluster", "dbp_assign")
    return samples


def _add_dedup(samples: Samples, run: Folder) -> None:
    buckets = [name for name in run.listdir("dedup") if name.endswith(".parquet")]
    table = pa.concat_tables([read_table(run, "dedup", name) for name in buckets])
    rows = samples.rows_of(table["id"].to_numpy())
    samples.max_similarity = np.full(len(samples), -np.inf)
    samples.nearest = np.full(len(samples), -1, dtype=np.int64)
    samples.max_similarity[rows] = table["max_similarity"].to_numpy()
    samples.nearest[rows] = table["nearest"].to_numpy()
