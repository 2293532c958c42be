"""Two ways to say how much to prune, and the exact count a request removes.

``torch.nn.utils.prune``'s float ``amount`` is a fraction of the weights still unpruned; a target
total sparsity is a fraction of all the weights (ALGORITHMS.md: sparsity is the zero fraction
over all prunable weights). Every rule in ``metrics/`` takes a target total sparsity ``s`` and
prunes exactly ``round(s * N)`` weights in all, counting those already pruned; the two
conversions below turn one into the other.

``round`` is Python's (halves to even), as in ``torch.nn.utils.prune``, so a fresh mask pruned
by a rule here at ``s`` removes as many weights as torch does with ``amount=s``. From a current
mask the counts can differ from torch's ``round(amount * unpruned)`` by one, when that product
lies within float error of a half.
"""

from __future__ import annotations

from metrics.prunable import PruningError


def check_fraction(value: float, what: str = "sparsity") -> float:
    """``value`` as a float in [0, 1]; ``PruningError`` naming ``what`` otherwise."""
    value = float(value)
    if not 0.0 <= value <= 1.0:  # also rejects nan
        raise PruningError(f"{what} must lie in [0, 1], got {value}")
    return value


def prune_count(total: int, pruned: int, sparsity: float, where: str = "the weights") -> int:
    """How many more weights to prune so that ``round(sparsity * total)`` are pruned in all.

    ``pruned`` are pruned already; ``PruningError`` (naming ``where``) when they are more than
    the target, since pruning never restores a weight.
    """
    target = round(check_fraction(sparsity) * total)
    if pruned > target:
        raise PruningError(
            f"{where}: already {pruned} of {total} pruned, more than the {target} that "
            f"sparsity {sparsity} asks for"
        )
    return target - pruned


def sparsity_to_amount(sparsity: float, current: float) -> float:
    """The ``amount`` (fraction of the unpruned) that takes ``current`` to ``sparsity``.

    ``1 - (1 - sparsity) / (1 - current)``: Zhu & Gupta's per-step amount. Needs
    ``current <= sparsity`` and ``current < 1``.
    """
    sparsity = check_fraction(sparsity)
    current = check_fraction(current, "current sparsity")
    if current > sparsity:
        raise PruningError(f"current sparsity {current} is above the target {sparsity}")
    if current == 1.0:
        raise PruningError("current sparsity 1: nothing is left to prune")
    return 1.0 - (1.0 - sparsity) / (1.0 - current)


def amount_to_sparsity(amount: float, current: float) -> float:
    """The total sparsity after pruning ``amount`` of the unpruned at ``current``.

    ``1 - (1 - current) * (1 - amount)``; e.g. lottery-ticket levels of ``amount = 0.2``.
    """
    amount = check_fraction(amount, "amount")
    current = check_fraction(current, "current sparsity")
    return 1.0 - (1.0 - current) * (1.0 - amount)
