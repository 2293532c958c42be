"""Decide which samples to keep, for one rate and criterion, in two halves: `decide` plans
(passes over every shard fix the filter's and the criterion's thresholds, quotas and notes, in
memory that does not grow with the samples) and `decide_shard` applies the plan to one shard.

The `select_*` stages write both halves' results; `curate sweep` calls `keep_mask` for every
rate and metric over the same shards. Each rule is in its criterion's module (`criteria/`);
definitions follow ALGORITHMS.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from curation.errors import CurateError
from curation.storage import Folder
from metrics.selection import kept_count, proportional_quotas
from pipelines.data_pruning import schema
from pipelines.data_pruning.cluster_table import ClusterSums, cluster_table
from pipelines.data_pruning.criteria import CRITERIA, active_filter, loaders, reason_table
from pipelines.data_pruning.decision import HELDOUT, Decision
from pipelines.data_pruning.samples import ShardSamples, load_shard
from pipelines.data_pruning.selection import Selection, ShardView, add_counts


@dataclass
class Census:
    """What one pass over every shard's candidates finds: how many, how many of each label
    (`labels[i]`: label i), how many without one, and the per-cluster sums of the main
    clustering (the default per-cluster table)."""

    candidates: int
    labels: np.ndarray
    unlabelled: int
    sums: ClusterSums


def census(selection: Selection, clusters: int) -> Census:
    sums, labels, candidates, unlabelled = ClusterSums(clusters), np.zeros(0, np.int64), 0, 0
    for view in selection.views():
        rows, samples = view.rows, view.samples
        sums.add(samples.cluster[rows], samples.distance[rows])
        label = samples.label[rows]
        labels = add_counts(labels, np.bincount(label[label >= 0]))
        candidates, unlabelled = candidates + len(rows), unlabelled + int((label < 0).sum())
    return Census(candidates, labels, unlabelled, sums)


def _passing(only, record: dict, config, view: ShardView) -> np.ndarray:
    return view.rows[only.passes(record, view, config)]


def class_targets(selection: Selection, config, found: Census, total: int) -> np.ndarray:
    """--per-class: every class's share of `total`, proportional to its rows (after the
    filter); refused for a criterion that sets its own quotas, or when a candidate has no
    label."""
    if not CRITERIA[config.metric].per_class:
        raise CurateError(f"--per-class does not apply to --metric {config.metric}: its kept "
                          "quotas are per cluster")  # fmt: skip
    if found.unlabelled:
        raise CurateError(f"--per-class needs a label on every candidate: {found.unlabelled:,} "
                          f"of {found.candidates:,} have none (see --label-field)")  # fmt: skip
    selection.classes = np.flatnonzero(found.labels)
    rows = selection.total(lambda view: np.bincount(view.groups(view.rows),
                                                    minlength=selection.groups))  # fmt: skip
    return proportional_quotas(rows, total)


def decide(selection: Selection, config) -> dict:
    """The plan of a selection under `config` (JSON): the filter's and the criterion's
    thresholds and quotas, the per-cluster table (kept counted later, by the shards) and the
    notes the summary reports."""
    embeds = CRITERIA[config.metric].embeds
    centroids = selection.centroids("cluster") if embeds else None
    found = census(selection, len(centroids) if embeds else 1)
    notes: dict = {}
    target = found.candidates if config.rate is None else kept_count(found.candidates, config.rate)
    plan: dict = {"candidates": found.candidates, "target": target}
    passed = found.candidates
    if (only := active_filter(config)) is not None:
        plan["filter"], passed = only.plan(selection, config, found.candidates, notes)
        selection.narrowing = partial(_passing, only, plan["filter"], config)
    if target > passed:
        notes["short"] = f"only {passed} samples passed the filter; {target} were asked"
    targets = np.array([min(target, passed)])
    if config.per_class:
        targets = class_targets(selection, config, found, min(target, passed))
        plan["classes"] = selection.classes.tolist()
    plan["criterion"] = CRITERIA[config.metric].plan(selection, config, targets, notes)
    table = plan["criterion"].pop("clusters", None)
    plan["clusters"] = (cluster_table(found.sums, centroids, config.neighbors) if table is None
                        else table)  # fmt: skip
    plan["notes"] = notes
    return plan


def decide_shard(plan: dict, samples: ShardSamples, config) -> Decision:
    """One shard's decisions under the plan: held out, filtered, then the criterion's."""
    d = Decision.empty(len(samples), reason_table())
    d.mark(np.flatnonzero(samples.heldout), HELDOUT)
    classes = np.array(plan["classes"], dtype=np.int64) if "classes" in plan else None
    view = ShardView(samples, samples.candidates, classes)
    if (only := active_filter(config)) is not None:
        passed = only.passes(plan["filter"], view, config)
        only.mark(plan["filter"], view, config, d, passed)
        view.rows = view.rows[passed]
    CRITERIA[config.metric].apply(plan["criterion"], view, config, d)
    return d


def keep_mask(run: Folder, units: list[str], config) -> np.ndarray:
    """Every row's kept flag under `config` (its criterion, rate and options) from a run's
    scores, with every shard's columns held in memory: what `curate sweep` trains on for
    each (metric, rate)."""
    shards = [load_shard(run, unit, config.holdout, loaders(config)) for unit in units]
    plan = decide(Selection(lambda: iter(shards), partial(schema.read_centroids, run)), config)
    return np.concatenate([decide_shard(plan, s, config).keep for s in shards])
