"""Sparsity reports: open_lth's ``sparsity_report.json`` convention, extended per layer.

``{"total": N, "unpruned": M, "sparsity": (N - M) / N, "layers": {name: {"total", "unpruned",
"sparsity"}}}`` over the prunable weights (ALGORITHMS.md: sparsity is the zero fraction over all
prunable weights), layers in module order. Plain ints and floats, ready for ``json.dump``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

from metrics.prunable import prunable_weights
from metrics.weight_masks import nonzero_masks


def sparsity_report(masks: Mapping[str, torch.Tensor]) -> dict:
    """The report of ``masks`` (bool, or torch's 0/1 float buffers; nonzero means kept)."""
    layers = {
        name: _counts(int(mask.numel()), int(mask.count_nonzero())) for name, mask in masks.items()
    }
    report = _counts(
        sum(layer["total"] for layer in layers.values()),
        sum(layer["unpruned"] for layer in layers.values()),
    )
    report["layers"] = layers
    return report


def model_sparsity_report(module: nn.Module, exclude: Iterable[str] = ()) -> dict:
    """The report of a model's prunable weights; a weight counts as unpruned when nonzero.

    Works on a model with masks installed by ``torch.nn.utils.prune`` (the weight read is the
    masked one) and on one whose masks are baked in.
    """
    return sparsity_report(nonzero_masks(prunable_weights(module, exclude)))


def _counts(total: int, unpruned: int) -> dict:
    return {
        "total": total,
        "unpruned": unpruned,
        "sparsity": (total - unpruned) / total if total else 0.0,
    }
