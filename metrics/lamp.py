"""LAMP: layer-adaptive magnitude pruning (Lee et al. ICLR 2021).

ALGORITHMS.md, LAMP: within a layer sort the weights by ``|w|`` ascending,
``|w_1| <= ... <= |w_n|``; the score of weight u is ``w_u^2 / sum_{v >= u} w_v^2``. The globally
smallest scores are pruned. A layer's largest weight scores 1 and every other weight at most
1/2, so no layer is emptied.

Ties in ``|w|`` are sorted by flat index (the earlier weight first, so it scores lower and is
pruned first), and ties in score by position (``metrics.weight_masks``). With current masks the
scores are computed over each layer's unpruned weights only (pruned ones are gone, as in the
paper's iterative use). Scores are computed in float64 on the CPU.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from metrics.prunable import PruningError
from metrics.prune_amount import prune_count
from metrics.weight_masks import check_weights, global_smallest, resolve_masks


def lamp_scores(
    weights: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """Float64 LAMP scores shaped like the weights; weights pruned by ``masks`` score 0.

    Each layer's largest unpruned weight scores exactly 1. A weight whose tail sum is 0 (a
    zero weight with only zeros above it) scores 0, except that layer's largest, which is 1.
    """
    weights = check_weights(weights)
    alive = resolve_masks(weights, masks)
    return {name: _layer_scores(weights[name], alive[name]) for name in weights}


def lamp(
    weights: Mapping[str, torch.Tensor],
    sparsity: float,
    masks: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Masks at total sparsity ``sparsity`` by the globally smallest LAMP scores.

    Exactly ``round(sparsity * N)`` weights are pruned in all, those already pruned by ``masks``
    included. Every layer with an unpruned weight keeps its largest: ``PruningError`` when the
    request would have to prune one (more than ``N - layers`` pruned).
    """
    weights = check_weights(weights)
    alive = resolve_masks(weights, masks)
    total = sum(w.numel() for w in weights.values())
    unpruned = sum(int(a.sum()) for a in alive.values())
    count = prune_count(total, total - unpruned, sparsity)
    layers_left = sum(1 for a in alive.values() if a.any())
    if count > unpruned - layers_left:
        raise PruningError(
            f"sparsity {sparsity} would empty a layer: LAMP keeps each layer's largest weight, "
            f"so at most {unpruned - layers_left} more of {total} can be pruned"
        )
    scores = {name: _layer_scores(weights[name], alive[name]) for name in weights}
    chosen = global_smallest(scores, alive, count)
    return {name: alive[name] & ~chosen[name] for name in weights}


def _layer_scores(weight: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """``w_u^2 / sum_{v >= u} w_v^2`` over the unpruned weights sorted by ``|w|`` (stable)."""
    flat_alive = alive.reshape(-1)
    where = flat_alive.nonzero().squeeze(1)
    values = weight.reshape(-1)[where].to(torch.float64)
    order = torch.sort(values.abs(), stable=True).indices
    ordered = values[order] ** 2
    tails = torch.flip(torch.cumsum(torch.flip(ordered, (0,)), 0), (0,))
    ordered_scores = torch.where(tails > 0, ordered / tails, torch.zeros_like(ordered))
    if len(ordered_scores):
        ordered_scores[-1] = 1.0
    scores = torch.zeros(flat_alive.shape, dtype=torch.float64)
    scores[where[order]] = ordered_scores
    return scores.reshape(weight.shape)
