"""Sparsity schedules: one-shot, gradual (Zhu & Gupta 2017) and IMP levels (Frankle & Carbin).

A schedule is the list of target total sparsities, one per pruning event, each to be passed as
``sparsity`` to a rule of ``metrics/`` with the previous event's masks (or turned into torch's
per-step ``amount`` by ``step_amounts``).

- One-shot: ``[s_f]``.
- Gradual (ALGORITHMS.md, Zhu & Gupta, "To prune, or not to prune"):
  ``s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt))^3`` for ``t in {t0, t0 + dt, ...,
  t0 + n dt}``, the network training between events.
- IMP (ALGORITHMS.md, Frankle & Carbin 2019; Frankle et al. 2020): level L prunes ``p`` of the
  remaining weights, so its density is ``(1 - p)^L``; level 0 is the dense network.
"""

from __future__ import annotations

import math
import numbers

from metrics.prunable import PruningError
from metrics.prune_amount import check_fraction, sparsity_to_amount

# A level's sparsity counts as reaching a target within this much: 1 - 0.8**2 is
# 0.3599999999999999 in floating point and reaches 0.36.
_REACH_SLACK = 1e-12


def one_shot(final: float) -> list[float]:
    """The one-shot schedule: a single event straight to ``final``."""
    return [check_fraction(final, "final sparsity")]


def gradual_sparsity(
    step: int, final: float, n: int, initial: float = 0.0, t0: int = 0, dt: int = 1
) -> float:
    """Zhu & Gupta's target sparsity at training step ``step``.

    ``s_f + (s_i - s_f) * (1 - i / n)^3`` with ``i`` the number of pruning events (at ``t0``,
    ``t0 + dt``, ..., ``t0 + n dt``) after the first that have happened by ``step``: ``initial``
    before ``t0``, ``final`` from ``t0 + n dt`` on, and constant between events, since the
    network is only pruned at them.
    """
    final = check_fraction(final, "final sparsity")
    initial = check_fraction(initial, "initial sparsity")
    if initial > final:
        raise PruningError(f"initial sparsity {initial} is above the final {final}")
    _check_positive(n, "n")
    _check_positive(dt, "dt")
    events = min(max((step - t0) // dt, 0), n)
    return final + (initial - final) * (1.0 - events / n) ** 3


def gradual_schedule(final: float, n: int, initial: float = 0.0) -> list[float]:
    """The ``n + 1`` targets of Zhu & Gupta's events ``t0, t0 + dt, ..., t0 + n dt``.

    ``s_f = 0.9, n = 10``: 0, 0.244, 0.439, 0.591, 0.706, 0.787, 0.842, 0.876, 0.893, 0.899, 0.9.
    """
    return [gradual_sparsity(i, final, n, initial) for i in range(n + 1)]


def imp_sparsity(level: int, rate: float = 0.2) -> float:
    """Total sparsity after ``level`` IMP levels, each pruning ``rate`` of the remaining.

    ``1 - (1 - rate)^level``; the density after L levels of the default 0.2 is ``0.8^L``.
    """
    if isinstance(level, bool) or not isinstance(level, numbers.Integral) or level < 0:
        raise PruningError(f"level must be a non-negative int, got {level!r}")
    return 1.0 - (1.0 - check_fraction(rate, "rate")) ** level


def imp_levels(sparsity: float, rate: float = 0.2) -> int:
    """The fewest IMP levels whose sparsity reaches ``sparsity`` (0.9 at rate 0.2: 11 levels).

    Needs ``sparsity < 1`` and ``0 < rate < 1``.
    """
    sparsity = check_fraction(sparsity)
    rate = check_fraction(rate, "rate")
    if sparsity == 1.0 or rate in (0.0, 1.0):
        raise PruningError(f"IMP needs sparsity < 1 and 0 < rate < 1, got {sparsity}, {rate}")
    levels = math.ceil(math.log1p(-sparsity) / math.log1p(-rate))  # then fix float error
    while levels > 0 and _reaches(levels - 1, rate, sparsity):
        levels -= 1
    while not _reaches(levels, rate, sparsity):
        levels += 1
    return levels


def imp_schedule(levels: int, rate: float = 0.2) -> list[float]:
    """Targets of IMP levels 1 to ``levels`` (level 0, the dense network, prunes nothing)."""
    return [imp_sparsity(level, rate) for level in range(1, levels + 1)]


def step_amounts(schedule: list[float], current: float = 0.0) -> list[float]:
    """Per-event torch ``amount`` for a schedule: ``1 - (1 - s_t) / (1 - s_{t-1})``.

    The first event starts from ``current``; each amount is a fraction of the weights the
    previous event left (``metrics.prune_amount.sparsity_to_amount``).
    """
    amounts = []
    for target in schedule:
        amounts.append(sparsity_to_amount(target, current))
        current = target
    return amounts


def _reaches(level: int, rate: float, sparsity: float) -> bool:
    return imp_sparsity(level, rate) >= sparsity - _REACH_SLACK


def _check_positive(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise PruningError(f"{what} must be a positive int, got {value!r}")
