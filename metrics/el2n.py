"""EL2N difficulty scores (Paul et al. 2021, "Deep Learning on a Data Diet").

ALGORITHMS.md, EL2N: ``EL2N(x, y) = ||softmax(f(x)) - onehot(y)||_2`` in eval mode on
un-augmented inputs after a short training, averaged over independently seeded runs. On
embeddings the scalable form is a seeded ensemble of small probes (linear or one hidden layer).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

# Rows scored per forward pass after training.
_PREDICT_CHUNK = 8192


def el2n_from_probs(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``||p - onehot(y)||_2`` per row.

    ``probs`` (n, c) are class probabilities, ``labels`` (n,) in ``[0, c)``; rows with a negative
    label (unlabelled) get nan. Float32 in, float32 out; otherwise float64.
    """
    probs = np.asarray(probs)
    if probs.dtype != np.float32:
        probs = probs.astype(np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if probs.ndim != 2 or labels.shape != (len(probs),):
        raise ValueError(
            f"expected probs (n, c) and labels (n,), got {probs.shape}, {labels.shape}"
        )
    _check_labels(labels, probs.shape[1])
    labelled = labels >= 0
    residual = probs[labelled].copy()
    residual[np.arange(len(residual)), labels[labelled]] -= 1
    scores = np.full(len(probs), np.nan, dtype=probs.dtype)
    scores[labelled] = np.linalg.norm(residual, axis=1)
    return scores


def el2n(
    embeddings: np.ndarray,
    labels: np.ndarray,
    num_classes: int | None = None,
    models: int = 10,
    epochs: int = 5,
    hidden: int = 0,
    seed: int = 0,
    batch_size: int = 256,
    lr: float = 1e-3,
) -> np.ndarray:
    """Mean EL2N over a seeded ensemble of probes trained on the embeddings.

    Probe ``m`` (linear when ``hidden == 0``, else one hidden ReLU layer of that width) is
    initialised from ``seed + m`` (``nn.Linear``'s default initialisation) and trained for
    ``epochs`` epochs with Adam and cross-entropy on minibatches of the labelled rows, shuffled
    by a ``torch.Generator`` seeded with ``seed + m``; its scores are then taken in eval mode
    (no dropout, no augmentation) with a softmax. ``num_classes`` defaults to
    ``max(label) + 1``. Rows with a negative label are left out of training and get nan.
    Returns float32 (n,).

    Deterministic for a given seed and torch thread count; the global torch RNG state is
    restored. The caller sets ``torch.set_num_threads``: on a 2-core machine shared with other
    work, one thread is far faster than two (two threads contend with the other jobs).
    Measured with one thread on this project's 2-core machine under load from other jobs:
    10 linear probes x 5 epochs on 20,000 x 512 embeddings (10 classes, 3,950 Adam steps of
    about 1 ms) take about 4 s of CPU time (5-13 s wall under that load); ``hidden=256`` about
    13 s of CPU time.
    """
    x = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
    labels = np.asarray(labels, dtype=np.int64)
    if x.ndim != 2 or labels.shape != (len(x),):
        raise ValueError(f"expected embeddings (n, d), labels (n,); got {x.shape}, {labels.shape}")
    if num_classes is None:
        num_classes = int(labels.max(initial=-1)) + 1
    _check_labels(labels, num_classes)
    if models < 1 or epochs < 0 or batch_size < 1 or hidden < 0:
        raise ValueError("models and batch_size must be >= 1, epochs and hidden >= 0")
    scores = np.full(len(x), np.nan, dtype=np.float32)
    labelled = np.flatnonzero(labels >= 0)
    if len(labelled) == 0:
        return scores
    x, y = x[labelled], torch.as_tensor(labels[labelled])
    total = np.zeros(len(labelled))
    for m in range(models):
        probe = _train_probe(x, y, num_classes, epochs, hidden, seed + m, batch_size, lr)
        total += el2n_from_probs(_predict(probe, x), labels[labelled])
    scores[labelled] = total / models
    return scores


def _check_labels(labels: np.ndarray, num_classes: int) -> None:
    if len(labels) and labels.max() >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}) (negative: unlabelled)")


def _make_probe(dim: int, num_classes: int, hidden: int) -> nn.Module:
    if hidden == 0:
        return nn.Linear(dim, num_classes)
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


def _train_probe(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    epochs: int,
    hidden: int,
    seed: int,
    batch_size: int,
    lr: float,
) -> nn.Module:
    """One probe: seeded initialisation and shuffling, Adam (fused CPU kernel) on cross-entropy."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = _make_probe(x.shape[1], num_classes, hidden)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(probe.parameters(), lr=lr, fused=True)
    probe.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=generator).split(batch_size):
            loss = nn.functional.cross_entropy(probe(x[batch]), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return probe


@torch.no_grad()
def _predict(probe: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Softmax probabilities in eval mode, float64 (n, c), in chunks to bound memory."""
    probe.eval()
    probs = [torch.softmax(probe(part), dim=1) for part in x.split(_PREDICT_CHUNK)]
    return torch.cat(probs).double().numpy()
