"""EL2N (Paul et al. 2021, "Deep Learning on a Data Diet"): `||softmax(f(x)) - onehot(y)||_2`
averaged over a seeded ensemble of probes trained on the embeddings (or, with `--el2n-source
network`, of networks trained on the images: `el2n_network.py`); keep the highest (hardest),
optionally after dropping the very hardest first (often label noise)."""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from curation.fields import Count, Fraction, Natural, Positive
from curation.stage import Lazy, Stage
from metrics.topk import Cutoff, order_key
from pipelines.data_pruning import el2n_network, schema
from pipelines.data_pruning.criteria.base import Criterion, always
from pipelines.data_pruning.samples import column_loader
from pipelines.data_pruning.workers import THREADS


def _train_params(c) -> dict:
    return {"models": c.el2n_models, "steps": c.el2n_steps, "hidden": c.el2n_hidden,
            "samples": c.el2n_samples, "lr": c.el2n_lr, "seed": c.seed}  # fmt: skip


def _no_params(c) -> dict:
    return {}


def scoring(config) -> list[Stage]:
    """The probes train on a seeded sample (a barrier), then score every shard; or networks
    train on the images (`--el2n-source network`)."""
    if config.el2n_source == "network":
        return el2n_network.scoring(config)
    return [
        Stage("el2n_train", schema.barrier_unit,
              Lazy("pipelines.data_pruning.el2n:train_ensemble"), _train_params, setup=THREADS),
        Stage("el2n", schema.shard_units, Lazy("pipelines.data_pruning.el2n:score_shard"),
              _no_params, setup=THREADS),
    ]  # fmt: skip


def columns(config) -> dict:
    network = config.el2n_source == "network"
    return {"el2n": column_loader("el2n", el2n_network.read_scores if network else
                                  schema.read_el2n)}  # fmt: skip


def el2n_scores(view) -> np.ndarray:
    return view.samples["el2n"]


def scored(view, score) -> np.ndarray:
    """The view's rows that have a score (no label: no EL2N); `score(view)` is the column."""
    return view.rows[~np.isnan(score(view)[view.rows])]


def mark_unscored(view, score, d) -> None:
    """Rows without a score (no label) are pruned as such."""
    d.mark(view.rows[np.isnan(score(view)[view.rows])], "no_label")


def hardest_first(score):
    """The scored rows by class group, the highest score first."""

    def ranking(view):
        rows = scored(view, score)
        return rows, view.groups(rows), order_key(score(view)[rows], descending=True)

    return ranking


def offset_count(offset: float, scored: np.ndarray) -> np.ndarray:
    return np.array([math.floor(offset * n + 1e-9) for n in scored.tolist()], dtype=np.int64)


def plan(selection, cfg, targets: np.ndarray, notes: dict) -> dict:
    ranking = hardest_first(el2n_scores)
    groups = selection.groups
    counts = selection.total(lambda view: np.bincount(ranking(view)[1], minlength=groups))
    offset = offset_count(cfg.el2n_offset, counts)
    end = offset + np.minimum(targets, counts - offset)
    notes["el2n"] = {"models": cfg.el2n_models, "offset": cfg.el2n_offset,
                     **_trained(cfg)}  # fmt: skip
    return {"offset": selection.top_k(ranking, offset).to_json(),
            "end": selection.top_k(ranking, end).to_json()}  # fmt: skip


def _trained(cfg) -> dict:
    """What the ensemble was: networks on the images for some epochs, or probes for steps."""
    if cfg.el2n_source == "network":
        return {"probe": cfg.el2n_network, "epochs": cfg.el2n_epochs}
    hidden = f"MLP, {cfg.el2n_hidden} hidden" if cfg.el2n_hidden else "linear"
    return {"probe": hidden, "steps": cfg.el2n_steps}


def apply(record: dict, view, cfg, d) -> None:
    d.score = view.samples["el2n"]
    mark_unscored(view, el2n_scores, d)
    ranking = hardest_first(el2n_scores)
    rows, dropped = view.cut(Cutoff.from_json(record["offset"]), ranking)
    within = view.cut(Cutoff.from_json(record["end"]), ranking)[1]
    d.mark(rows[dropped], "hardest_offset")
    d.explain(rows[dropped], f"among the hardest {cfg.el2n_offset:.0%} (--el2n-offset)")
    d.settle(rows[~dropped], within[~dropped], "hardest", "too_easy")


PROBE_OPTIONS = {
    "el2n_models": (Count, Field(10, description="el2n: probes in the ensemble.")),
    "el2n_steps": (Count, Field(500, description="el2n: Adam steps per probe (batches of 256).")),
    "el2n_lr": (Positive, Field(0.01, description="el2n: the probes' learning rate.")),
    "el2n_hidden": (Natural, Field(0, description="el2n: hidden units (0: linear probes).")),
    "el2n_samples": (
        Count,
        Field(50_000, description="el2n: labelled samples the probes train on (seeded; a "
              "tenth held back to measure them)."),
    ),
}  # fmt: skip
PROBE_PARAMETERS = ("el2n_models", "el2n_steps", "el2n_lr", "el2n_hidden", "el2n_samples")

CRITERION = Criterion(
    name="el2n",
    meaning="EL2N, ||softmax(probe(x)) - onehot(y)||_2 averaged over a seeded probe ensemble "
    "on the embeddings (needs labels): large is hard; the highest are kept, after "
    "--el2n-offset drops the very hardest",
    plan=plan,
    apply=apply,
    reasons=("hardest_offset", "no_label", "hardest", "too_easy"),
    options={
        **PROBE_OPTIONS,
        **el2n_network.OPTIONS,
        "el2n_offset": (
            Fraction,
            Field(0.0, description="el2n: fraction of the hardest dropped first."),
        ),
    },
    scoring=scoring,
    columns=columns,
    parameters=(*PROBE_PARAMETERS, "el2n_offset", *el2n_network.OPTIONS),
    needs_labels=always,
)
