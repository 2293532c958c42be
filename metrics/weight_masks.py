"""Masks over prunable weights, and the one tie rule that every pruning rule uses.

A mask is a CPU bool tensor of its weight's shape, True where the weight is kept; a model's
masks are a dict keyed like ``prunable_weights``, in the same order. Every rule takes the current
masks (None: dense), prunes only among the weights they still keep, and returns new masks that
are a subset of them, so masks compose like ``torch.nn.utils.prune``'s.

Tie rule: weights are ordered by score ascending, ties by position (layer order, then the flat
row-major index within the layer). Pruning takes from the bottom of this order and keeping
from the top, so among equal scores the earlier weight is pruned first.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from metrics.prunable import PruningError


def check_weights(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached CPU weights by name, after checking that they can be pruned.

    Raises ``PruningError`` naming the layer for a weight that is not a non-empty, finite,
    floating-point tensor, and when there is no weight at all.
    """
    if not weights:
        raise PruningError("no prunable weights")
    checked = {}
    for name, weight in weights.items():
        if not isinstance(weight, torch.Tensor) or not weight.is_floating_point():
            raise PruningError(f"layer {name}: the weight is not a floating-point tensor")
        if weight.numel() == 0:
            raise PruningError(f"layer {name}: the weight has no elements")
        weight = weight.detach().cpu()
        if not torch.isfinite(weight).all():
            raise PruningError(f"layer {name}: the weight holds nan or inf")
        checked[name] = weight
    return checked


def resolve_masks(
    weights: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor] | None
) -> dict[str, torch.Tensor]:
    """Fresh bool CPU masks for ``weights``: all True for None, else copies of ``masks``.

    ``masks`` must name exactly the layers of ``weights``, each of its weight's shape, with only
    0 and 1 (bool, or the float buffers ``torch.nn.utils.prune`` keeps); ``PruningError``
    otherwise.
    """
    if masks is None:
        return {name: torch.ones(w.shape, dtype=torch.bool) for name, w in weights.items()}
    missing = [name for name in weights if name not in masks]
    unknown = [name for name in masks if name not in weights]
    if missing or unknown:
        raise PruningError(
            f"masks do not match the weights: missing {missing or 'none'}, "
            f"unknown {unknown or 'none'}"
        )
    resolved = {}
    for name, weight in weights.items():
        mask = masks[name].detach().cpu()
        if mask.shape != weight.shape:
            raise PruningError(
                f"layer {name}: mask shape {tuple(mask.shape)} != weight shape "
                f"{tuple(weight.shape)}"
            )
        if mask.dtype != torch.bool and not ((mask == 0) | (mask == 1)).all():
            raise PruningError(f"layer {name}: the mask holds values other than 0 and 1")
        resolved[name] = mask.to(torch.bool, copy=True)
    return resolved


def nonzero_masks(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Masks that keep the nonzero weights: the masks of a model whose pruning is baked in."""
    return {name: (w.detach() != 0).cpu() for name, w in weights.items()}


def magnitudes(weight: torch.Tensor) -> torch.Tensor:
    """``|w|`` in at least float32, so that half-precision layers compare exactly with others."""
    return weight.abs().to(torch.promote_types(weight.dtype, torch.float32))


def rank_smallest(values: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of the ``k`` smallest of the 1-D ``values``, ties by ascending index.

    Linear time: the k-th value by selection, then the first of the values equal to it.
    """
    if k == 0:
        return torch.zeros(values.shape, dtype=torch.bool)
    kth = torch.kthvalue(values, k).values
    chosen = values < kth
    need = k - int(chosen.sum())
    chosen[(values == kth).nonzero().squeeze(1)[:need]] = True
    return chosen


def global_smallest(
    scores: Mapping[str, torch.Tensor], candidates: Mapping[str, torch.Tensor], k: int
) -> dict[str, torch.Tensor]:
    """Bool masks of the ``k`` lowest-scoring candidates over all layers (the tie rule above).

    ``scores`` (finite) and ``candidates`` (bool) are keyed and shaped like the weights; ``k``
    must not exceed the number of candidates.
    """
    available = sum(int(c.sum()) for c in candidates.values())
    if k > available:
        raise PruningError(f"cannot prune {k} weights: only {available} are candidates")
    # Non-candidates score +inf: scores are finite, so none of them is among the k smallest.
    flat = torch.cat(
        [
            torch.where(c, s, torch.inf).reshape(-1)
            for s, c in zip(scores.values(), candidates.values(), strict=True)
        ]
    )
    return _split_like(rank_smallest(flat, k), candidates)


def _split_like(flat: torch.Tensor, like: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    sizes = [t.numel() for t in like.values()]
    parts = torch.split(flat, sizes)
    return {
        name: part.reshape(t.shape) for (name, t), part in zip(like.items(), parts, strict=True)
    }
