"""The data-pruning pipeline: embed -> cluster -> assign -> select -> reshard -> summary."""

from __future__ import annotations

from curation.config import PruneConfig
from curation.stage import Stage
from pipelines.data_pruning.cluster import assign_shard, train_clusters
from pipelines.data_pruning.embed import embed_shard
from pipelines.data_pruning.layout import barrier_unit, shard_units
from pipelines.data_pruning.reshard import clean_outputs, reshard_shard
from pipelines.data_pruning.select import select_samples
from pipelines.data_pruning.summary import clean_summary, write_summary


def _embed_params(c: PruneConfig) -> dict:
    return {
        "shards": c.shards,
        "model": c.model,
        "pretrained": c.pretrained,
        "device": c.device,
        "batch_size": c.batch_size,
        "label_field": c.label_field,
    }


def _cluster_params(c: PruneConfig) -> dict:
    return {
        "clusters": c.clusters,
        "iterations": c.kmeans_iterations,
        "seed": c.seed,
        "max_points_per_centroid": c.max_points_per_centroid,
    }


def _select_params(c: PruneConfig) -> dict:
    return {"rate": c.rate, "metric": c.metric, "keep": c.keep, "seed": c.seed}


def _output_params(c: PruneConfig) -> dict:
    return {"output": c.output}


def _none(c: PruneConfig) -> dict:
    return {}


STAGES = [
    Stage("embed", shard_units, embed_shard, _embed_params),
    Stage("cluster", barrier_unit, train_clusters, _cluster_params),
    Stage("assign", shard_units, assign_shard, _none),
    Stage("select", barrier_unit, select_samples, _select_params),
    Stage("reshard", shard_units, reshard_shard, _output_params, clean=clean_outputs),
    Stage("summary", barrier_unit, write_summary, _output_params, clean=clean_summary),
]
