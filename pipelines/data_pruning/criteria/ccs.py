"""Coverage-centric coreset selection, CCS (Zheng et al. ICLR 2023): cut the hardest first,
split the score range of the rest into equal-width strata and fill the budget stratum by
stratum, smallest first, sampling uniformly (seeded) within each.

The cut is an exact top-k (ties by id); the uniform draw within a stratum keeps the members
with the smallest seeded hash of their id (until 0.1.0 it was one `rng.permutation` of each
stratum, which no streaming selection can reproduce). With --per-class every class is cut,
stratified and filled on its own, with its share of the budget."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from curation.errors import CurateError
from curation.fields import Fraction
from metrics.ccs import (
    STRATA,
    allocate,
    check_budget,
    cut_count,
    default_cutoff,
    strata_edges,
    stratify,
    stratum_step,
)
from metrics.topk import Cutoff, hash_rank
from pipelines.data_pruning.criteria import el2n
from pipelines.data_pruning.criteria.base import Criterion


def scores_el2n(config) -> bool:
    return config.ccs_score == "el2n"


def scoring(config) -> list:
    return el2n.scoring(config) if config.ccs_score == "el2n" else []


def columns(config) -> dict:
    return el2n.columns(config) if config.ccs_score == "el2n" else {}


def distances(view) -> np.ndarray:
    return view.samples.distance


def _scores(cfg):
    """The column CCS stratifies."""
    return el2n.el2n_scores if cfg.ccs_score == "el2n" else distances


def _score(view, cfg) -> np.ndarray:
    return _scores(cfg)(view)


def _hardest_first(cfg):
    return el2n.hardest_first(_scores(cfg))


def _cutoff(cfg) -> float:
    return default_cutoff(cfg.rate) if cfg.ccs_cutoff is None else cfg.ccs_cutoff


def _rest(view, cfg, cut: Cutoff) -> tuple[np.ndarray, np.ndarray]:
    """The scored rows the cut left, and their class groups."""
    rows, dropped = view.cut(cut, _hardest_first(cfg))
    return rows[~dropped], view.groups(rows[~dropped])


def _strata(view, cfg, record: dict) -> tuple[np.ndarray, np.ndarray]:
    """The rows the cut left and each one's group: class slot * STRATA + stratum."""
    rest, group = _rest(view, cfg, Cutoff.from_json(record["cut"]))
    low, step = np.array(record["low"]), np.array(record["step"])
    stratum = np.zeros(len(rest), dtype=np.int64)
    scores = _score(view, cfg)[rest]
    for g in np.unique(group):
        mine = group == g
        stratum[mine] = stratify(scores[mine], low[g], step[g])
    return rest, group * STRATA + stratum


def _by_hash(cfg, record: dict):
    def ranking(view):
        rest, group = _strata(view, cfg, record)
        return rest, group, hash_rank(view.samples.ids[rest], cfg.seed)

    return ranking


def _counts(selection, cfg) -> tuple[np.ndarray, int]:
    """Scored rows per class group, and how many scores are infinite."""

    def count(view):
        rows = el2n.scored(view, _scores(cfg))
        infinite = int(np.isinf(_score(view, cfg)[rows]).sum())
        return np.append(np.bincount(view.groups(rows), minlength=selection.groups), infinite)

    counts = selection.total(count)
    return counts[:-1], int(counts[-1])


def _ranges(selection, cfg, cut: Cutoff) -> tuple[np.ndarray, np.ndarray]:
    """The lowest and highest score the cut left in every class group."""
    low, high = np.full(selection.groups, np.inf), np.full(selection.groups, -np.inf)
    for view in selection.views():
        rest, group = _rest(view, cfg, cut)
        np.minimum.at(low, group, _score(view, cfg)[rest])
        np.maximum.at(high, group, _score(view, cfg)[rest])
    return low, high


