"""Random pruning at uniform or ERK layer densities (Evci et al. 2020).

ALGORITHMS.md, "Layer-wise (uniform) magnitude and random": a seeded, uniformly random subset
per layer. Densities are "uniform" (every layer the same) or "erk" (Evci et al. 2020, "Rigging
the lottery", as used by Liu et al. 2022, "The unreasonable effectiveness of random pruning"):
layer density proportional to ``(n_in + n_out + k_h + k_w) / (n_in * n_out * k_h * k_w)``, that
is ``sum(shape) / prod(shape)`` of the weight (a Linear has no kernel terms, as in RigL's code),
scaled by one factor so that the total density is ``1 - s``; a layer whose density would exceed
1 is set dense and the factor is solved again over the others.

Composition: with current masks a layer cannot keep more than its unpruned weights, so its cap
is its current density instead of 1 (the same re-solve; dense masks give the rule above).

Exact total: ``K = N - round(s * N)`` weights are kept. The real kept counts
``x_l = density_l * n_l`` sum to ``K``; each layer keeps ``floor(x_l)``, and the layers with the
largest fractional parts (ties: layer order) keep one more until the sum is exactly ``K``
(largest remainders, the rule of ``metrics.quotas``). A capped layer has no fractional part,
so no layer exceeds its cap.
"""

from __future__ import annotations

import numbers
import zlib
from collections.abc import Mapping

import numpy as np
import torch

from metrics.prunable import PruningError
from metrics.prune_amount import prune_count
from metrics.quotas import round_largest_remainders
from metrics.weight_masks import check_weights, resolve_masks

DISTRIBUTIONS = ("uniform", "erk")


def layer_densities(
    weights: Mapping[str, torch.Tensor],
    sparsity: float,
    distribution: str = "uniform",
    masks: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, float]:
    """Real-valued layer densities (before rounding) for total sparsity ``sparsity``.

    ``distribution`` is "uniform" or "erk" (module docstring); ``masks`` cap each layer at its
    current density. Densities weighted by layer sizes give ``(N - round(s * N)) / N``.
    """
    weights = check_weights(weights)
    sizes, caps, kept = _budget(weights, sparsity, resolve_masks(weights, masks))
    real = _real_kept(_mass(weights, distribution), caps, kept)
    return {name: float(x / n) for name, x, n in zip(weights, real, sizes, strict=True)}


def kept_counts(
    weights: Mapping[str, torch.Tensor],
    sparsity: float,
    distribution: str = "uniform",
    masks: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, int]:
    """Weights kept per layer, summing to exactly ``N - round(sparsity * N)``.

    ``layer_densities`` rounded by largest remainders (module docstring).
    """
    weights = check_weights(weights)
    return _kept_counts(weights, sparsity, distribution, resolve_masks(weights, masks))


def random_masks(
    weights: Mapping[str, torch.Tensor],
    sparsity: float,
    seed: int,
    distribution: str = "uniform",
    masks: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Masks keeping a seeded, uniformly random ``kept_counts`` subset of each layer.

    Only weights that ``masks`` keeps are drawn from. Each layer draws from its own stream,
    ``numpy.random.default_rng([seed, crc32(name)])``, so a layer's mask depends on the seed,
    its name, its unpruned weights and its count only (not on the other layers' draws).
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise PruningError(f"seed must be a non-negative int, got {seed!r}")
    weights = check_weights(weights)
    alive = resolve_masks(weights, masks)
    counts = _kept_counts(weights, sparsity, distribution, alive)
    new = {}
    for name, mask in alive.items():
        where = mask.reshape(-1).nonzero().squeeze(1)
        rng = np.random.default_rng([int(seed), zlib.crc32(name.encode())])
        drop = rng.choice(len(where), size=len(where) - counts[name], replace=False)
        flat = mask.reshape(-1).clone()
        flat[where[torch.from_numpy(drop)]] = False
        new[name] = flat.reshape(mask.shape)
    return new


def _kept_counts(
    weights: dict[str, torch.Tensor],
    sparsity: float,
    distribution: str,
    alive: dict[str, torch.Tensor],
) -> dict[str, int]:
    _, caps, kept = _budget(weights, sparsity, alive)
    real = _real_kept(_mass(weights, distribution), caps, kept)
    counts = round_largest_remainders(real, caps, kept)
    return {name: int(c) for name, c in zip(weights, counts, strict=True)}


def _budget(
    weights: dict[str, torch.Tensor], sparsity: float, alive: dict[str, torch.Tensor]
) -> tuple[np.ndarray, np.ndarray, int]:
    """Layer sizes, caps (unpruned counts) and the kept total ``N - round(s * N)``."""
    sizes = np.array([w.numel() for w in weights.values()], dtype=np.int64)
    caps = np.array([int(a.sum()) for a in alive.values()], dtype=np.int64)
    total = int(sizes.sum())
    count = prune_count(total, total - int(caps.sum()), sparsity)
    return sizes, caps, int(caps.sum()) - count


def _mass(weights: dict[str, torch.Tensor], distribution: str) -> np.ndarray:
    """Per layer, ``raw density * size``: ``size`` for uniform, ``sum(shape)`` for ERK.

    Kept counts are ``factor * mass``; ``sum(shape)`` is the ERK raw density times the size
    exactly, so hand-computed cases stay exact in floating point.
    """
    if distribution == "uniform":
        return np.array([w.numel() for w in weights.values()], dtype=np.float64)
    if distribution == "erk":
        return np.array([sum(w.shape) for w in weights.values()], dtype=np.float64)
    raise PruningError(
        f"distribution must be one of {', '.join(DISTRIBUTIONS)}, got {distribution!r}"
    )


def _real_kept(mass: np.ndarray, caps: np.ndarray, kept: int) -> np.ndarray:
    """``min(cap, factor * mass)`` per layer with the factor making the sum ``kept``.

    Layers over their cap are capped and the factor solved again over the rest, until none is
    over. The factor only grows from one round to the next, so capping every layer over at once
    reaches the same set as RigL's one-at-a-time loop. ``kept <= sum(caps)`` always holds here,
    so some layer stays free unless every layer is exactly at its cap.
    """
    capped = np.zeros(len(mass), dtype=bool)
    while not capped.all():
        factor = (kept - caps[capped].sum()) / mass[~capped].sum()
        real = np.where(capped, caps, factor * mass)
        over = ~capped & (real > caps)
        if not over.any():
            return np.minimum(real, caps)
        capped |= over
    return caps.astype(np.float64)
