"""SemDeDup as work units: `group` sends each sample to its cluster's bucket, `dedup` runs the
SemDeDup rule over every cluster of a bucket.

The stage stores, for every member, its highest similarity to an earlier member and which one
(no eps, its id and key), so any eps or rate is a threshold on it: the rule applies it, and a
sweep reuses it. A bucket writes its members of each shard apart, so that a shard's
similarities are read without any other shard's.

The clusters are the run's (`assign`), or SemDeDup's own with `--dedup-clusters`
(`dedup_assign`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from curation.stage import Context
from metrics.semdedup import semdedup
from pipelines.data_pruning import schema

MAX_BUCKETS = 64
ALL_EARLIER = 2.0  # an eps this large flags every member that has an earlier one


def dedup_clustering(config) -> tuple[str, int]:
    """The assignment SemDeDup groups by and its number of clusters."""
    if config.dedup_clusters is None:
        return "assign", config.clusters
    return "dedup_assign", config.dedup_clusters


def bucket_count(ctx: Context) -> int:
    return min(dedup_clustering(ctx.config)[1], MAX_BUCKETS)


def bucket_units(ctx: Context) -> list[str]:
    return [schema.bucket_name(b) for b in range(bucket_count(ctx))]


def group_shard(ctx: Context, unit: str) -> dict:
    """Split a shard's candidates by cluster bucket (cluster mod bucket count)."""
    rows = schema.candidate_rows(ctx.run, unit, ctx.config.holdout)
    assigned = schema.read_assignment(ctx.run, dedup_clustering(ctx.config)[0], unit).take(rows)
    named = schema.read_rows(ctx.run, unit, ["id", "key"]).take(rows)
    embeddings = schema.read_embeddings(ctx.run, unit)[rows]
    cluster = assigned["cluster"].to_numpy()
    buckets = bucket_count(ctx)
    for bucket in range(buckets):
        members = np.flatnonzero(cluster % buckets == bucket)
        if len(members) == 0:
            continue
        table = pa.table({"id": named["id"].take(members), "key": named["key"].take(members),
                          "cluster": assigned["cluster"].take(members),
                          "distance": assigned["distance"].take(members)})  # fmt: skip
        schema.write_group_part(ctx.run, schema.bucket_name(bucket), unit, table,
                                embeddings[members])  # fmt: skip
    return {"samples": len(rows)}


def dedup_bucket(ctx: Context, unit: str) -> dict:
    parts = schema.group_parts(ctx.run, unit)
    keys = pa.chunked_array([c for t, _ in parts for c in t["key"].chunks], pa.string())
    if parts:
        ids_all = np.concatenate([t["id"].to_numpy() for t, _ in parts])
        cluster = np.concatenate([t["cluster"].to_numpy() for t, _ in parts])
        distance = np.concatenate([t["distance"].to_numpy() for t, _ in parts])
        vectors = np.concatenate([e for _, e in parts])
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
    order = np.argsort(ids_all)  # the member each one repeats is in the same bucket
    named = order[np.searchsorted(ids_all, nearest, sorter=order)]
    nearest_key = keys.take(pa.array(named, mask=nearest < 0))
    table = pa.table({"id": ids_all, "max_similarity": similarity, "nearest": nearest,
                      "nearest_key": nearest_key}, schema=schema.DEDUP_SCHEMA)  # fmt: skip
    shard = schema.id_shard(ids_all)
    for s in np.unique(shard).tolist():
        schema.write_dedup(ctx.run, unit, schema.unit_name(s), table.filter(shard == s))
    return {"samples": len(ids_all), "clusters": len(np.unique(cluster))}


def non_duplicate_rows(ctx: Context, eps: float) -> list[np.ndarray]:
    """Per shard, the candidates SemDeDup keeps at `eps`: DBP's re-clustering trains on these
    only."""
    rows = []
    for unit in schema.shard_units(ctx):
        table = schema.read_shard_dedup(ctx.run, unit)
        similarity = table["max_similarity"].to_numpy().astype(np.float64)
        positions = schema.id_position(table["id"].to_numpy()[similarity > 1.0 - eps])
        rows.append(
            np.setdiff1d(schema.candidate_rows(ctx.run, unit, ctx.config.holdout), positions)
        )
    return rows
