"""The data-pruning pipeline: embed -> cluster -> assign -> [scores] -> select -> reshard ->
summary, where the scores stages depend on the metric."""

from __future__ import annotations

from functools import partial

from curation.config import PruneConfig
from curation.stage import Stage
from pipelines.data_pruning.cluster import assign_shard, train_clusters
from pipelines.data_pruning.dedup import (
    bucket_units,
    dedup_bucket,
    group_shard,
    non_duplicate_rows,
)
from pipelines.data_pruning.el2n import score_el2n
from pipelines.data_pruning.embed import embed_shard
from pipelines.data_pruning.layout import barrier_unit, shard_units
from pipelines.data_pruning.reshard import clean_outputs, reshard_shard
from pipelines.data_pruning.select import select_samples
from pipelines.data_pruning.summary import clean_summary, write_summary


def _embed_params(c: PruneConfig) -> dict:
    return {"shards": c.shards, "model": c.model, "pretrained": c.pretrained,
            "device": c.device, "batch_size": c.batch_size, "label_field": c.label_field,
            "captions": c.needs_captions}  # fmt: skip


def _cluster_params(c: PruneConfig) -> dict:
    return {"clusters": c.clusters, "iterations": c.kmeans_iterations, "seed": c.seed,
            "max_points_per_centroid": c.max_points_per_centroid}  # fmt: skip


def _el2n_params(c: PruneConfig) -> dict:
    return {"models": c.el2n_models, "epochs": c.el2n_epochs, "hidden": c.el2n_hidden,
            "seed": c.seed}  # fmt: skip


def _select_params(c: PruneConfig) -> dict:
    names = ("rate", "metric", "keep", "seed", "filter", "tau", "neighbors", "balance", "eps",
             "el2n_offset", "ccs_score", "ccs_cutoff")  # fmt: skip
    return {name: getattr(c, name) for name in names}


def _dbp_params(c: PruneConfig) -> dict:
    return {"eps": c.dedup_eps}


def _output_params(c: PruneConfig) -> dict:
    return {"output": c.output}


def _none(c: PruneConfig) -> dict:
    return {}


def stages(config: PruneConfig) -> list[Stage]:
    """The stages a config needs, in order; each metric adds the scores it reads."""
    found = [
        Stage("embed", shard_units, embed_shard, _embed_params),
        Stage("cluster", barrier_unit, train_clusters, _cluster_params),
        Stage("assign", shard_units, assign_shard, _none),
    ]
    if config.needs_dedup:
        found += [
            Stage("group", shard_units, group_shard, _none),
            Stage("dedup", bucket_units, dedup_bucket, _none),
        ]
    if config.metric == "dbp":
        found += [
            Stage("dbp_cluster", barrier_unit,
                  partial(train_clusters, folder="dbp_cluster", eligible=non_duplicate_rows),
                  _dbp_params),
            Stage("dbp_assign", shard_units,
                  partial(assign_shard, centroids_from="dbp_cluster", folder="dbp_assign"), _none),
        ]  # fmt: skip
    if config.needs_el2n:
        found.append(Stage("el2n", barrier_unit, score_el2n, _el2n_params))
    return [
        *found,
        Stage("select", barrier_unit, select_samples, _select_params),
        Stage("reshard", shard_units, reshard_shard, _output_params, clean=clean_outputs),
        Stage("summary", barrier_unit, write_summary, _output_params, clean=clean_summary),
    ]
