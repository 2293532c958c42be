"""N:M semi-structured sparsity masks (2:4 by default).

ALGORITHMS.md, "N:M semi-structured sparsity": in every group of M consecutive weights along the
input dimension keep the N largest ``|w|``. The input dimension is the last one of a Linear
weight ``(out, in)`` and, for a Conv2d weight ``(out, in, kh, kw)``, the flattened
``in * kh * kw`` of each output channel (row-major, so a group runs along ``kw``, then ``kh``,
then ``in``). Ties go by position: of equal ``|w|`` in a group the later ones are kept (the
tie rule of ``metrics.weight_masks``).

``channels_last=True`` groups a Conv2d along its input channels at each kernel position
instead, the flattened ``(kh, kw, in)`` order of NVIDIA's ASP (apex ``sparse_masklib``) and of
channels-last convolutions on sparse tensor cores; its input size is then ``in``. On the
pretrained CIFAR-10 ResNet-56, one-shot 2:4 without fine-tuning kept 26% top-1 with the
default grouping and 48% with this one (dense 82.5%, 1000 test images).

A layer whose input size is not a multiple of M is left as it was (dense, or its current mask)
and reported in ``NMMasks.skipped``; it is never padded, since sparse kernels need whole groups.
With current masks a group keeps its N largest unpruned weights (all of them when fewer are
left). Speed-ups need hardware support (sparse tensor cores); on CPU there is none.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from metrics.prunable import PruningError
from metrics.weight_masks import check_weights, magnitudes, resolve_masks


@dataclass(frozen=True)
class NMMasks:
    """N:M masks for every layer, and the layers left as they were (input size not % M)."""

    masks: dict[str, torch.Tensor]
    skipped: tuple[str, ...]


def nm_masks(
    weights: Mapping[str, torch.Tensor],
    n: int = 2,
    m: int = 4,
    masks: Mapping[str, torch.Tensor] | None = None,
    channels_last: bool = False,
) -> NMMasks:
    """Keep the ``n`` largest ``|w|`` of every ``m`` consecutive input weights (module docstring).

    Needs integers ``0 < n < m``. ``channels_last`` groups Conv2d weights along the input
    channels at each kernel position (ASP's layout). Returns the new masks (subsets of
    ``masks``) and the names of the layers whose input size is not a multiple of ``m``, whose
    masks are unchanged.
    """
    for value in (n, m):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise PruningError(f"N:M needs integers, got n={n!r}, m={m!r}")
    if not 0 < n < m:
        raise PruningError(f"N:M needs 0 < n < m, got {n}:{m}")
    weights = check_weights(weights)
    alive = resolve_masks(weights, masks)
    new, skipped = {}, []
    for name, weight in weights.items():
        to_last = channels_last and weight.dim() == 4
        inputs = weight.shape[1] if to_last else weight.numel() // weight.shape[0]
        if inputs % m:
            new[name] = alive[name]
            skipped.append(name)
        elif to_last:  # (out, in, kh, kw) -> (out, kh, kw, in) and back
            keep = _group_top(weight.permute(0, 2, 3, 1), alive[name].permute(0, 2, 3, 1), n, m)
            new[name] = alive[name] & keep.permute(0, 3, 1, 2)
        else:
            new[name] = alive[name] & _group_top(weight, alive[name], n, m)
    return NMMasks(new, tuple(skipped))


def _group_top(weight: torch.Tensor, alive: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Bool mask of the ``n`` largest unpruned ``|w|`` per group of ``m`` consecutive weights
    of the row-major flattening of each output channel (ties: later kept)."""
    scores = torch.where(alive, magnitudes(weight), -1.0).reshape(weight.shape[0], -1, m)
    ascending = torch.sort(scores, dim=-1, stable=True).indices
    keep = torch.zeros(scores.shape, dtype=torch.bool)
    keep.scatter_(-1, ascending[..., m - n :], True)
    return keep.reshape(weight.shape)