def plan(selection, cfg, targets: np.ndarray, notes: dict) -> dict:
    cutoff = _cutoff(cfg)
    counts, infinite = _counts(selection, cfg)
    cuts = np.array([cut_count(cutoff, n) for n in counts.tolist()], dtype=np.int64)
    try:
        if infinite:
            raise ValueError("scores must be finite")
        for budget, n, cut in zip(targets.tolist(), counts.tolist(), cuts.tolist(), strict=True):
            check_budget(budget, n, cut)
    except ValueError as exc:
        raise CurateError(f"--metric ccs with cutoff {cutoff}: {exc}") from None
    cut = selection.top_k(_hardest_first(cfg), cuts)
    low, high = _ranges(selection, cfg, cut)
    left = counts > cuts
    step = np.where(left, [stratum_step(a, b) for a, b in zip(low, high, strict=True)], 0.0)
    low = np.where(left, low, 0.0)  # nothing left: the edges are all 0
    record = {"cut": cut.to_json(), "low": low.tolist(), "step": step.tolist()}
    sizes = selection.total(lambda view: np.bincount(
        _strata(view, cfg, record)[1], minlength=selection.groups * STRATA))  # fmt: skip
    sizes = np.asarray(sizes, dtype=np.int64).reshape(selection.groups, STRATA)
    budgets = np.zeros_like(sizes)
    for g, (target, counts) in enumerate(zip(targets.tolist(), sizes, strict=True)):
        budgets[g] = allocate(target, counts)
    record["sample"] = selection.top_k(_by_hash(cfg, record), budgets.ravel()).to_json()
    record.update(budgets=budgets.tolist(), sizes=sizes.tolist())
    one = selection.classes is None  # the notes of 0.1.0; per class, a list per class
    notes["ccs"] = {"score": cfg.ccs_score, "cutoff": cutoff, "cut": int(cuts.sum()),
                    "strata": STRATA, "budgets": budgets[0].tolist() if one else budgets.tolist(),
                    "stratum_sizes": sizes[0].tolist() if one else sizes.tolist()}  # fmt: skip
    return record


def apply(record: dict, view, cfg, d) -> None:
    d.score = _score(view, cfg)
    el2n.mark_unscored(view, _scores(cfg), d)
    rows, dropped = view.cut(Cutoff.from_json(record["cut"]), _hardest_first(cfg))
    rest, kept = view.cut(Cutoff.from_json(record["sample"]), _by_hash(cfg, record))
    group = _strata(view, cfg, record)[1]
    keep = np.isin(rows, rest[kept], assume_unique=True)
    d.settle(rows, keep, "stratum_sample", "stratum_budget")
    d.mark(rows[dropped], "hardest_cutoff")
    d.explain(rest[~kept], _stratum_texts(record)[group[~kept]])


def _stratum_texts(record: dict) -> np.ndarray:
    """The detail of a row pruned in each group: its stratum's range and budget."""
    budgets, sizes = np.ravel(record["budgets"]), np.ravel(record["sizes"])
    texts = []
    for c, (low, step) in enumerate(zip(record["low"], record["step"], strict=True)):
        edges = strata_edges(low, step)
        for s, g in enumerate(range(c * STRATA, (c + 1) * STRATA)):
            texts.append(f"stratum {s} [{edges[s]:.4f}, {edges[s + 1]:.4f}]: "
                         f"{budgets[g]} of {sizes[g]} kept")  # fmt: skip
    return np.array(texts, dtype=object)


CRITERION = Criterion(
    name="ccs",
    meaning="coverage-centric selection over --ccs-score: the hardest --ccs-cutoff cut "
    "first, then 50 equal-width score strata filled smallest first, uniformly at random "
    "(a seeded hash of each id) within each",
    plan=plan,
    apply=apply,
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
    parameters=("ccs_score", "ccs_cutoff", *el2n.PROBE_PARAMETERS),
    needs_labels=scores_el2n,
)
