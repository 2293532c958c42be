"""Which weights of a model are prunable: the one place that defines it.

ALGORITHMS.md, "Model pruning: exact definitions": the ``weight`` of every ``nn.Conv2d`` and
``nn.Linear`` (subclasses included, e.g. attention's ``out_proj``); biases and norm layers are
never pruned; the classifier may be excluded by option. Layers are listed in module order
(``named_modules``, a module registered twice counted once); that order is also the order in
which every pruning rule breaks ties between layers.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

PRUNABLE_TYPES = (nn.Conv2d, nn.Linear)


class PruningError(ValueError):
    """A pruning request that cannot be met, or weights or masks that do not fit it."""


def prunable_layers(module: nn.Module, exclude: Iterable[str] = ()) -> dict[str, nn.Module]:
    """The prunable layers of ``module`` by name, in module order.

    ``exclude`` names layers to leave out (normally the classifier, e.g. ``"fc"``); a name also
    excludes every layer inside it (``"head"`` drops ``"head.fc1"`` and ``"head.fc2"``). Each
    name must match at least one prunable layer, so a misspelt exclusion cannot pass
    unnoticed. A weight with no elements is not prunable.
    """
    exclude = list(exclude)
    layers = {
        name: layer
        for name, layer in module.named_modules()
        if isinstance(layer, PRUNABLE_TYPES) and layer.weight.numel() > 0
    }
    unmatched = [e for e in exclude if not any(_inside(name, e) for name in layers)]
    if unmatched:
        raise PruningError(
            f"exclude names no prunable layer: {', '.join(unmatched)} "
            f"(prunable: {', '.join(layers) or 'none'})"
        )
    return {
        name: layer for name, layer in layers.items() if not any(_inside(name, e) for e in exclude)
    }


def prunable_weights(module: nn.Module, exclude: Iterable[str] = ()) -> dict[str, torch.Tensor]:
    """The ``weight`` of every prunable layer by layer name (see ``prunable_layers``).

    Detached views, not copies. On a layer that carries a ``torch.nn.utils.prune`` mask the
    weight is the masked one (``weight_orig * weight_mask``), so pruned weights read as zero.
    """
    return {name: layer.weight.detach() for name, layer in prunable_layers(module, exclude).items()}


def _inside(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")
