"""The model-pruning pipelines. Stage functions are named by path and imported by the worker
that runs them.

- `curate model prune`: level_0 -> level_1 -> ... -> level_L -> summary. Levels are
  sequential (each reads the one before); a level's units are `main` and, with `--controls`,
  `reinit` and `random`.
- `curate model sweep`: level_0 -> prune (one unit per member: method x sparsity x seed x KD)
  -> summary.
- `curate model structured`: level_0 -> prune (one unit per member: importance x target x seed
  x KD) -> [scratch: the same units, each pruned architecture trained afresh] -> summary.
"""

from __future__ import annotations

from curation.stage import Lazy, Stage
from pipelines.model_pruning import schema
from pipelines.model_pruning.schedules import Arm, ChannelArm, targets

PRUNE, SWEEP, STRUCTURED = "model-prune", "model-sweep", "model-structured"
ALL = "all"
MODULE = "pipelines.model_pruning"
SETUP = Lazy(f"{MODULE}.levels:setup_worker")


def _data_params(c) -> dict:
    """What every level's numbers depend on besides its own choices."""
    return {"model": c.model, "checkpoint": c.checkpoint, "train": c.train, "eval": c.eval,
            "image_size": c.image_size, "mean": c.mean, "std": c.std,
            "label_field": c.label_field, "classes": c.classes, "exclude": c.exclude,
            "threads": c.threads, "device": c.device}  # fmt: skip


def _recipe_params(c) -> dict:
    return {"steps": c.steps, "batch_size": c.batch_size, "lr": c.lr, "optimizer": c.optimizer,
            "weight_decay": c.weight_decay, "augment": c.augment, "alpha": c.alpha,
            "temperature": c.temperature, "schedule": c.schedule, "levels": c.levels,
            "min_kept": c.min_kept}  # fmt: skip


def dense_params(c) -> dict:
    trains = c.teacher_trained
    return {**_data_params(c), "seed": c.seed if trains or c.checkpoint is None else None,
            "recipe": _recipe_params(c) if trains else None,
            "rewind_steps": getattr(c, "rewind_steps", 0)}  # fmt: skip


def level_params(c, level: int) -> dict:
    return {**_recipe_params(c), "method": c.method, "sparsity": c.sparsity, "seed": c.seed,
            "kd": c.kd, "imp_rate": c.imp_rate, "level": level,
            "nm": [c.nm, c.nm_layout] if c.method == "nm" else None}  # fmt: skip


def sweep_params(c) -> dict:
    """A member's outputs depend on these and on its own name: adding a method or a sparsity
    adds units and keeps the finished ones."""
    return _recipe_params(c)


def structured_params(c) -> dict:
    """Like `sweep_params`: a member's own choices are in its name."""
    return {**_recipe_params(c), "unit": c.unit, "scope": c.scope, "round_to": c.round_to,
            "max_layer_ratio": c.max_layer_ratio}  # fmt: skip


def summary_params(c) -> dict:
    if hasattr(c, "importances"):
        extra = {"members": list(channel_members(c)), "scratch": c.scratch}
    elif hasattr(c, "methods"):
        extra = {"members": list(members(c))}
    else:
        extra = {"controls": c.controls}
    return {"output": c.output, **extra}


def main_unit(ctx) -> list[str]:
    return [schema.MAIN]


def level_units(ctx) -> list[str]:
    return [schema.MAIN, *(schema.CONTROLS if ctx.config.controls else ())]


def barrier_unit(ctx) -> list[str]:
    return [ALL]


def member_units(ctx) -> list[str]:
    return list(members(ctx.config))


def member_name(arm: Arm) -> str:
    return f"{arm.method}-s{arm.sparsity:g}-seed{arm.seed}" + ("-kd" if arm.kd else "")


def members(config) -> dict[str, Arm]:
    """A sweep's members by unit name, in method, sparsity, seed, KD order."""
    arms = [Arm(method, sparsity, seed, kd) for method in config.methods
            for sparsity in config.sparsities for seed in config.seed_list
            for kd in config.kd_modes]  # fmt: skip
    return {member_name(arm): arm for arm in arms}


def channel_member_units(ctx) -> list[str]:
    return list(channel_members(ctx.config))


def channel_members(config) -> dict:
    """A structured run's members by unit name: importance, target, seed, KD."""
    mark = "r" if config.unit == "channels" else "x"
    arms = [ChannelArm(importance, amount, seed, kd) for importance in config.importances
            for amount in config.amounts for seed in config.seed_list
            for kd in config.kd_modes]  # fmt: skip
    return {f"{a.importance}-{mark}{a.amount:g}-seed{a.seed}" + ("-kd" if a.kd else ""): a
            for a in arms}  # fmt: skip


def level_count(config) -> int:
    return len(targets(config, config.sparsity))


def _dense_stage() -> Stage:
    return Stage(schema.level_name(0), main_unit, Lazy(f"{MODULE}.levels:dense_level"),
                 dense_params, setup=SETUP)  # fmt: skip


def prune_stages(config) -> list[Stage]:
    return every_prune_stage(level_count(config))


def is_barrier(stage: Stage) -> bool:
    """A stage of one unit whatever the config: a scheduler runs it as a single task."""
    return stage.units in (main_unit, barrier_unit)


def every_prune_stage(levels: int) -> list[Stage]:
    """The stages of a prune run of `levels` levels; with a maximum, those of every config of
    at most that many, in order: what a scheduler that lays out a run before it sees the
    config (an Airflow DAG) holds."""
    pruned = [
        Stage(schema.level_name(level), level_units,
              Lazy(f"{MODULE}.levels:prune_level", {"level": level}),
              Lazy(f"{MODULE}.pipeline:level_params", {"level": level}), setup=SETUP)
        for level in range(1, levels + 1)
    ]  # fmt: skip
    summary = Stage("summary", barrier_unit, Lazy(f"{MODULE}.summary:write_prune_summary"),
                    summary_params, clean=Lazy(f"{MODULE}.summary:clean_summary"))  # fmt: skip
    return [_dense_stage(), *pruned, summary]


def sweep_stages(config) -> list[Stage]:
    members_stage = Stage(schema.SWEEP_STAGE, member_units,
                          Lazy(f"{MODULE}.levels:sweep_member"), sweep_params,
                          setup=SETUP)  # fmt: skip
    summary = Stage("summary", barrier_unit, Lazy(f"{MODULE}.summary:write_sweep_summary"),
                    summary_params, clean=Lazy(f"{MODULE}.summary:clean_summary"))  # fmt: skip
    return [_dense_stage(), members_stage, summary]


def structured_stages(config) -> list[Stage]:
    channels = f"{MODULE}.channels"
    units = channel_member_units
    found = [_dense_stage(),
             Stage(schema.SWEEP_STAGE, units, Lazy(f"{channels}:prune_member"),
                   structured_params, setup=SETUP)]  # fmt: skip
    if config.scratch:
        found.append(Stage("scratch", units, Lazy(f"{channels}:scratch_member"),
                           structured_params, setup=SETUP))  # fmt: skip
    found.append(Stage("summary", barrier_unit,
                       Lazy(f"{MODULE}.summary:write_structured_summary"), summary_params,
                       clean=Lazy(f"{MODULE}.summary:clean_summary")))  # fmt: skip
    return found
