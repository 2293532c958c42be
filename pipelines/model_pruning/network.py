"""The network a run prunes: built by name, its dense weights, its prunable layers, and the
input normalisation it is trained and evaluated behind.

The normalisation stays outside the network (`Normalised` wraps it), so every saved state_dict
is the plain network's and loads into its class with `load_state_dict`.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from curation.errors import CurateError
from metrics.prunable import PruningError, prunable_layers, prunable_weights
from pipelines.model_pruning.config import ModelSettings
from pipelines.networks import build_network, load_network


class Normalised(nn.Module):
    """uint8 (or [0, 1] float) RGB images -> `(x / 255 - mean) / std` -> `net`."""

    def __init__(self, net: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        return self.net((x - self.mean) / self.std)


def normalised(net: nn.Module, config: ModelSettings) -> Normalised:
    return Normalised(net, config.mean, config.std)


def derived_seed(seed: int, purpose: str) -> int:
    """A seed for one purpose (a re-initialisation) that no other seed of the run equals."""
    digest = hashlib.blake2b(f"{seed}:{purpose}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


def dense_network(config: ModelSettings, classes: int) -> nn.Module:
    """The network with the checkpoint's weights, or initialised from `--seed` without one."""
    if config.checkpoint is None:
        return build_network(config.model, classes, seed=config.seed).eval()
    return load_network(config.model, classes, config.checkpoint)


def empty_network(config: ModelSettings, classes: int, seed: int = 0) -> nn.Module:
    """The network initialised from `seed`: a structure to load a saved state into, or a
    re-initialisation."""
    return build_network(config.model, classes, seed=seed)


def check_prunable(net: nn.Module, config: ModelSettings) -> dict[str, nn.Module]:
    """The prunable layers (Conv2d and Linear weights, minus `--exclude`); a user error when
    there are none or an exclusion names no layer."""
    try:
        layers = prunable_layers(net, config.exclude)
    except PruningError as exc:
        raise CurateError(f"--exclude: {exc}") from None
    if not layers:
        raise CurateError(
            f"network {config.model} has no prunable layer (a Conv2d or Linear weight)"
            + (" outside --exclude" if config.exclude else "")
        )
    return layers


def weights(net: nn.Module, config: ModelSettings) -> dict[str, torch.Tensor]:
    return prunable_weights(net, config.exclude)


def parameter_counts(net: nn.Module) -> dict[str, int]:
    """Every parameter of the network, and those that are not zero."""
    values = [p.detach() for p in net.parameters()]
    return {
        "parameters": sum(v.numel() for v in values),
        "nonzero_parameters": sum(int(v.count_nonzero()) for v in values),
    }
