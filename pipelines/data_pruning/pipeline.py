"""The data-pruning pipeline: embed -> cluster -> assign -> [the criterion's scoring stages]
-> select_stats -> select_repeats -> select_plan -> select -> reshard -> summary. Declaring it
imports no stage module: each is named by path and imported by the worker that runs it."""

from __future__ import annotations

import itertools
from typing import Literal, get_args, get_origin

from curation.stage import Lazy, Stage
from pipelines.data_pruning import schema
from pipelines.data_pruning.criteria import CRITERIA, loaders
from pipelines.data_pruning.workers import THREADS

NAME = "prune"


def _embed_params(c) -> dict:
    """What an embedding depends on besides its shard (whose fingerprint its unit records):
    the shard list and the batch size are not among them, so adding shards embeds only the
    new ones and a new batch size or worker count embeds nothing again."""
    return {"model": c.model, "pretrained": c.pretrained, "device": c.device,
            "label_field": c.label_field, "captions": c.needs_captions}  # fmt: skip


def _precomputed_params(c) -> dict:
    return {"embeddings": c.embeddings, "field": c.embedding_field,
            "label_field": c.label_field, "captions": c.needs_captions}  # fmt: skip


def shard_fingerprint(ctx, unit: str) -> str:
    return ctx.config.fingerprints[int(unit)]


def _cluster_params(c) -> dict:
    """The clustering sees every shard as it is now: any change to the list or to a shard
    redoes it and every stage after it."""
    return {"shards": c.shards, "fingerprints": c.fingerprints, "clusters": c.clusters,
            "iterations": c.kmeans_iterations, "seed": c.seed, "holdout": c.holdout,
            "max_points_per_centroid": c.max_points_per_centroid}  # fmt: skip


def _stats_params(c) -> dict:
    return {"columns": sorted(loaders(c))}


def _plan_params(c) -> dict:
    names = ("rate", "metric", "seed", "filter", "neighbors", "per_class",
             *CRITERIA[c.metric].parameters)  # fmt: skip
    return {name: getattr(c, name) for name in names}


def _output_params(c) -> dict:
    return {"output": c.output}


def _none(c) -> dict:
    return {}


def _stage(name: str, units, module: str, function: str, params, **extra) -> Stage:
    return Stage(name, units, Lazy(f"pipelines.data_pruning.{module}:{function}"), params,
                 **extra)  # fmt: skip


def _rows_params(c) -> dict:
    return {"rows_only": True, "label_field": c.label_field}


def _row_stages(config) -> list[Stage]:
    """For a criterion that reads no embeddings: each shard's rows, read without decoding an
    image, and the one cluster every sample is in."""
    return [
        _stage("embed", schema.shard_units, "shard_rows", "read_shard", _rows_params,
               fingerprint=shard_fingerprint),
        _stage("assign", schema.shard_units, "shard_rows", "one_cluster", _none),
    ]  # fmt: skip


def scoring_stages(config) -> list[Stage]:
    """The stages whose outputs selection reads: embeddings, clusters, and the scores the
    config's criterion needs."""
    if not CRITERIA[config.metric].embeds:
        return [*_row_stages(config), *CRITERIA[config.metric].scoring(config)]
    return [
        *_embed_stages(config),
        _stage("cluster", schema.barrier_unit, "cluster", "train_clusters", _cluster_params,
               setup=THREADS),
        _stage("assign", schema.shard_units, "cluster", "assign_shard", _none, setup=THREADS),
        *CRITERIA[config.metric].scoring(config),
    ]  # fmt: skip


def _embed_stages(config) -> list[Stage]:
    """Embedding with the model, or reading precomputed embeddings (and their index)."""
    if config.embeddings is None:
        setup = Lazy("pipelines.data_pruning.workers:setup_embedder")
        return [_stage("embed", schema.shard_units, "embed", "embed_shard", _embed_params,
                       setup=setup, fingerprint=shard_fingerprint)]  # fmt: skip
    units = Lazy("pipelines.data_pruning.precomputed:index_units")
    buckets = Lazy("pipelines.data_pruning.precomputed:bucket_units")
    return [
        _stage("emb_parts", units, "precomputed", "index_part", _precomputed_params),
        _stage("emb_index", buckets, "precomputed", "index_bucket", _none),
        _stage("embed", schema.shard_units, "precomputed", "embed_precomputed", _none,
               fingerprint=shard_fingerprint),
    ]  # fmt: skip


def stages(config) -> list[Stage]:
    """The stages a config needs, in order."""
    return [
        *scoring_stages(config),
        _stage("select_stats", schema.shard_units, "select", "gather_shard", _stats_params),
        _stage("select_repeats", Lazy("pipelines.data_pruning.duplicates:part_units"),
               "duplicates", "find_repeats", _none),
        _stage("select_plan", schema.barrier_unit, "select", "plan_selection", _plan_params),
        _stage("select", schema.shard_units, "select", "select_shard", _none),
        _stage("reshard", schema.shard_units, "reshard", "reshard_shard", _output_params,
               clean=Lazy("pipelines.data_pruning.reshard:clean_outputs")),
        _stage("summary", schema.barrier_unit, "summary", "write_summary", _output_params,
               clean=Lazy("pipelines.data_pruning.summary:clean_summary")),
    ]  # fmt: skip


def _choices(annotation) -> tuple:
    """The values of an option that can change the stages: a Literal's; an optional option's
    given or not (1 stands for given: stages depend only on whether it is None)."""
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    return (None, 1) if type(None) in get_args(annotation) else ()


def _templates() -> list:
    """A config for each way the stages can differ: embedded by a model or read from
    precomputed embeddings, times each criterion with each combination of its options' choices
    (a Literal's values, an optional option given or not), which are what its scoring stages
    may depend on."""
    from pipelines.data_pruning.config import PruneConfig

    found = []
    for embeddings, (name, criterion) in itertools.product((None, "given"), CRITERIA.items()):
        fixed = {o: _choices(a) for o, (a, _) in criterion.options.items() if _choices(a)}
        for values in itertools.product(*fixed.values()):
            choice = dict(zip(fixed, values, strict=True))
            found.append(PruneConfig.model_construct(metric=name, embeddings=embeddings, **choice))
    return found


def every_stage() -> list[Stage]:
    """Every stage some config runs, in pipeline order: what a scheduler that lays out a run
    before it sees the config (an Airflow DAG) holds."""
    union: list[Stage] = []
    lists = [stages(config) for config in _templates()]
    for found in lists:
        for i, stage in enumerate(found):
            names = [s.name for s in union]
            if stage.name not in names:
                at = names.index(found[i - 1].name) + 1 if i else 0
                union.insert(at, stage)
    order = [s.name for s in union]
    for found in lists:
        positions = [order.index(s.name) for s in found]
        if positions != sorted(positions):
            raise TypeError(f"two configs order their stages differently: {order}")
    return union


def is_barrier(stage: Stage) -> bool:
    return stage.units is schema.barrier_unit
