"""The models a validation trains and the teachers it distils from: a probe on embeddings or a
network on images. Each starts with its input normalisation (`training.Standardise`), so a
saved checkpoint is a complete teacher."""

from __future__ import annotations

import io
import os

import torch
from torch import nn

from curation.errors import CurateError
from curation.storage import Folder
from pipelines.networks import build_network, load_network
from pipelines.training import Standardise
from pipelines.validation.config import ValidationConfig


def student_spec(config: ValidationConfig, input_shape: list[int], classes: int) -> dict:
    """What a student is: kind (linear, mlp or network), input shape, classes."""
    if config.on == "images":
        return {"kind": "network", "network": config.student, "input": input_shape,
                "classes": classes}  # fmt: skip
    return {"kind": config.probe, "input": input_shape, "classes": classes,
            "hidden": config.hidden}  # fmt: skip


def describe(spec: dict) -> str:
    if spec["kind"] == "network":
        return spec["network"]
    return "linear probe" if spec["kind"] == "linear" else f"mlp probe ({spec['hidden']} hidden)"


def build_model(spec: dict, mean: torch.Tensor, std: torch.Tensor, seed: int) -> nn.Module:
    """The untrained model of `spec`, initialised from `seed`, behind `Standardise(mean, std)`."""
    kind, classes = spec["kind"], spec["classes"]
    if kind == "network":
        return nn.Sequential(Standardise(mean, std), build_network(spec["network"], classes, seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "linear":
            body: nn.Module = nn.Linear(spec["input"][0], classes)
        elif kind == "mlp":
            body = nn.Sequential(nn.Linear(spec["input"][0], spec["hidden"]), nn.ReLU(),
                                 nn.Linear(spec["hidden"], classes))  # fmt: skip
        else:
            raise CurateError(f"unknown model kind {kind!r} (a checkpoint from another version?)")
    return nn.Sequential(Standardise(mean, std), body)


def on_images(spec: dict) -> bool:
    return len(spec["input"]) == 3


def save_checkpoint(model: nn.Module, spec: dict, folder: Folder, *parts: str) -> None:
    folder.write_buffer(
        lambda buf: torch.save({"spec": spec, "state_dict": model.state_dict()}, buf), *parts
    )


def load_checkpoint(path: str) -> tuple[nn.Module, dict]:
    """A teacher saved by `curate validate` (a local file) and its spec, in eval mode."""
    if not os.path.isfile(path):
        raise CurateError(f"teacher checkpoint not found: {path}")
    with open(path, "rb") as f:
        return read_checkpoint(f.read(), path)


def read_checkpoint(data: bytes, source: str) -> tuple[nn.Module, dict]:
    """A teacher checkpoint's bytes (read with weights_only=True) as a model and its spec."""
    try:
        saved = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        spec, state = saved["spec"], saved["state_dict"]
        mean, std = state["0.mean"], state["0.std"]
    except Exception as exc:
        raise CurateError(
            f"{source} is not a teacher checkpoint written by curate validate "
            f"({type(exc).__name__})"
        ) from None
    model = build_model(spec, mean, std, seed=0)
    model.load_state_dict(state)
    return model.eval(), spec


def check_fits(spec: dict, source: str, input_shape: list[int], classes: int) -> None:
    """A teacher must take this validation's inputs and predict its classes."""
    if list(spec["input"]) != list(input_shape) or spec["classes"] != classes:
        raise CurateError(
            f"teacher {source} takes input {list(spec['input'])} with {spec['classes']} "
            f"classes; this validation has input {list(input_shape)} with {classes}"
        )


def network_teacher(config: ValidationConfig, classes: int) -> nn.Module:
    """`--teacher NAME` with the weights of `--teacher-checkpoint`, behind its input
    normalisation (`--teacher-mean`, `--teacher-std`, on images scaled to [0, 1])."""
    network = load_network(config.teacher, classes, config.teacher_checkpoint)
    mean = torch.tensor(config.teacher_mean).view(3, 1, 1)
    std = torch.tensor(config.teacher_std).view(3, 1, 1)
    return nn.Sequential(Standardise(mean, std), network).eval()
