"""The labelled samples a validation trains and tests on: the pool (the run's labelled
candidates, from which every arm's subset is taken) and a test set the pruning never saw, the
user's `--eval` shards or the run's held-out samples (`curate prune --holdout`).

Loaded once per worker process (`cached`): every unit a worker runs trains on the same tensors.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch

from curation import rundir
from curation.errors import CurateError
from curation.storage import Folder
from pipelines.data_pruning import schema
from pipelines.data_pruning.finished import FinishedRun, open_run
from pipelines.images import pick_images, read_labelled
from pipelines.validation.config import ValidationConfig
from pipelines.validation.pipeline import EVAL


@dataclass
class ValidationData:
    """Pool rows, then test rows, in one tensor, so that training and testing index the same
    inputs. `images` is the image view of the same rows, for an image teacher of a student on
    embeddings."""

    inputs: torch.Tensor  # (n, d) float32 embeddings, or (n, 3, s, s) uint8 images
    labels: torch.Tensor  # (n,) int64
    pool_rows: np.ndarray  # each pool entry's row in the run's samples
    classes: int
    test_source: str
    images: torch.Tensor | None = None
    skipped: dict = field(default_factory=dict)

    @property
    def pool(self) -> np.ndarray:
        return np.arange(len(self.pool_rows))

    @property
    def test(self) -> np.ndarray:
        return np.arange(len(self.pool_rows), len(self.labels))

    def subset(self, rows: np.ndarray) -> np.ndarray:
        """Pool indices of those of the run's `rows` that are in the pool."""
        return np.flatnonzero(np.isin(self.pool_rows, rows))


def check_test_set(run: FinishedRun, eval_shards: list[str]) -> None:
    """A user error, before anything is trained, when the run gives no test set."""
    if not eval_shards and run.config.holdout == 0:
        raise CurateError(
            f"run {run.run.url} has no held-out samples and no --eval shards were given: pass "
            "--eval SHARDS (your own evaluation set, e.g. ImageNet val), or prune again with "
            "--holdout F to set aside a fraction the pruning never sees"
        )


def _images_of(run: FinishedRun, rows: np.ndarray, size: int) -> tuple[torch.Tensor, np.ndarray]:
    table = run.rows(["shard", "position"])
    shard, position = table["shard"].to_numpy()[rows], table["position"].to_numpy()[rows]
    return pick_images(run.config.shards, shard, position, size, run.config.storage_options)


def _view(run: FinishedRun, rows: np.ndarray, config: ValidationConfig,
          embeddings: np.ndarray | None) -> tuple[torch.Tensor, np.ndarray]:  # fmt: skip
    """The student's inputs for the run's `rows`, and which could be read."""
    if config.on == "images":
        return _images_of(run, rows, config.image_size)
    return torch.from_numpy(embeddings[rows].astype(np.float32)), np.ones(len(rows), bool)


@dataclass
class _Part:
    inputs: torch.Tensor
    labels: np.ndarray
    images: torch.Tensor | None


def _run_part(run: FinishedRun, rows: np.ndarray, labels: np.ndarray, config: ValidationConfig,
              embeddings: np.ndarray | None, image_view: bool, skipped: Counter,
              what: str) -> tuple[_Part, np.ndarray]:  # fmt: skip
    """Inputs of some of the run's rows; rows whose image cannot be read are left out."""
    inputs, found = _view(run, rows, config, embeddings)
    images = None
    if image_view:
        images, readable = _images_of(run, rows, config.image_size)
        found &= readable
    if (~found).any():
        skipped[f"{what}: image unreadable"] += int((~found).sum())
    keep = torch.from_numpy(found)
    part = _Part(inputs[keep], labels[rows[found]], None if images is None else images[keep])
    return part, rows[found]


