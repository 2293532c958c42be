"""Coverage-centric coreset selection, CCS (Zheng et al. ICLR 2023): cut the hardest first,
split the score range of the rest into equal-width strata and fill the budget stratum by
stratum, smallest first, sampling uniformly (seeded) within each."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from curation.errors import CurateError
from curation.fields import Fraction
from metrics.ccs import ccs, default_cutoff
from pipelines.data_pruning.criteria import el2n
from pipelines.data_pruning.criteria.base import Criterion
from pipelines.data_pruning.decision import Detail


def scores_el2n(config) -> bool:
    return config.ccs_score == "el2n"


def scoring(config) -> list:
    return el2n.scoring(config) if config.ccs_score == "el2n" else []


def columns(config) -> dict:
    return el2n.columns(config) if config.ccs_score == "el2n" else {}


def stratified(samples, cfg, d, rows, target) -> None:
    d.score = samples["el2n"] if cfg.ccs_score == "el2n" else samples.clusters.distance
    rows = el2n.drop_unlabelled(d, rows)
    cutoff = default_cutoff(cfg.rate) if cfg.ccs_cutoff is None else cfg.ccs_cutoff
    try:
        result = ccs(d.score[rows], samples.ids[rows], target, cutoff, seed=cfg.seed)
    except ValueError as exc:
        raise CurateError(f"--metric ccs with cutoff {cutoff}: {exc}") from None
    d.settle(rows, result.keep, "stratum_sample", "stratum_budget")
    d.mark(rows[result.cut], "hardest_cutoff")
    for s in np.flatnonzero(result.stratum_sizes):
        members = rows[(result.stratum == s) & ~result.keep]
        why = (f"stratum {s} [{result.edges[s]:.4f}, {result.edges[s + 1]:.4f}]: "
               f"{result.budgets[s]} of {result.stratum_sizes[s]} kept")  # fmt: skip
        d.details.append(Detail(members, why))
    d.notes["ccs"] = {"score": cfg.ccs_score, "cutoff": cutoff, "cut": int(result.cut.sum()),
                      "strata": len(result.budgets), "budgets": result.budgets.tolist(),
                      "stratum_sizes": result.stratum_sizes.tolist()}  # fmt: skip


CRITERION = Criterion(
    name="ccs",
    meaning="coverage-centric selection over --ccs-score: the hardest --ccs-cutoff cut "
    "first, then 50 equal-width score strata filled smallest first, uniformly at random "
    "within each",
    rule=stratified,
    reasons=("no_label", "stratum_sample", "stratum_budget", "hardest_cutoff"),
    options={
        "ccs_score": (
            Literal["prototypicality", "el2n"],
            Field(
                "prototypicality",
                description="ccs: the score to stratify, prototypicality or el2n.",
            ),
        ),
        "ccs_cutoff": (
            Fraction | None,
            Field(
                None, description="ccs: fraction of the hardest cut first (default from the rate)."
            ),
        ),
    },
    scoring=scoring,
    columns=columns,
    parameters=("ccs_score", "ccs_cutoff", "el2n_models", "el2n_epochs", "el2n_hidden"),
    needs_labels=scores_el2n,
)
