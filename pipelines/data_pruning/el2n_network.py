"""el2n_network: EL2N from the network's own early training (Paul et al. 2021, "Deep Learning on
a Data Diet"), chosen with `--el2n-source network` (for `--metric el2n`, and `--metric ccs
--ccs-score el2n`).

An ensemble of `--el2n-models` networks (`--el2n-network`, initialised from seeds `--seed`,
`--seed + 1`...) is trained on the labelled candidates' images for `--el2n-epochs` epochs each
(SGD with Nesterov momentum, warm-up then cosine, padded crop and flip); each then scores every
candidate in eval mode on its un-augmented image, `||softmax(f(x)) - onehot(y)||_2`, and the
scores are averaged. The paper takes the scores at epoch 20 of a 200-epoch schedule; here each
network runs a short schedule of its own, annealed to the end.

A barrier, like `el2n`: every labelled candidate's image is held in memory (n x 3 x s x s
uint8: 150 MB for CIFAR-10's 50,000 at 32 px). Declaring it imports nothing heavy: torch is
imported by the stage function, on the worker that runs it.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field

from curation.errors import NoResultError
from curation.fields import Count
from curation.stage import Context, Lazy, Stage
from pipelines.data_pruning import schema
from pipelines.data_pruning.workers import THREADS

STAGE = "el2n_network"
BATCH_SIZE = 128
LEARNING_RATE = 0.1  # He et al.'s CIFAR ResNet rate at batch 128

OPTIONS = {
    "el2n_source": (
        Literal["probe", "network"],
        Field(
            "probe",
            description="el2n: probe (probes on the embeddings) or network (networks trained on "
            "the images, as Paul et al.).",
        ),
    ),
    "el2n_network": (
        str,
        Field(
            "pipelines.cifar_resnet:resnet20",
            description="el2n with --el2n-source network: timm:NAME, torchvision:NAME or "
            "module:function.",
        ),
    ),
    "el2n_epochs": (
        Count,
        Field(5, description="el2n with --el2n-source network: epochs per network."),
    ),
    "el2n_image_size": (
        Count,
        Field(32, description="el2n with --el2n-source network: image side the networks see."),
    ),
}


def _params(c) -> dict:
    return {"network": c.el2n_network, "models": c.el2n_models, "epochs": c.el2n_epochs,
            "image_size": c.el2n_image_size, "seed": c.seed}  # fmt: skip


def scoring(config) -> list[Stage]:
    return [Stage(STAGE, schema.barrier_unit, Lazy(f"{__name__}:score_network"), _params,
                  setup=THREADS)]  # fmt: skip


def read_scores(run, unit: str) -> np.ndarray:
    return schema.load_array(run, STAGE, f"{unit}.npy")


def _candidates(ctx: Context, unit: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The labelled candidates of a shard: rows, positions, labels; and the shard's row count."""
    table = schema.read_rows(ctx.run, unit, ["position", "label"])
    labels = table["label"].to_numpy()
    rows = schema.candidate_rows(ctx.run, unit, ctx.config.holdout)
    rows = rows[labels[rows] >= 0]
    return rows, table["position"].to_numpy()[rows], labels[rows], len(labels)


def score_network(ctx: Context, unit: str) -> dict:
    from pipelines.images import pick_images

    cfg = ctx.config
    units = schema.shard_units(ctx)
    found = [_candidates(ctx, u) for u in units]
    shard = np.concatenate([np.full(len(f[0]), i) for i, f in enumerate(found)])
    position = np.concatenate([f[1] for f in found])
    labels = np.concatenate([f[2] for f in found])
    if len(labels) == 0:
        raise NoResultError("EL2N needs labels: no sample has a .cls or a json "
                            f"'{cfg.label_field}' field (see --label-field)")  # fmt: skip
    images, readable = pick_images(cfg.shards, shard, position, cfg.el2n_image_size,
                                   cfg.storage_options)  # fmt: skip
    if not readable.any():
        raise NoResultError("EL2N from a network needs images: no candidate's image could "
                            "be read back from the input shards")  # fmt: skip
    classes, dense = np.unique(labels, return_inverse=True)  # one output per class seen
    scores = np.full(len(labels), np.nan)
    scores[readable] = ensemble_el2n(images[readable], dense[readable], len(classes), cfg)
    offsets = np.cumsum([0] + [len(f[0]) for f in found])
    for i, (shard_unit, (rows, _, _, size)) in enumerate(zip(units, found, strict=True)):
        column = np.full(size, np.nan)
        column[rows] = scores[offsets[i] : offsets[i + 1]]
        schema.save_array(ctx.run, column, STAGE, f"{shard_unit}.npy")
    return {"samples": int(readable.sum()), "unreadable": int((~readable).sum()),
            "classes": len(classes)}  # fmt: skip


def ensemble_el2n(images, labels: np.ndarray, classes: int, cfg) -> np.ndarray:
    """Mean EL2N over `cfg.el2n_models` networks, each trained `cfg.el2n_epochs` epochs on
    `images` (uint8 NCHW) and `labels` (in [0, classes)), scored un-augmented in eval mode."""
    import torch

    from metrics.el2n import el2n_from_probs
    from pipelines import training
    from pipelines.networks import build_network

    everyone = np.arange(len(labels))
    targets = torch.from_numpy(labels.astype(np.int64))
    steps = max(1, math.ceil(cfg.el2n_epochs * len(labels) / BATCH_SIZE))
    recipe = training.Recipe(steps=steps, batch_size=BATCH_SIZE, lr=LEARNING_RATE,
                             optimizer="sgd", augment=True)  # fmt: skip
    mean, std = training.input_statistics(images)
    total = np.zeros(len(labels))
    for m in range(cfg.el2n_models):
        seed = cfg.seed + m
        network = build_network(cfg.el2n_network, classes, seed=seed)
        model = torch.nn.Sequential(training.Standardise(mean, std), network)
        log = training.TrainingLog(f"el2n_network {m + 1}/{cfg.el2n_models}", steps)
        training.train(model, images, targets, everyone, recipe, seed, device=cfg.device,
                       log=log)  # fmt: skip
        probs = torch.softmax(training.logits(model, images, everyone, device=cfg.device), 1)
        total += el2n_from_probs(probs.double().numpy(), labels)
    return total / cfg.el2n_models
