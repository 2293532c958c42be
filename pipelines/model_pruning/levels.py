"""The units of the model-pruning stages: the dense level 0, one level of a schedule (its main
unit or a control), and a sweep member (its levels in order).

A level L reads only level L-1's files: it ranks level L-1's trained weights by its method
from level L-1's masks, starts from level 0's rewind point (imp) or from level L-1's weights
(one-shot, gradual), trains with the masks installed (`torch.nn.utils.prune`, so pruned weights
stay zero), bakes them in, evaluates, and writes `schema.level_parts(L)`. The controls recompute
the main unit's masks (the same function of the same files), so a level's units are independent.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from curation.stage import Context
from curation.storage import Folder
from metrics.apply_masks import apply_masks, bake_masks
from metrics.sparsity_report import sparsity_report
from metrics.weight_masks import resolve_masks
from pipelines.model_pruning import schema
from pipelines.model_pruning.config import ModelSettings
from pipelines.model_pruning.data import ModelData, load_data
from pipelines.model_pruning.finetune import Trained, alpha, evaluate, fit
from pipelines.model_pruning.methods import prune_masks, random_like
from pipelines.model_pruning.network import (
    check_prunable,
    dense_network,
    derived_seed,
    empty_network,
    parameter_counts,
    weights,
)
from pipelines.model_pruning.schedules import Arm, dense_steps, level_steps, targets


@dataclass(frozen=True)
class Level:
    """One unit's place in a run: which level, which unit, for which arm (None: dense)."""

    index: int
    unit: str
    arm: Arm | None
    target: float
    steps: int

    @property
    def kd(self) -> bool:
        return self.arm is not None and self.arm.kd


def setup_worker(ctx: Context) -> None:
    """torch threads fixed (`--threads`, else the worker's share), the data read once."""
    threads = ctx.config.threads or ctx.threads
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    load_data(ctx.config)


def prune_arm(config) -> Arm:
    return Arm(config.method, config.sparsity, config.seed, config.kd)


def dense_level(ctx: Context, unit: str) -> dict:
    """Level 0: the dense network (all masks True); under imp trained for `--steps`, keeping
    its weights at `--rewind-steps` as `rewind.pt`."""
    config, run = ctx.config, ctx.run
    data = load_data(config)
    net = dense_network(config, data.classes)
    check_prunable(net, config)
    steps = dense_steps(config)
    rewind = config.rewind_steps if config.teacher_trained else None
    trained = fit(net, data, config, steps, config.seed, "level_0", snapshot_at=rewind)
    parts = schema.level_parts(0)
    if trained.snapshot is not None:
        schema.save_state(run, trained.snapshot, *parts, schema.REWIND)
    masks = resolve_masks(weights(net, config), None)
    report = sparsity_report(masks)
    metrics = _metrics(net, data, config, Level(0, unit, None, 0.0, steps), report, trained)
    schema.write_level(run, parts, net.state_dict(), masks, report, metrics)
    return _stats(metrics, config)


def prune_level(ctx: Context, unit: str, level: int) -> dict:
    """Level `level` of `curate model prune`: the main unit or a control."""
    return run_level(ctx.run, ctx.config, prune_arm(ctx.config), level, unit)


def sweep_member(ctx: Context, unit: str) -> dict:
    """Every level of one sweep member, in order (level 0 is the run's)."""
    from pipelines.model_pruning.pipeline import members

    arm = members(ctx.config)[unit]
    found = [run_level(ctx.run, ctx.config, arm, level, schema.MAIN, unit)
             for level in range(1, len(targets(ctx.config, arm.sparsity)) + 1)]  # fmt: skip
    return {**found[-1], "samples": sum(s["samples"] for s in found)}


def run_level(run: Folder, config: ModelSettings, arm: Arm, level: int, unit: str,
              member: str | None = None) -> dict:  # fmt: skip
    """One unit of level `level` for `arm` (of sweep member `member`): see the module
    docstring. Returns the unit's stats."""
    data = load_data(config)
    schedule = targets(config, arm.sparsity)
    target, steps = schedule[level - 1], level_steps(config, len(schedule))[level - 1]
    previous = schema.level_parts(level - 1, member)
    net = _load(run, config, data, previous)
    masks = prune_masks(arm.method, weights(net, config), target,
                        schema.load_masks(run, *previous, schema.MASK), arm.seed,
                        config.min_kept, **config.nm_options)  # fmt: skip
    if unit == "random":
        masks = random_like(masks, derived_seed(arm.seed, "random control"))
    net = _start(run, config, data, arm, unit, net)
    apply_masks(net, masks)
    teacher = _load(run, config, data, schema.level_parts(0)) if arm.kd else None
    label = "/".join(filter(None, (member, schema.level_name(level),
                                   None if unit == schema.MAIN else unit)))  # fmt: skip
    trained = fit(net, data, config, steps, arm.seed, label, teacher)
    bake_masks(net)
    report = sparsity_report(masks)
    place = Level(level, unit, arm, target, steps)
    metrics = _metrics(net, data, config, place, report, trained)
    schema.write_level(run, schema.level_parts(level, member, unit), net.state_dict(), masks,
                       report, metrics)  # fmt: skip
    return _stats(metrics, config)


def _load(run: Folder, config: ModelSettings, data: ModelData, parts: tuple[str, ...]) -> nn.Module:
    net = empty_network(config, data.classes)
    net.load_state_dict(schema.load_state(run, *parts, schema.MODEL))
    return net.eval()


def _start(run: Folder, config: ModelSettings, data: ModelData, arm: Arm, unit: str,
           previous: nn.Module) -> nn.Module:  # fmt: skip
    """The weights a level trains from: a fresh initialisation (reinit control), level 0's
    rewind point (imp), or the previous level's weights."""
    if unit == "reinit":
        return empty_network(config, data.classes, seed=derived_seed(arm.seed, "reinit"))
    if config.teacher_trained:
        previous.load_state_dict(schema.load_state(run, *schema.level_parts(0), schema.REWIND))
    return previous


def _metrics(net: nn.Module, data: ModelData, config: ModelSettings, level: Level,
             report: dict, trained: Trained) -> dict:  # fmt: skip
    """What `metrics.json` records: deterministic numbers only (no time)."""
    layers = weights(net, config)
    arm, kd = level.arm, level.kd
    return {
        "level": level.index,
        "unit": level.unit,
        "method": arm.method if arm else None,
        "seed": arm.seed if arm else config.seed,
        "target_sparsity": level.target,
        "sparsity": report["sparsity"],
        "accuracy": evaluate(net, data, config),
        "classes": data.classes,
        "eval_samples": len(data.eval),
        "train_samples": len(data.train),
        "steps": level.steps,
        "batch_size": config.batch_size,
        "final_loss": trained.final_loss,
        "kd": kd,
        "alpha": alpha(config) if kd else None,
        "temperature": config.temperature if kd else None,
        **parameter_counts(net),
        "prunable_parameters": sum(w.numel() for w in layers.values()),
        "prunable_nonzero": sum(int(w.count_nonzero()) for w in layers.values()),
    }


def _stats(metrics: dict, config: ModelSettings) -> dict:
    return {"samples": metrics["steps"] * config.batch_size, "accuracy": metrics["accuracy"]}