def _eval_part(folder: Folder, eval_shards: list[str], config: ValidationConfig, label_field: str,
               image_view: bool, skipped: Counter) -> _Part:  # fmt: skip
    """The --eval shards: their embeddings (written by the eval stage) or their images."""
    if config.on == "images":
        read = read_labelled(eval_shards, config.image_size, label_field)
        for why, n in read.skipped.items():
            skipped[f"eval: {why}"] += n
        return _Part(read.images, read.labels.numpy(), None)
    inner = Folder(folder.url_of(EVAL), folder.storage_options)
    units = [schema.unit_name(i) for i in range(len(eval_shards))]
    vectors, labels, shard, position = [], [], [], []
    for i, unit in enumerate(units):
        table = schema.read_rows(inner, unit, ["status", "label", "position"])
        label = table["label"].to_numpy()
        keep = schema.valid_mask(table["status"]) & (label >= 0)
        skipped["eval: failed or unlabelled"] += int((~keep).sum())
        if keep.any():
            vectors.append(schema.read_embeddings(inner, unit)[keep].astype(np.float32))
        labels.append(label[keep])
        shard.append(np.full(int(keep.sum()), i))
        position.append(table["position"].to_numpy()[keep])
    inputs = torch.from_numpy(np.concatenate(vectors)) if vectors else torch.zeros((0, 0))
    part = _Part(inputs, np.concatenate(labels), None)
    if image_view:
        images, found = pick_images(eval_shards, np.concatenate(shard),
                                    np.concatenate(position), config.image_size)  # fmt: skip
        skipped["eval: image unreadable"] += int((~found).sum())
        keep = torch.from_numpy(found)
        part = _Part(part.inputs[keep], part.labels[found], images[keep])
    return part


def load(run_dir: str, folder: Folder, config: ValidationConfig, eval_shards: list[str],
         image_view: bool, storage_options: dict | None = None) -> ValidationData:  # fmt: skip
    """The pool and the test set of a validation (`folder`: the validate or sweep run)."""
    run = open_run(run_dir, ("embed", "assign"), storage_options)
    samples = run.samples()
    usable = samples.valid & (samples.label >= 0)
    embeddings = run.embeddings() if config.on == "embeddings" else None
    skipped: Counter = Counter()
    pool, pool_rows = _run_part(run, np.flatnonzero(usable & ~samples.heldout), samples.label,
                                config, embeddings, image_view, skipped, "pool")  # fmt: skip
    if eval_shards:
        test = _eval_part(folder, eval_shards, config, run.config.label_field, image_view,
                          skipped)  # fmt: skip
        source = f"--eval {config.eval} ({len(eval_shards)} shards)"
    else:
        test_rows = np.flatnonzero(usable & samples.heldout)
        test, _ = _run_part(run, test_rows, samples.label, config, embeddings,
                                    image_view, skipped, "held out")  # fmt: skip
        source = f"the run's held-out samples (--holdout {run.config.holdout:g})"
    return _assemble(pool, pool_rows, test, source, dict(skipped))


def _assemble(pool: _Part, pool_rows: np.ndarray, test: _Part, source: str,
              skipped: dict) -> ValidationData:  # fmt: skip
    if len(np.unique(pool.labels)) < 2:
        raise CurateError(
            "validation needs labels (a .cls member or a json label field) of at least two "
            f"classes among the run's candidates; it has {len(pool.labels)} labelled"
        )
    if len(test.labels) == 0:
        raise CurateError(f"the test set ({source}) has no labelled sample")
    labels = np.concatenate([pool.labels, test.labels]).astype(np.int64)
    images = None
    if pool.images is not None:
        images = torch.cat([pool.images, test.images])
    return ValidationData(
        inputs=torch.cat([pool.inputs, test.inputs]),
        labels=torch.from_numpy(labels),
        pool_rows=pool_rows,
        classes=int(labels.max()) + 1,
        test_source=source,
        images=images,
        skipped=skipped,
    )


_CACHE: dict[str, ValidationData] = {}  # the data of the last validation this process ran


def cached(run_dir: str, folder: Folder, config: ValidationConfig, eval_shards: list[str],
           image_view: bool, storage_options: dict | None = None) -> ValidationData:  # fmt: skip
    """`load`, once per process for the same run, stage hashes and data options."""
    run = rundir.resolve(run_dir, storage_options)
    key = json.dumps([run_dir, rundir.read_config(run)["stages"],
                      rundir.recorded_hash(folder, EVAL), config.on, config.image_size,
                      eval_shards, image_view, folder.url])  # fmt: skip
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = load(run_dir, folder, config, eval_shards, image_view, storage_options)
    return _CACHE[key]
