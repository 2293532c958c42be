"""EL2N (Paul et al. 2021, "Deep Learning on a Data Diet"): `||softmax(f(x)) - onehot(y)||_2`
averaged over a seeded ensemble of probes trained on the embeddings (or, with `--el2n-source
network`, of networks trained on the images: `el2n_network.py`); keep the highest (hardest),
optionally after dropping the very hardest first (often label noise)."""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from curation.fields import Count, Fraction, Natural
from curation.stage import Lazy, Stage
from pipelines.data_pruning import el2n_network, schema
from pipelines.data_pruning.criteria.base import Criterion
from pipelines.data_pruning.decision import Detail
from pipelines.data_pruning.samples import shard_array
from pipelines.data_pruning.workers import THREADS


def _el2n_params(c) -> dict:
    return {"models": c.el2n_models, "epochs": c.el2n_epochs, "hidden": c.el2n_hidden,
            "seed": c.seed}  # fmt: skip


def scoring(config) -> list[Stage]:
    if config.el2n_source == "network":
        return el2n_network.scoring(config)
    return [Stage("el2n", schema.barrier_unit, Lazy("pipelines.data_pruning.el2n:score_el2n"),
                  _el2n_params, setup=THREADS)]  # fmt: skip


def load_el2n(run, units, rows) -> np.ndarray:
    return shard_array(run, units, rows, schema.read_el2n, np.float64)


def columns(config) -> dict:
    return {"el2n": el2n_network.load_scores if config.el2n_source == "network" else load_el2n}


def drop_unlabelled(d, rows: np.ndarray) -> np.ndarray:
    """Rows without a score (no label) are pruned as such; the others are returned."""
    unlabelled = np.isnan(d.score[rows])
    d.mark(rows[unlabelled], "no_label")
    return rows[~unlabelled]


def keep_hardest(samples, cfg, d, rows, target) -> None:
    d.score = samples["el2n"]
    rows = drop_unlabelled(d, rows)
    order = rows[np.lexsort((samples.ids[rows], -d.score[rows]))]
    offset = math.floor(cfg.el2n_offset * len(order) + 1e-9)
    d.mark(order[:offset], "hardest_offset")
    why = f"among the hardest {cfg.el2n_offset:.0%} (--el2n-offset)"
    d.details.append(Detail(np.sort(order[:offset]), why))
    rest = order[offset:]  # already ranked: no second sort
    d.settle(rest, np.arange(len(rest)) < target, "hardest", "too_easy")
    d.notes["el2n"] = {"models": cfg.el2n_models, "epochs": cfg.el2n_epochs,
                       "probe": cfg.el2n_network if cfg.el2n_source == "network" else
                       f"MLP, {cfg.el2n_hidden} hidden" if cfg.el2n_hidden else "linear",
                       "offset": cfg.el2n_offset}  # fmt: skip


PROBE_OPTIONS = {
    "el2n_models": (Count, Field(10, description="el2n: probes in the ensemble.")),
    "el2n_epochs": (Count, Field(5, description="el2n: epochs per probe.")),
    "el2n_hidden": (Natural, Field(0, description="el2n: hidden units (0: linear probes).")),
}

CRITERION = Criterion(
    name="el2n",
    meaning="EL2N, ||softmax(probe(x)) - onehot(y)||_2 averaged over a seeded probe ensemble "
    "on the embeddings (needs labels): large is hard; the highest are kept, after "
    "--el2n-offset drops the very hardest",
    rule=keep_hardest,
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
    parameters=("el2n_models", "el2n_epochs", "el2n_hidden", "el2n_offset", "el2n_source"),
)
