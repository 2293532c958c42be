"""The teachers a validation distils from, loaded once per worker process, and the view of the
samples each sees.

- `full` (the default): a model of the student's kind that validate trains on the whole pool
  with the first seed. It has seen the pruned samples, so part of a KD gain may come from them.
- `kept`: the same, trained on the kept subset only (validate's `kept+kd_kept` arm): a gain it
  gives cannot come from the pruned samples.
- `given`: `--teacher NAME --teacher-checkpoint FILE` (a network on images, e.g. a CIFAR
  ResNet-56 trained on all of CIFAR-10), or a `teacher.pt` an earlier validate wrote.

A teacher on images teaches a student on embeddings through the images of the same rows. With
`--teacher-cache` its outputs on the un-augmented pool are computed once and looked up.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from curation.storage import Folder
from pipelines import training
from pipelines.validation.config import ValidationConfig
from pipelines.validation.data import ValidationData
from pipelines.validation.models import (
    check_fits,
    load_checkpoint,
    network_teacher,
    on_images,
    read_checkpoint,
)
from pipelines.validation.pipeline import FULL, GIVEN, KEPT

TRAINED = (FULL, KEPT)  # the teachers validate trains itself


@dataclass
class Teacher:
    """`module` maps what it sees to logits; `inputs` is what it sees: None for the student's
    own batch, else the rows of this tensor (another view, or row numbers for a table)."""

    module: nn.Module
    inputs: torch.Tensor | None


class LogitTable(nn.Module):
    """A teacher's outputs, computed once: row numbers in, logits out."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.register_buffer("table", logits)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.table[rows]


@functools.lru_cache(maxsize=4)
def _checkpoint_on_images(path: str) -> bool:
    return on_images(load_checkpoint(path)[1])


def sees_images(config: ValidationConfig) -> bool:
    """Whether the teacher takes images (then a student on embeddings needs the image view)."""
    if config.teacher_kind == "network":
        return True
    if config.teacher_kind == "checkpoint":
        return _checkpoint_on_images(config.teacher)
    return config.on == "images"


def given_teacher(config: ValidationConfig, data: ValidationData) -> nn.Module:
    """`--teacher`: a named network, or a checkpoint written by validate that fits the data."""
    if config.teacher_kind == "network":
        return network_teacher(config, data.classes)
    model, spec = load_checkpoint(config.teacher)
    view = data.images if on_images(spec) and config.on == "embeddings" else data.inputs
    check_fits(spec, config.teacher, list(view.shape[1:]), data.classes)
    return model


def teacher_model(folder: Folder, config: ValidationConfig, name: str,
                  data: ValidationData) -> nn.Module:  # fmt: skip
    """Teacher `name` (`full`, `kept` or `given`) in eval mode; trained teachers are read from
    the teacher stage's checkpoints in `folder` (the validate or sweep run)."""
    if name in TRAINED:
        source = folder.url_of("teacher", f"{name}.pt")
        return read_checkpoint(folder.read_bytes("teacher", f"{name}.pt"), source)[0]
    return given_teacher(config, data)


def view_for(config: ValidationConfig, name: str, data: ValidationData) -> torch.Tensor:
    """The inputs teacher `name` takes: the student's, or the image view."""
    if name == GIVEN and config.on == "embeddings" and sees_images(config):
        return data.images
    return data.inputs


_CACHE: dict[tuple, Teacher] = {}


def teacher_for_student(folder: Folder, config: ValidationConfig, name: str, digest: str,
                        data: ValidationData) -> Teacher:  # fmt: skip
    """Teacher `name` as a student's training loop uses it; once per process for a teacher
    stage hash (`digest`)."""
    key = (folder.url, digest, name, config.teacher_cache, config.device)
    if key not in _CACHE:
        if len(_CACHE) >= len(TRAINED) + 1:
            _CACHE.clear()
        _CACHE[key] = _prepare(teacher_model(folder, config, name, data), view_for(
            config, name, data), config, data)  # fmt: skip
    return _CACHE[key]


def _prepare(model: nn.Module, view: torch.Tensor, config: ValidationConfig,
             data: ValidationData) -> Teacher:  # fmt: skip
    if config.teacher_cache:
        outputs = training.logits(model, view, data.pool, device=config.device)
        table = torch.zeros((len(view), outputs.shape[1]))
        table[torch.from_numpy(data.pool)] = outputs
        return Teacher(LogitTable(table), torch.arange(len(view)))
    return Teacher(model, None if view is data.inputs else view)
