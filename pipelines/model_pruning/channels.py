"""The units of `curate model structured`: channel pruning with real removal through
torch-pruning (`structured.prune_channels`), fine-tuned between steps, and the Liu et al. 2019
control, the same pruned architecture trained from a fresh initialisation at the same steps.

A member (importance, target, seed, KD) prunes the dense network of level 0 in `--levels` steps
(one for one-shot; the cubic schedule for gradual) and fine-tunes after each step, then writes
`prune/<member>/pruned.pt` (`structured.save_pruned`'s weights-only format), `pruned.pt2` (a
`torch.export` program that loads with torch alone) and metrics.json (accuracy, and the
parameters, MACs and file size before pruning and after each step).
"""

from __future__ import annotations

from dataclasses import asdict

import torch
from torch import nn

from curation.stage import Context
from curation.storage import Folder
from pipelines.model_pruning import schema
from pipelines.model_pruning.config import StructuredConfig
from pipelines.model_pruning.data import ModelData, load_data
from pipelines.model_pruning.finetune import Trained, alpha, evaluate, fit
from pipelines.model_pruning.network import derived_seed, empty_network
from pipelines.model_pruning.schedules import ChannelArm, level_steps, step_targets
from pipelines.model_pruning.structured import (
    ChannelPruning,
    Pruned,
    Size,
    measure,
    prune_channels,
    rebuild,
    save_exported,
    save_pruned,
)

PRUNED = "pruned.pt"
EXPORTED = "pruned.pt2"
SCRATCH_STAGE = "scratch"


def example_input(config: StructuredConfig) -> torch.Tensor:
    return torch.zeros(1, 3, config.image_size, config.image_size)


def channel_pruning(config: StructuredConfig, arm: ChannelArm) -> ChannelPruning:
    return ChannelPruning(importance=arm.importance, scope=config.scope,
                          round_to=config.round_to, ignored=tuple(config.exclude) or None,
                          max_layer_ratio=config.max_layer_ratio, seed=arm.seed)  # fmt: skip


def member_parts(member: str, stage: str = schema.SWEEP_STAGE) -> tuple[str, ...]:
    return (stage, member)


def _dense(run: Folder, config: StructuredConfig, data: ModelData) -> nn.Module:
    net = empty_network(config, data.classes)
    net.load_state_dict(schema.load_state(run, *schema.level_parts(0), schema.MODEL))
    return net.eval()


def prune_member(ctx: Context, unit: str) -> dict:
    """Prune, fine-tune after every step, evaluate, save."""
    from pipelines.model_pruning.pipeline import channel_members

    config, run = ctx.config, ctx.run
    arm = channel_members(config)[unit]
    data = load_data(config)
    dense = _dense(run, config, data)
    teacher = dense if arm.kd else None
    targets = step_targets(config, arm.amount)
    steps = level_steps(config, len(targets))
    trained: list[Trained] = []

    def fine_tune(model: nn.Module, step: int) -> None:
        label = f"{unit}/step_{step + 1}"
        trained.append(fit(model, data, config, steps[step], arm.seed, label, teacher))

    pruned = prune_channels(dense, example_input(config), targets, config.unit,
                            channel_pruning(config, arm), between_steps=fine_tune)  # fmt: skip
    pruned.model.eval()
    metrics = _metrics(pruned, data, config, arm, sum(steps), trained[-1])
    _write(run, member_parts(unit), pruned, metrics)
    return {"samples": sum(steps) * config.batch_size, "accuracy": metrics["accuracy"]}


def scratch_member(ctx: Context, unit: str) -> dict:
    """The member's pruned architecture re-initialised (every module's `reset_parameters`,
    seeded) and trained for the member's total steps (Liu et al. 2019, at matched steps)."""
    from pipelines.model_pruning.pipeline import channel_members

    config, run = ctx.config, ctx.run
    arm = channel_members(config)[unit]
    data = load_data(config)
    record = schema.load_state(run, *member_parts(unit), PRUNED)
    where = run.url_of(*member_parts(unit), PRUNED)
    model = rebuild(record, empty_network(config, data.classes), where)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derived_seed(arm.seed, "scratch"))
        for module in model.modules():
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
    total = sum(level_steps(config, len(step_targets(config, arm.amount))))
    teacher = _dense(run, config, data) if arm.kd else None
    trained = fit(model, data, config, total, arm.seed, f"{unit}/scratch", teacher)
    before = Size(**run.read_json(*member_parts(unit), schema.METRICS)["before"])
    pruned = Pruned(model.eval(), record["pruning_history"], tuple(record["input_shape"]),
                    before, [measure(model, example_input(config))])  # fmt: skip
    metrics = _metrics(pruned, data, config, arm, total, trained)
    _write(run, member_parts(unit, SCRATCH_STAGE), pruned, metrics)
    return {"samples": total * config.batch_size, "accuracy": metrics["accuracy"]}


def _write(run: Folder, parts: tuple[str, ...], pruned: Pruned, metrics: dict) -> None:
    run.remove_temporaries(*parts)
    save_pruned(pruned, run, *parts, PRUNED)
    failed = save_exported(pruned.model, pruned.input_shape, run, *parts, EXPORTED)
    run.write_json({**metrics, "export_error": failed or None}, *parts, schema.METRICS)


def _metrics(pruned: Pruned, data: ModelData, config: StructuredConfig, arm: ChannelArm,
             steps: int, trained: Trained) -> dict:  # fmt: skip
    """Deterministic numbers only: accuracy, sizes, the training that led there."""
    return {
        "importance": arm.importance,
        "amount": arm.amount,
        "unit": config.unit,
        "seed": arm.seed,
        "kd": arm.kd,
        "alpha": alpha(config) if arm.kd else None,
        "accuracy": evaluate(pruned.model, data, config),
        "eval_samples": len(data.eval),
        "steps": steps,
        "final_loss": trained.final_loss,
        "before": asdict(pruned.before),
        "after": asdict(pruned.after),
        "step_sizes": [asdict(size) for size in pruned.steps],
        "macs_reduction": pruned.before.macs / pruned.after.macs,
        "params_reduction": pruned.before.params / pruned.after.params,
    }
