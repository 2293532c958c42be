"""What a criterion declares: everything the pipeline, the CLI, the summary, the sweep and the
report need to know about it, in one place.

A criterion adds options to the prune config (pydantic fields: type, default, help), scoring
stages that run before `select` (with the parameters they hash), the sample columns its rule
reads (each with the loader that gathers it from the run directory), the rule itself, the
reasons it gives, and what the summary records of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from curation.stage import Stage
    from curation.storage import Folder
    from pipelines.data_pruning.decision import Decision
    from pipelines.data_pruning.samples import Samples

# (samples, config, decision, candidate rows, how many to keep) -> None: fills the decision.
Rule = Callable[["Samples", Any, "Decision", np.ndarray, int], None]
# (run, shard units, each shard's rows in the gathered columns) -> the column
Loader = Callable[["Folder", list[str], list[slice]], Any]


def no_stages(config: Any) -> list[Stage]:
    return []


def no_columns(config: Any) -> dict[str, Loader]:
    return {}


def never(config: Any) -> bool:
    return False


def always(config: Any) -> bool:
    return True


@dataclass(frozen=True)
class Criterion:
    """`options`: name -> (annotation, pydantic Field) added to the prune config, declared
    once here (the CLI is generated from them); `scoring(config)`: the stages its scores need,
    in order (a stage another criterion also needs is listed by both and runs once);
    `columns(config)`: name -> loader of each sample column its rule reads; `parameters`: the
    config fields its rule reads, hashed by `select` and recorded in summary.json (as
    `summarise` gives them, when it differs)."""

    name: str
    meaning: str  # what its score means and which way it keeps: for help, console and report
    rule: Rule
    reasons: tuple[str, ...]
    options: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    scoring: Callable[[Any], list[Stage]] = no_stages
    columns: Callable[[Any], dict[str, Loader]] = no_columns
    parameters: tuple[str, ...] = ()
    summarise: Callable[[Any], dict[str, Any]] | None = None  # the values summary.json records
    cluster_columns: tuple[str, ...] = ()  # what its rule adds to the per-cluster table (report)
    needs_labels: Callable[[Any], bool] = never  # checked on the first shard before a run

    def parameter_values(self, config: Any) -> dict[str, Any]:
        if self.summarise is not None:
            return self.summarise(config)
        return {name: getattr(config, name) for name in self.parameters}


@dataclass(frozen=True)
class Filter:
    """A filter applied before the criterion (`--filter NAME:VALUE`): `rule` keeps some of the
    candidate rows and marks the others; returns the rows that passed."""

    names: tuple[str, ...]  # the NAME part of --filter values it accepts
    meaning: str
    rule: Callable[[Samples, Any, Decision, np.ndarray], np.ndarray]
    reasons: tuple[str, ...]
    check: Callable[[str, float], None]  # raises ValueError for a bad VALUE
    columns: Callable[[Any], dict[str, Loader]] = no_columns
    needs_captions: bool = False
