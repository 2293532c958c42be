"""What one pruned network is (`Arm`) and the levels that lead to it: each level's target
sparsity and training steps, from the pure schedules of `metrics.sparsity_schedule`.

- one-shot: one level at the final sparsity, then `steps` of fine-tuning.
- gradual (Zhu & Gupta): levels 1..n at `s_f + (s_i - s_f)(1 - l/n)^3` (s_i = 0), the `steps`
  split evenly between them (the first `steps % n` levels take one more).
- imp: level l at `1 - (1 - p)^l`, every level retraining `steps` steps from the rewound
  weights. With `--levels L`, p is `1 - (1 - s)^(1/L)`, so that L equal levels reach s; else
  p is `--imp-rate` (0.2) and the levels are as many as reach s, the last one at s exactly.
Level 0 is the dense network: trained for `steps` (saving the rewind point) under imp only.
"""

from __future__ import annotations

from dataclasses import dataclass

from metrics.sparsity_schedule import gradual_schedule, imp_levels, imp_sparsity
from pipelines.model_pruning.config import IMP_RATE, ModelSettings


@dataclass(frozen=True)
class Arm:
    """The choices that make one pruned network of a run (a sweep has many)."""

    method: str
    sparsity: float
    seed: int
    kd: bool


def imp_rate(config: ModelSettings, sparsity: float) -> float:
    if config.levels is not None:
        return 1.0 - (1.0 - sparsity) ** (1.0 / config.levels)
    return getattr(config, "imp_rate", None) or IMP_RATE


def targets(config: ModelSettings, sparsity: float) -> list[float]:
    """The target total sparsity of levels 1, 2, ... (module docstring)."""
    if config.schedule == "one-shot":
        return [sparsity]
    if config.schedule == "gradual":
        return gradual_schedule(sparsity, config.gradual_levels)[1:]
    rate = imp_rate(config, sparsity)
    count = config.levels if config.levels is not None else imp_levels(sparsity, rate)
    found = [min(imp_sparsity(level, rate), sparsity) for level in range(1, count + 1)]
    return [*found[:-1], sparsity] if found else []


def level_steps(config: ModelSettings, levels: int) -> list[int]:
    """Training steps of levels 1..levels."""
    if config.schedule != "gradual":
        return [config.steps] * levels
    base, extra = divmod(config.steps, levels)
    return [base + (1 if level < extra else 0) for level in range(levels)]


def dense_steps(config: ModelSettings) -> int:
    """Level 0 trains only under imp (its weights at --rewind-steps are the rewind point)."""
    return config.steps if config.schedule == "imp" else 0


@dataclass(frozen=True)
class ChannelArm:
    """One network of a structured run."""

    importance: str
    amount: float  # a MACs reduction factor, or a channel ratio removed
    seed: int
    kd: bool


def step_targets(config: ModelSettings, amount: float) -> list[float]:
    """A structured member's cumulative targets, one per pruning step: `amount` once
    (one-shot), or the cubic schedule over the removed fraction (the channel ratio, or
    `1 - 1/f` of the MACs for a reduction factor f)."""
    levels = config.gradual_levels if config.schedule == "gradual" else 1
    if config.unit == "channels":
        return gradual_schedule(amount, levels)[1:]
    removed = gradual_schedule(1.0 - 1.0 / amount, levels)[1:]
    return [*(1.0 / (1.0 - r) for r in removed[:-1]), amount]
