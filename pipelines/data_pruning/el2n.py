"""EL2N (Paul et al. 2021) from a seeded ensemble of probes on the embeddings, in two stages.

`el2n_train` (a barrier) trains the probes on a seeded sample of the labelled candidates, at
most `--el2n-samples` of them: the ones with the smallest hash of (seed, id), exact by the
top-k of `metrics.topk`, their embeddings read row by row; a tenth of the sample is held back
to measure the probes. It records their accuracy and the spread of the sample's scores. `el2n`
(per shard) scores a shard's labelled candidates with them. Memory: the sample, whatever the
data. Held-out samples (--holdout) neither train the probes nor get a score.
"""

from __future__ import annotations

import numpy as np

from curation.errors import NoResultError
from curation.stage import Context
from metrics.el2n import accuracy, el2n_scores, train_probes
from metrics.topk import hash_rank
from pipelines.data_pruning import schema
from pipelines.data_pruning.samples import ShardSamples, read_common
from pipelines.data_pruning.selection import Selection, ShardView, add_counts

HELD_BACK = 0.1  # of the training sample, not trained on: the probes' held-back accuracy
NEAR_CHANCE = 1.5  # accuracy below this many times 1 / classes is reported as near chance
QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


def _labelled(view: ShardView) -> np.ndarray:
    return view.rows[view.samples.label[view.rows] >= 0]


def _by_hash(seed: int):
    def ranking(view: ShardView):
        rows = _labelled(view)
        return rows, np.zeros(len(rows), np.int64), hash_rank(view.samples.ids[rows], seed)

    return ranking


def _selection(ctx: Context) -> Selection:
    run, holdout = ctx.run, ctx.config.holdout
    units = schema.shard_units(ctx)
    return Selection(lambda: (ShardSamples(int(u), **read_common(run, u, holdout))
                              for u in units), None)  # fmt: skip


def _label_counts(selection: Selection) -> np.ndarray:
    """Labelled candidates per label (index: label)."""
    counts = np.zeros(0, np.int64)
    for view in selection.views():
        counts = add_counts(counts, np.bincount(view.samples.label[_labelled(view)]))
    return counts


def _sample(ctx: Context, selection: Selection, total: int) -> tuple[np.ndarray, np.ndarray]:
    """The training sample's embeddings and labels, in hash order."""
    cfg = ctx.config
    ranking = _by_hash(cfg.seed)
    cutoff = selection.top_k(ranking, np.array([min(cfg.el2n_samples, total)]))
    vectors, labels, ranks = [], [], []
    for view in selection.views():
        rows, inside = view.cut(cutoff, ranking)
        rows = rows[inside]
        if len(rows):
            unit = schema.unit_name(view.index)
            vectors.append(schema.read_embedding_rows(ctx.run, unit, rows).astype(np.float32))
            labels.append(view.samples.label[rows])
            ranks.append(hash_rank(view.samples.ids[rows], cfg.seed))
    order = np.argsort(np.concatenate(ranks), kind="stable")
    return np.concatenate(vectors)[order], np.concatenate(labels)[order]


def train_ensemble(ctx: Context, unit: str) -> dict:
    cfg = ctx.config
    selection = _selection(ctx)
    counts = _label_counts(selection)
    if counts.sum() == 0:
        raise NoResultError("EL2N needs labels: no sample has a .cls or a json "
                            f"'{cfg.label_field}' field (see --label-field)")  # fmt: skip
    x, labels = _sample(ctx, selection, int(counts.sum()))
    classes = np.flatnonzero(counts)  # the head has one output per class seen
    y = np.searchsorted(classes, labels)
    held = int(HELD_BACK * len(y))
    probes = train_probes(x[held:], y[held:], len(classes), models=cfg.el2n_models,
                          steps=cfg.el2n_steps, hidden=cfg.el2n_hidden, seed=cfg.seed,
                          lr=cfg.el2n_lr)  # fmt: skip
    record = _measure(probes, x, y, held, len(classes))
    record["classes"] = classes.tolist()
    weights = {f"{m}/{name}": value for m, probe in enumerate(probes) for name, value in
               probe.items()}  # fmt: skip
    schema.write_el2n_probes(ctx.run, weights, record)
    return {"samples": len(y), "classes": len(classes)}


def _measure(probes, x: np.ndarray, y: np.ndarray, held: int, classes: int) -> dict:
    """Accuracy on the rows trained on and on those held back, and the sample's score spread."""
    trained, back = accuracy(probes, x[held:], y[held:]), accuracy(probes, x[:held], y[:held])
    scores = el2n_scores(probes, x, y).astype(np.float64)
    measured = back["accuracy"] if held else trained["accuracy"]
    quantiles = np.quantile(scores, QUANTILES)
    return {
        "train_samples": len(y) - held,
        "held_back_samples": held,
        "train_accuracy": _round(trained["accuracy"]),
        "held_back_accuracy": _round(back["accuracy"]),
        "train_true_probability": _round(trained["true_probability"]),
        "chance": _round(1.0 / classes),
        "near_chance": bool(measured < NEAR_CHANCE / classes),
        "score_quantiles": dict(zip(map(str, QUANTILES), map(_round, quantiles), strict=True)),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def probes_of(weights: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The ensemble from the arrays `train_ensemble` saved ("m/name")."""
    probes: dict[int, dict[str, np.ndarray]] = {}
    for key, value in weights.items():
        m, name = key.split("/", 1)
        probes.setdefault(int(m), {})[name] = value
    return [probes[m] for m in sorted(probes)]


def score_shard(ctx: Context, unit: str) -> dict:
    """Every labelled candidate of a shard scored by the ensemble; nan for the other rows."""
    record = schema.read_el2n_record(ctx.run)
    probes = probes_of(schema.read_el2n_probes(ctx.run))
    common = read_common(ctx.run, unit, ctx.config.holdout)
    samples = ShardSamples(int(unit), **common)
    rows = samples.candidates[samples.label[samples.candidates] >= 0]
    column = np.full(len(samples), np.nan)
    if len(rows):
        classes = np.array(record["classes"], dtype=np.int64)
        x = schema.read_embeddings(ctx.run, unit)[rows].astype(np.float32)
        column[rows] = el2n_scores(probes, x, np.searchsorted(classes, samples.label[rows]))
    schema.write_el2n(ctx.run, unit, column)
    return {"samples": len(rows)}
