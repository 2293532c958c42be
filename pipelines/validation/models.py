"""The models a validation trains: a probe on embeddings or a small CNN on images. Each carries
its input normalisation, so a saved checkpoint is a complete teacher."""

from __future__ import annotations

import os

import torch
from torch import nn

from curation.errors import CurateError
from curation.storage import Folder


class Standardise(nn.Module):
    """(x - mean) / std with statistics of the training split, stored with the model."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.float().clone())
        self.register_buffer("std", std.float().clamp_min(1e-6).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        return (x - self.mean) / self.std


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def _small_cnn(classes: int) -> list[nn.Module]:
    """Five 3x3 conv layers (32-32-64-64-128) and global pooling: trains on CPU in minutes
    at CIFAR size."""
    return [
        *_conv(3, 32),
        *_conv(32, 32),
        nn.MaxPool2d(2),
        *_conv(32, 64),
        *_conv(64, 64),
        nn.MaxPool2d(2),
        *_conv(64, 128),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, classes),
    ]


def build_model(spec: dict, mean: torch.Tensor, std: torch.Tensor) -> nn.Module:
    """`spec`: kind (linear, mlp or cnn), input shape, classes, hidden width (mlp)."""
    kind, classes = spec["kind"], spec["classes"]
    if kind == "linear":
        body = [nn.Linear(spec["input"][0], classes)]
    elif kind == "mlp":
        body = [
            nn.Linear(spec["input"][0], spec["hidden"]),
            nn.ReLU(),
            nn.Linear(spec["hidden"], classes),
        ]
    elif kind == "cnn":
        body = _small_cnn(classes)
    else:
        raise ValueError(f"unknown model kind {kind!r}")
    return nn.Sequential(Standardise(mean, std), *body)


def save_checkpoint(model: nn.Module, spec: dict, folder: Folder, *parts: str) -> None:
    folder.write_buffer(
        lambda buf: torch.save({"spec": spec, "state_dict": model.state_dict()}, buf), *parts
    )


def load_checkpoint(path: str, expected: dict) -> nn.Module:
    """A teacher saved by `curate validate`; its input and classes must match `expected`."""
    if not os.path.isfile(path):
        raise CurateError(f"teacher checkpoint not found: {path}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        spec, state = saved["spec"], saved["state_dict"]
    except Exception as exc:
        raise CurateError(
            f"{path} is not a teacher checkpoint written by curate validate ({type(exc).__name__})"
        ) from None
    if list(spec["input"]) != list(expected["input"]) or spec["classes"] != expected["classes"]:
        raise CurateError(
            f"teacher {path} takes input {list(spec['input'])} with {spec['classes']} classes; "
            f"this validation needs {list(expected['input'])} with {expected['classes']}"
        )
    mean, std = state["0.mean"], state["0.std"]
    model = build_model(spec, mean, std)
    model.load_state_dict(state)
    return model.eval()
