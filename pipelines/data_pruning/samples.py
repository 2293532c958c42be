"""Every sample's identity and scores, gathered from the run directory into columns.

This is what selection reads: the `select` stage and `curate sweep` both decide from it, so a
sweep over rates and metrics never recomputes embeddings, clusters or scores.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

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
    clusters: Clustering
    shard_sizes: np.ndarray  # rows per shard, to split columns back per shard
    clip_score: np.ndarray | None = None  # float64, nan without caption; for --filter only
    el2n: np.ndarray | None = None  # float64, nan when unlabelled
    max_similarity: np.ndarray | None = None  # SemDeDup: highest similarity to an earlier member
    nearest: np.ndarray | None = None  # SemDeDup: id of that member, -1 for none
    dbp_clusters: Clustering | None = None  # DBP's re-clustering without duplicates

    def __len__(self) -> int:
        return len(self.ids)

    def shard_rows(self) -> list[slice]:
        """Each shard's rows, to split columns back per shard."""
        return _slices(self.shard_sizes)

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Global row of each id (ids are shard << 32 | position; a row per position)."""
        offsets = np.concatenate([[0], np.cumsum(self.shard_sizes)])
        return offsets[ids >> 32] + (ids & POSITION_MASK)


def _slices(sizes: np.ndarray) -> list[slice]:
    """Consecutive row ranges of the given sizes."""
    return [slice(start, end) for start, end in pairwise(np.cumsum([0, *sizes]))]


def _shard_sizes(run: Folder, units: list[str]) -> np.ndarray:
    """Rows per shard, from the parquet footers alone."""
    sizes = []
    for unit in units:
        with run.open_read("embed", f"{unit}.parquet") as f:
            sizes.append(pq.read_metadata(f).num_rows)
    return np.array(sizes, dtype=np.int64)


def _shards(
    run: Folder, folder: str, units: list[str], rows: list[slice], columns: list[str] | None = None
) -> Iterator[tuple[slice, pa.Table]]:
    """Each shard's rows and table. Callers copy its columns into arrays allocated once: a
    table of every shard, or per-shard arrays concatenated at the end, would double the peak
    (freed small arrays stay on the heap)."""
    for unit, shard_rows in zip(units, rows, strict=True):
        yield shard_rows, read_table(run, folder, f"{unit}.parquet", columns=columns)


def _clustering(
    run: Folder, units: list[str], rows: list[slice], centroids: str, assigned: str
) -> Clustering:
    n = rows[-1].stop if rows else 0
    cluster, distance = np.empty(n, dtype=np.int32), np.empty(n, dtype=np.float64)
    for part, table in _shards(run, assigned, units, rows):
        cluster[part] = table["cluster"].to_numpy()
        distance[part] = table["distance"].to_numpy()  # float32 to float64: exact
    return Clustering(load_array(run, centroids, "centroids.npy"), cluster, distance)


def load_samples(run: Folder, units: list[str], config: PruneConfig) -> Samples:
    sizes = _shard_sizes(run, units)
    rows = _slices(sizes)
    n = int(sizes.sum())
    ids, valid = np.empty(n, dtype=np.int64), np.empty(n, dtype=bool)
    label = np.empty(n, dtype=np.int64)
    for part, table in _shards(run, "embed", units, rows, ["id", "status", "label"]):
        ids[part] = table["id"].to_numpy()
        valid[part] = pc.equal(table["status"], "ok").to_numpy()
        label[part] = table["label"].to_numpy()
    samples = Samples(
        ids=ids,
        valid=valid,
        label=label,
        clusters=_clustering(run, units, rows, "cluster", "assign"),
        shard_sizes=sizes,
    )
    if config.needs_captions:
        samples.clip_score = np.empty(n, dtype=np.float64)
        for part, table in _shards(run, "embed", units, rows, ["clip_score"]):
            samples.clip_score[part] = table["clip_score"].to_numpy()
    if config.needs_el2n:
        samples.el2n = np.empty(n, dtype=np.float64)
        for unit, part in zip(units, rows, strict=True):
            samples.el2n[part] = load_array(run, "el2n", f"{unit}.npy")
    if config.needs_dedup:
        _add_dedup(samples, run)
    if config.metric == "dbp":
        samples.dbp_clusters = _clustering(run, units, rows, "dbp_cluster", "dbp_assign")
    return samples


def _add_dedup(samples: Samples, run: Folder) -> None:
    """Scatter SemDeDup's results into place one bucket at a time."""
    samples.max_similarity = np.full(len(samples), -np.inf)
    samples.nearest = np.full(len(samples), -1, dtype=np.int64)
    for name in run.listdir("dedup"):
        if name.endswith(".parquet"):
            table = read_table(run, "dedup", name)
            rows = samples.rows_of(table["id"].to_numpy())
            samples.max_similarity[rows] = table["max_similarity"].to_numpy()
            samples.nearest[rows] = table["nearest"].to_numpy()
