"""The labelled images a model-pruning run trains and evaluates on, read from webdataset shards
once per process, and what is known of where the training shards came from."""

from __future__ import annotations

import functools
import posixpath
from dataclasses import dataclass

from curation import rundir
from curation.errors import CurateError
from curation.storage import Folder
from pipelines.images import LabelledImages, read_labelled
from pipelines.model_pruning.config import ModelSettings


@dataclass(frozen=True)
class ModelData:
    train: LabelledImages
    eval: LabelledImages
    classes: int


@functools.lru_cache(maxsize=4)
def _read(shards: tuple[str, ...], size: int, label_field: str) -> LabelledImages:
    return read_labelled(list(shards), size, label_field)


def _labelled(option: str, shards: list[str], config: ModelSettings) -> LabelledImages:
    images = _read(tuple(shards), config.image_size, config.label_field)
    if len(images) == 0:
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(images.skipped.items()))
        raise CurateError(
            f"--{option}: no labelled image in its {len(shards)} shards (a label is a .cls "
            f"member or the json field {config.label_field!r}); skipped: {skipped or 'none'}"
        )
    return images


def load_data(config: ModelSettings) -> ModelData:
    """Both splits, decoded at `--image-size`; the class count is `--classes` or the largest
    label + 1. A user error when a split has no labelled image or a label is out of range."""
    train = _labelled("train", config.train, config)
    evaluation = _labelled("eval", config.eval, config)
    largest = max(int(train.labels.max()), int(evaluation.labels.max()))
    classes = config.classes or largest + 1
    if largest >= classes:
        raise CurateError(f"--classes {classes}, but the shards have label {largest}")
    if len(train.labels.unique()) < 2:
        raise CurateError("--train: the labelled images are all of one class")
    return ModelData(train, evaluation, classes)


def curated_fraction(train: list[str]) -> dict | None:
    """When every training shard is in the output folder of a `curate prune` run: that run,
    its metric and rate, and the kept fraction of its valid samples (what the KD alpha rule
    reads). None otherwise."""
    folders = {posixpath.dirname(shard) for shard in train}
    if len(folders) != 1:
        return None
    folder = Folder(folders.pop())
    if not (folder.exists(rundir.MARKER) and folder.exists("summary.json")):
        return None
    summary = folder.read_json("summary.json")
    if "kept_samples" not in summary or not summary.get("valid_samples"):
        return None
    return {
        "prune_run": folder.read_json(rundir.MARKER)["run_dir"],
        "metric": summary.get("metric"),
        "rate": summary.get("rate_achieved"),
        "kept_fraction": summary["kept_samples"] / summary["valid_samples"],
    }
