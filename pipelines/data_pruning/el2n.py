"""el2n: EL2N scores (Paul et al. 2021) from a seeded ensemble of probes on the embeddings.

A barrier: the probes train on every labelled sample at once, so the embeddings of the whole
set are held in memory (N x d float32); this bounds EL2N to sets that fit in memory.
"""

from __future__ import annotations

import numpy as np

from curation.errors import NoResultError
from curation.stage import Context
from metrics.el2n import el2n
from pipelines.data_pruning import schema


def _labelled(ctx: Context, unit: str) -> tuple[np.ndarray, np.ndarray]:
    """The candidates with a label (held-out samples neither train the probes nor get a
    score), and every row's label."""
    labels = schema.read_rows(ctx.run, unit, ["label"])["label"].to_numpy()
    rows = schema.candidate_rows(ctx.run, unit, ctx.config.holdout)
    return rows[labels[rows] >= 0], labels


def score_el2n(ctx: Context, unit: str) -> dict:
    cfg = ctx.config
    units = schema.shard_units(ctx)
    rows, labels, vectors, sizes = [], [], [], []
    for shard_unit in units:
        shard_rows, shard_labels = _labelled(ctx, shard_unit)
        rows.append(shard_rows)
        labels.append(shard_labels[shard_rows])
        if len(shard_rows):  # a shard with no embedded sample has a (n, 0) array
            vectors.append(schema.read_embeddings(ctx.run, shard_unit)[shard_rows])
        sizes.append(len(shard_labels))
    y = np.concatenate(labels)
    if len(y) == 0:
        raise NoResultError("EL2N needs labels: no sample has a .cls or a json "
                            f"'{cfg.label_field}' field (see --label-field)")  # fmt: skip
    classes, dense = np.unique(y, return_inverse=True)  # the head has one output per class seen
    scores = el2n(np.concatenate(vectors).astype(np.float32), dense, models=cfg.el2n_models,
                  epochs=cfg.el2n_epochs, hidden=cfg.el2n_hidden, seed=cfg.seed)  # fmt: skip
    offsets = np.cumsum([0] + [len(r) for r in rows])
    for i, shard_unit in enumerate(units):
        column = np.full(sizes[i], np.nan)
        column[rows[i]] = scores[offsets[i] : offsets[i + 1]]
        schema.write_el2n(ctx.run, shard_unit, column)
    return {"samples": len(y), "classes": len(classes)}
