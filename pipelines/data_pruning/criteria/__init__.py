"""The selection criteria, one module each; this registry is the one list of them.

The prune config's options, the pipeline's scoring stages, the CLI's `--metric` and
`--filter` choices, the sweep's metrics, the summary's parameters and the report's columns are
all read from here: adding a criterion is adding its module (copy `random.py`) and its entry.
"""

from __future__ import annotations

from typing import Any

from pipelines.data_pruning.criteria import (
    ccs,
    clip_score,
    dbp,
    el2n,
    keep_list,
    prototypicality,
    random,
    semdedup,
)
from pipelines.data_pruning.criteria.base import Criterion, Filter
from pipelines.data_pruning.decision import FAILED, HELDOUT
from pipelines.data_pruning.samples import Loader

CRITERIA: dict[str, Criterion] = {
    c.name: c
    for c in (
        prototypicality.CRITERION,
        random.CRITERION,
        dbp.CRITERION,
        semdedup.CRITERION,
        el2n.CRITERION,
        ccs.CRITERION,
        keep_list.CRITERION,
    )
}
FILTERS: dict[str, Filter] = {name: f for f in (clip_score.FILTER,) for name in f.names}


def ranked() -> list[str]:
    """The criteria that rank embedded samples at a rate: what `curate sweep` varies (a
    keep-list fixes its kept set itself)."""
    return [name for name, c in CRITERIA.items() if c.embeds]


def options() -> dict[str, tuple[Any, Any]]:
    """Every criterion's options, each declared by exactly one criterion."""
    found: dict[str, tuple[Any, Any]] = {}
    for criterion in CRITERIA.values():
        for name, option in criterion.options.items():
            if name in found:
                raise TypeError(f"option {name!r} is declared twice ({criterion.name})")
            found[name] = option
    return found


def reason_table() -> tuple[str, ...]:
    """Every reason a decision can give, FAILED first, each once."""
    reasons = [FAILED, HELDOUT]
    for rule in (*FILTERS.values(), *CRITERIA.values()):
        reasons += [r for r in rule.reasons if r not in reasons]
    return tuple(reasons)


def active_filter(config) -> Filter | None:
    return None if config.filter is None else FILTERS[config.filter.partition(":")[0]]


def loaders(config) -> dict[str, Loader]:
    """The per-shard columns the config's criterion and filter read."""
    found = dict(CRITERIA[config.metric].columns(config))
    if (f := active_filter(config)) is not None:
        found.update(f.columns(config))
    return found
