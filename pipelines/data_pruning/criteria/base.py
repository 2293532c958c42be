"""What a criterion declares: everything the pipeline, the CLI, the summary, the sweep and the
report need to know about it, in one place.

A criterion adds options to the prune config (pydantic fields: type, default, help), scoring
stages that run before `select` (with the parameters they hash), the per-shard columns its rule
reads (each with the loader that reads them from the run directory), the rule in two halves (the
plan: passes over every shard that fix thresholds and quotas; the apply: one shard's decisions
from the plan), the reasons it gives, and what the summary records of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from curation.stage import Stage
    from pipelines.data_pruning.decision import Decision
    from pipelines.data_pruning.samples import Loader, ShardSamples
    from pipelines.data_pruning.selection import Selection, ShardView

# (selection, config, how many to keep per class group, notes) -> the plan (JSON), notes filled
Plan = Callable[["Selection", Any, np.ndarray, dict], dict]
# (plan, one shard's view, config, decision) -> None: decides every row of the view
Apply = Callable[[dict, "ShardView", Any, "Decision"], None]


def no_stages(config: Any) -> list[Stage]:
    return []


def no_columns(config: Any) -> dict[str, Loader]:
    return {}


def never(config: Any) -> bool:
    return False


def always(config: Any) -> bool:
    return True


def main_clusters(samples: ShardSamples) -> np.ndarray:
    return samples.cluster


@dataclass(frozen=True)
class Criterion:
    """`options`: name -> (annotation, pydantic Field) added to the prune config, declared
    once here (the CLI is generated from them); `scoring(config)`: the stages its scores need,
    in order (a stage another criterion also needs is listed by both and runs once);
    `columns(config)`: name -> loader of the per-shard columns its rule reads; `parameters`:
    the config fields its rule reads, hashed by `select_plan` and recorded in summary.json (as
    `summarise` gives them, when it differs); `plan` may give its own per-cluster table
    (`"clusters"`), whose kept column counts by `table_clusters`; `per_class`: whether
    --per-class applies (the criterion ranks within groups it can nest in classes); `embeds`:
    False for a rule that reads no embeddings (the shards' rows are read without decoding, no
    model, no clustering: every sample is in cluster 0)."""

    name: str
    meaning: str  # what its score means and which way it keeps: for help, console and report
    plan: Plan
    apply: Apply
    reasons: tuple[str, ...]
    options: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    scoring: Callable[[Any], list[Stage]] = no_stages
    columns: Callable[[Any], dict[str, Loader]] = no_columns
    parameters: tuple[str, ...] = ()
    summarise: Callable[[Any], dict[str, Any]] | None = None  # the values summary.json records
    cluster_columns: tuple[str, ...] = ()  # what its rule adds to the per-cluster table (report)
    needs_labels: Callable[[Any], bool] = never  # checked on the first shard before a run
    table_clusters: Callable[[ShardSamples], np.ndarray] = main_clusters
    per_class: bool = True
    embeds: bool = True

    def parameter_values(self, config: Any) -> dict[str, Any]:
        if self.summarise is not None:
            return self.summarise(config)
        return {name: getattr(config, name) for name in self.parameters}


@dataclass(frozen=True)
class Filter:
    """A filter applied before the criterion (`--filter NAME:VALUE`): `plan(selection, config,
    candidates, notes)` fixes its threshold and returns (plan, how many passed); `passes(plan,
    view, config)` is the mask over the view's rows that pass; `mark(plan, view, config,
    decision, passed)` gives the others their reasons."""

    names: tuple[str, ...]  # the NAME part of --filter values it accepts
    meaning: str
    plan: Callable[[Selection, Any, int, dict], tuple[dict, int]]
    passes: Callable[[dict, ShardView, Any], np.ndarray]
    mark: Callable[[dict, ShardView, Any, Decision, np.ndarray], None]
    reasons: tuple[str, ...]
    check: Callable[[str, float], None]  # raises ValueError for a bad VALUE
    columns: Callable[[Any], dict[str, Loader]] = no_columns
    needs_captions: bool = False
