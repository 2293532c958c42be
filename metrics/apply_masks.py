"""Install masks on a model and bake them in, through ``torch.nn.utils.prune``.

ALGORITHMS.md: ``torch.nn.utils.prune`` gives masks only (no speed-up); ``prune.remove`` makes
them permanent. ``apply_masks`` installs each mask with ``prune.custom_from_mask`` (the layer's
``weight`` becomes ``weight_orig * weight_mask``, so training keeps pruned weights at zero);
``bake_masks`` calls ``prune.remove``, after which the model's ``state_dict`` is a plain one that
loads into the unpruned class with ``load_state_dict``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn
from torch.nn.utils import prune

from metrics.prunable import PruningError, prunable_layers


def apply_masks(module: nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Install ``masks`` (by prunable layer name) on ``module``'s weights, in place.

    Each mask goes to its layer's device. On a layer already masked, torch multiplies the new
    mask into the old (masks from ``metrics/`` are subsets of the current ones, so this is the
    new mask). ``PruningError`` for a name that is not a prunable layer or a mask of the wrong
    shape, before anything is installed.
    """
    layers = prunable_layers(module)
    for name, mask in masks.items():
        if name not in layers:
            raise PruningError(f"no prunable layer named {name!r}")
        if mask.shape != layers[name].weight.shape:
            raise PruningError(
                f"layer {name}: mask shape {tuple(mask.shape)} != weight shape "
                f"{tuple(layers[name].weight.shape)}"
            )
    for name, mask in masks.items():
        weight = layers[name].weight
        prune.custom_from_mask(layers[name], "weight", mask.to(weight.device, weight.dtype))


def installed_masks(module: nn.Module, exclude: Iterable[str] = ()) -> dict[str, torch.Tensor]:
    """Bool CPU masks of the prunable layers: the installed ``weight_mask``, else all True."""
    return {
        name: (
            layer.weight_mask.detach().cpu().bool()
            if hasattr(layer, "weight_mask")
            else torch.ones(layer.weight.shape, dtype=torch.bool)
        )
        for name, layer in prunable_layers(module, exclude).items()
    }


def bake_masks(module: nn.Module) -> list[str]:
    """Make every installed weight mask permanent (``prune.remove``); the names baked.

    Afterwards the pruned weights are zeros in a plain ``weight`` parameter and the model holds
    no ``weight_orig`` or ``weight_mask``.
    """
    baked = []
    for name, layer in module.named_modules():
        if hasattr(layer, "weight_mask"):
            prune.remove(layer, "weight")
            baked.append(name)
    return baked
