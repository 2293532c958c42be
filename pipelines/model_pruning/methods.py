"""The unstructured pruning methods by name, over the pure rules of `metrics/`: each takes the
prunable weights, a target total sparsity and the current masks, and returns new masks (subsets
of the current ones) with exactly the count the rule defines.

- global: one |w| threshold over every layer (Gupta et al. 2022); `--min-kept` adds MT.
- layerwise: every layer at the target by its own |w| threshold.
- random, random-erk: a seeded random subset at uniform or ERK layer densities.
- lamp: the globally smallest LAMP scores (Lee et al. 2021).
- nm: N:M semi-structured, the N largest |w| of every M consecutive inputs (2:4 by default;
  Conv2d grouped along the input channels at each kernel position unless asked otherwise).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

import numpy as np
import torch

from curation.errors import CurateError
from metrics.lamp import lamp
from metrics.magnitude import global_magnitude, layerwise_magnitude
from metrics.nm_sparsity import nm_masks
from metrics.prunable import PruningError
from metrics.random_masks import random_masks

Masks = dict[str, torch.Tensor]


def prune_masks(
    method: str,
    weights: Mapping[str, torch.Tensor],
    sparsity: float,
    masks: Mapping[str, torch.Tensor] | None,
    seed: int,
    min_kept: float | None = None,
    nm: tuple[int, int] = (2, 4),
    channels_last: bool = True,
) -> Masks:
    """The masks of `method` at total sparsity `sparsity` from `masks` (None: dense); nm
    keeps N of every M (`nm`) and ignores `sparsity`. A request the rule cannot meet is a
    user error naming the method."""
    try:
        if method == "nm":
            return nm_masks(weights, *nm, masks, channels_last).masks
        if method == "global":
            return global_magnitude(weights, sparsity, masks, min_kept)
        if method == "layerwise":
            return layerwise_magnitude(weights, sparsity, masks)
        if method in ("random", "random-erk"):
            distribution = "erk" if method == "random-erk" else "uniform"
            return random_masks(weights, sparsity, seed, distribution, masks)
        if method == "lamp":
            return lamp(weights, sparsity, masks)
    except PruningError as exc:
        raise CurateError(f"--method {method} at sparsity {sparsity:g}: {exc}") from None
    raise CurateError(f"unknown pruning method {method!r}")


def random_like(masks: Mapping[str, torch.Tensor], seed: int) -> Masks:
    """Random masks keeping as many weights per layer as `masks` (Frankle & Carbin's random
    pruning control): each layer a seeded uniform subset, from its own stream
    `default_rng([seed, crc32(name)])`."""
    drawn = {}
    for name, mask in masks.items():
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        kept = rng.choice(mask.numel(), size=int(mask.sum()), replace=False)
        flat = torch.zeros(mask.numel(), dtype=torch.bool)
        flat[torch.from_numpy(kept)] = True
        drawn[name] = flat.reshape(mask.shape)
    return drawn
