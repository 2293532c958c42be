"""Magnitude pruning: global with an optional per-layer minimum, and layer-wise (uniform).

ALGORITHMS.md, "Global magnitude" (Gupta et al. 2022, "Is complexity required for neural network
pruning?"): one threshold over ``|w|`` of all prunable weights removes the ``round(s * N)``
smallest, as ``prune.global_unstructured(..., prune.L1Unstructured, amount=s)`` does, with
ties broken by position (``metrics.weight_masks``). The minimum threshold (MT) keeps at least
``min_kept`` weights in every layer. "Layer-wise (uniform)": each layer pruned to the same
sparsity by its own threshold.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import torch

from metrics._common import robust_floor
from metrics.prunable import PruningError
from metrics.prune_amount import check_fraction, prune_count
from metrics.weight_masks import check_weights, global_smallest, magnitudes, resolve_masks


def global_magnitude(
    weights: Mapping[str, torch.Tensor],
    sparsity: float,
    masks: Mapping[str, torch.Tensor] | None = None,
    min_kept: int | float | None = None,
) -> dict[str, torch.Tensor]:
    """Masks at total sparsity ``sparsity`` by one global ``|w|`` threshold (Gupta et al. 2022).

    Exactly ``round(sparsity * N)`` of the ``N`` weights are pruned in all, those already pruned
    by ``masks`` included; the new ones are the smallest ``|w|`` among the weights ``masks``
    keeps (ties: layer order, then flat index).

    ``min_kept`` (MT): every layer keeps at least this many of its ``n`` weights, a float in
    [0, 1] meaning ``ceil(min_kept * n)`` or an int meaning a count (capped at ``n``); a layer
    with fewer unpruned weights keeps them all. Each layer's largest ``min_kept`` are protected
    and the ``round(sparsity * N)`` count is met by the same global order over the rest: a
    layer that would fall below keeps exactly its largest ``min_kept`` and the deficit is pruned
    from the other layers, so the total is still exact. ``PruningError`` when the minimum
    leaves too few weights to prune.
    """
    weights = check_weights(weights)
    alive = resolve_masks(weights, masks)
    total = sum(w.numel() for w in weights.values())
    pruned = sum(int((~a).sum()) for a in alive.values())
    count = prune_count(total, pruned, sparsity)
    scores = {name: magnitudes(w) for name, w in weights.items()}
    candidates = alive if min_kept is None else _unprotected(scores, alive, min_kept)
    available = sum(int(c.sum()) for c in candidates.values())
    if count > available:
        raise PruningError(
            f"sparsity {sparsity} needs {count} more weights pruned, but min_kept={min_kept} "
            f"leaves only {available} that may be"
        )
    chosen = global_smallest(scores, candidates, count)
    return {name: alive[name] & ~chosen[name] for name in weights}


def layerwise_magnitude(
    weights: Mapping[str, torch.Tensor],
    sparsity: float,
    masks: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Masks with every layer at sparsity ``sparsity`` by its own ``|w|`` threshold.

    Each layer of ``n`` weights has exactly ``round(sparsity * n)`` pruned (those already
    pruned by ``masks`` included), the new ones its smallest unpruned ``|w|`` (ties: flat
    index): ``prune.l1_unstructured`` per layer. The total is the sum of the per-layer rounded
    counts, so it can differ from ``round(sparsity * N)`` by up to half the number of layers.
    ``PruningError`` for a layer already sparser than requested.
    """
    weights = check_weights(weights)
    alive = resolve_masks(weights, masks)
    new = {}
    for name, weight in weights.items():
        count = prune_count(
            weight.numel(), int((~alive[name]).sum()), sparsity, where=f"layer {name}"
        )
        chosen = global_smallest({name: magnitudes(weight)}, {name: alive[name]}, count)[name]
        new[name] = alive[name] & ~chosen
    return new


def _unprotected(
    scores: dict[str, torch.Tensor], alive: dict[str, torch.Tensor], min_kept: int | float
) -> dict[str, torch.Tensor]:
    """The unpruned weights outside each layer's largest ``min_kept`` (the MT protection)."""
    candidates = {}
    for name, score in scores.items():
        keep = min(_min_kept_count(min_kept, score.numel()), int(alive[name].sum()))
        count = int(alive[name].sum()) - keep
        candidates[name] = global_smallest({name: score}, {name: alive[name]}, count)[name]
    return candidates


def _min_kept_count(min_kept: int | float, size: int) -> int:
    """A layer's minimum from ``min_kept``: an int is a count, a float a fraction (rounded up)."""
    if isinstance(min_kept, bool) or not isinstance(min_kept, numbers.Real):
        raise PruningError(f"min_kept must be an int count or a float fraction, got {min_kept!r}")
    if isinstance(min_kept, numbers.Integral):
        if min_kept < 0:
            raise PruningError(f"min_kept must be >= 0, got {min_kept}")
        return min(int(min_kept), size)
    fraction = check_fraction(min_kept, "min_kept")
    return -robust_floor(-fraction * size)  # ceil, robust to 0.3 * 10 = 3.0000000000000004
