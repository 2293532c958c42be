"""SemDeDup as work units: `group` sends each sample to its cluster's bucket, `dedup` runs the
SemDeDup rule over every cluster of a bucket.

The stage stores, for every member, its highest similarity to an earlier member and which one
(no eps), so any eps or rate is a threshold on it: `decide` applies it, and a sweep reuses it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from curation.stage import Context
from curation.storage import Folder
from metrics.semdedup import semdedup
from pipelines.data_pruning.cluster import valid_rows
from pipelines.data_pruning.layout import (
    load_array,
    read_table,
    save_array,
    shard_units,
    write_table,
)

MAX_BUCKETS = 64
ALL_EARLIER = 2.0  # an eps this large flags every member that has an earlier one


def bucket_count(ctx: Context) -> int:
    return min(ctx.config.clusters, MAX_BUCKETS)


def bucket_units(ctx: Context) -> list[str]:
    return [f"{b:05d}" for b in range(bucket_count(ctx))]


def group_shard(ctx: Context, unit: str) -> dict:
    """Split a shard's valid samples by cluster bucket (cluster mod bucket count)."""
    rows = valid_rows(ctx, unit)
    assigned = read_table(ctx.run, "assign", f"{unit}.parquet").take(rows)
    ids = read_table(ctx.run, "embed", f"{unit}.parquet", columns=["id"])["id"].take(rows)
    embeddings = load_array(ctx.run, "embed", f"{unit}.npy")[rows]
    cluster = assigned["cluster"].to_numpy()
    buckets = bucket_count(ctx)
    for bucket in range(buckets):
        members = np.flatnonzero(cluster % buckets == bucket)
        if len(members) == 0:
            continue
        name = f"{bucket:05d}"
        table = pa.table({"id": ids.take(members), "cluster": assigned["cluster"].take(members),
                          "distance": assigned["distance"].take(members)})  # fmt: skip
        write_table(ctx.run, table, "group", name, f"{unit}.parquet")
        save_array(ctx.run, embeddings[members], "group", name, f"{unit}.npy")
    return {"samples": len(rows)}


def dedup_bucket(ctx: Context, unit: str) -> dict:
    parts = [name[: -len(".parquet")] for name in ctx.run.listdir("group", unit)
             if name.endswith(".parquet")]  # fmt: skip
    ids, clusters, distances, embeddings = [], [], [], []
    for part in parts:
        table = read_table(ctx.run, "group", unit, f"{part}.parquet")
        ids.append(table["id"].to_numpy())
        clusters.append(table["cluster"].to_numpy())
        distances.append(table["distance"].to_numpy())
        embeddings.append(load_array(ctx.run, "group", unit, f"{part}.npy"))
    if ids:
        ids_all, cluster = np.concatenate(ids), np.concatenate(clusters)
        distance, vectors = np.concatenate(distances), np.concatenate(embeddings)
    else:
        ids_all = np.zeros(0, np.int64)
        cluster, distance = np.zeros(0, np.int32), np.zeros(0, np.float32)
        vectors = np.zeros((0, 1), np.float16)
    similarity = np.full(len(ids_all), -np.inf, dtype=np.float32)
    nearest = np.full(len(ids_all), -1, dtype=np.int64)
    for c in np.unique(cluster):
        members = np.flatnonzero(cluster == c)
        result = semdedup(vectors[members], distance[members], ids_all[members], ALL_EARLIER)
        similarity[members] = result.max_similarity
        nearest[members] = result.duplicate_of
    table = pa.table({"id": ids_all, "max_similarity": similarity, "nearest": nearest})
    write_table(ctx.run, table, "dedup", f"{unit}.parquet")
    return {"samples": len(ids_all), "clusters": len(np.unique(cluster))}


def load_dedup(run: Folder, buckets: list[str]) -> pa.Table:
    """Every valid sample's highest earlier similarity and its id, over all buckets."""
    return pa.concat_tables([read_table(run, "dedup", f"{b}.parquet") for b in buckets])


def non_duplicate_rows(ctx: Context) -> list[np.ndarray]:
    """Per shard, the valid rows SemDeDup keeps at the configured eps: DBP's re-clustering
    trains on these only."""
    table = load_dedup(ctx.run, bucket_units(ctx))
    similarity = table["max_similarity"].to_numpy().astype(np.float64)
    ids = table["id"].to_numpy()[similarity > 1.0 - ctx.config.dedup_eps]
    rows = []
    for unit in shard_units(ctx):
        positions = ids[(ids >> 32) == int(unit)] & 0xFFFFFFFF
        rows.append(np.setdiff1d(valid_rows(ctx, unit), positions))
    return rows
