"""The validate and sweep pipelines: runs of their own on the engine, nested in the prune run
(`RUN/validate/`, `RUN/sweep/`), each with its config.json, stages, units and done markers.

```
validate: [eval] -> teacher (full | given, kept) -> train (ARM@seedN) -> results
sweep:    [eval] -> select (metric@rate[@option=value]) -> teacher (full | given)
                 -> train (full@seedN, SELECTION[@kd]@seedN) -> results
```

`eval` embeds the `--eval` shards with the run's model (only for a student on embeddings).
Hashes: the teacher stage hashes the training options and the prune run's stage hashes, so a
changed recipe or a re-pruned run redoes every model; the unit lists carry the seeds, arms,
rates and selections, so adding any of those adds units and keeps the finished ones. Declaring
the pipelines imports nothing heavy.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from curation.stage import Lazy, Stage
from curation.storage import public_options
from pipelines.data_pruning import schema
from pipelines.validation.config import SweepOptions, SweepPlan, ValidationConfig
from pipelines.validation.selections import Selection

VALIDATE, SWEEP = "validate", "sweep"
EVAL = "eval"  # the stage that embeds the --eval shards
FULL, KEPT, GIVEN = "full", "kept", "given"  # the teachers: trained on the pool or kept, given
# validate's arms: (subset, teacher); "main" is the full-data or given teacher
ARMS: dict[str, tuple[str, str | None]] = {
    "full": ("full", None),
    "kept": ("kept", None),
    "kept+kd": ("kept", "main"),
    "kept+kd_kept": ("kept", "kept"),
    "random": ("random", None),
    "random+kd": ("random", "main"),
}
KD = "@kd"
UNITS, RESULTS = "pipelines.validation.units", "pipelines.validation.results"


class Job(BaseModel):
    """What a validate or sweep run records in its config.json and gives every unit: the
    prune run (`run_dir` and its stage hashes, `basis`), the validation config, the expanded
    `--eval` shards and, for a sweep, its plan and selections."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pipeline: Literal["validate", "sweep"]
    run_dir: str
    basis: list[tuple[str, str]]
    run_config: dict
    config: ValidationConfig
    eval_shards: list[str] = []
    eval_fingerprints: list[str] = []  # each --eval shard's identity when the job started
    plan: SweepPlan | None = None
    options: SweepOptions | None = None
    selections: list[Selection] = []
    storage_options: dict = {}  # the prune run's, as given to this command (masked in the record)

    def record(self) -> dict:
        """What config.json holds: the job, its storage options' secrets masked."""
        masked = public_options(self.storage_options)
        return self.model_dump(mode="json") | {
            "storage_options": masked,
            "run_config": {**self.run_config, "storage_options": masked},
        }

    @property
    def main_teacher(self) -> str:
        return FULL if self.config.teacher_kind == "trained" else GIVEN

    @property
    def embeds_eval(self) -> bool:
        return bool(self.eval_shards) and self.config.on == "embeddings"

    def selection(self, name: str) -> Selection:
        return next(s for s in self.selections if s.name == name)


def seed_unit(name: str, seed: int) -> str:
    return f"{name}@seed{seed}"


def parse_seed(unit: str) -> tuple[str, int]:
    name, _, seed = unit.rpartition("@seed")
    return name, int(seed)


# units


def eval_units(ctx) -> list[str]:
    return [schema.unit_name(i) for i in range(len(ctx.config.eval_shards))]


def teachers(job: Job) -> list[str]:
    """The teachers a run needs: validate's main one and the kept-subset one; a sweep's main
    one when it distils."""
    if job.pipeline == VALIDATE:
        return [job.main_teacher, KEPT]
    return [job.main_teacher] if any(job.plan.kd_modes) else []


def teacher_units(ctx) -> list[str]:
    return teachers(ctx.config)


def validate_units(ctx) -> list[str]:
    return [seed_unit(arm, s) for s in ctx.config.config.seed_list for arm in ARMS]


def selection_units(ctx) -> list[str]:
    seeds = ctx.config.config.seed_list
    units = [s.unit(seed) for s in ctx.config.selections for seed in seeds]
    return list(dict.fromkeys(units))


def sweep_units(ctx) -> list[str]:
    job = ctx.config
    seeds = job.config.seed_list
    units = [seed_unit(FULL, s) for s in seeds]
    for selection in job.selections:
        for kd in job.plan.kd_modes:
            units += [seed_unit(selection.name + (KD if kd else ""), s) for s in seeds]
    return units


# params


def _basis(job: Job, *names: str) -> list:
    return [(n, h) for n, h in job.basis if not names or n in names]


def _eval_params(job: Job) -> dict:
    return {"embed": _basis(job, "embed"), "eval": job.eval_shards}


def _select_params(job: Job) -> dict:
    return {"basis": _basis(job), "run": job.run_config}


def _teacher_params(job: Job) -> dict:
    return {"basis": _basis(job), "config": job.config.hashed()}


def _none(job: Job) -> dict:
    return {}


def _results_params(job: Job) -> dict:
    found = {"seeds": job.config.seeds}
    if job.pipeline == SWEEP:
        found.update(plan=job.plan.model_dump(), options=job.options.model_dump())
    return found


def _stage(name: str, units, function: str, params, **extra) -> Stage:
    return Stage(name, units, Lazy(f"{UNITS}:{function}"), params, **extra)


def _training_stages(job: Job, train_units, train: str, results: str) -> list[Stage]:
    setup = Lazy(f"{UNITS}:setup_training")
    return [
        _stage("teacher", teacher_units, "train_teacher", _teacher_params, setup=setup),
        _stage("train", train_units, train, _none, setup=setup),
        Stage("results", schema.barrier_unit, Lazy(f"{RESULTS}:{results}"), _results_params,
              clean=Lazy(f"{RESULTS}:clean_results")),
    ]  # fmt: skip


def _eval_stage(job: Job) -> list[Stage]:
    if not job.embeds_eval:
        return []
    return [_stage(EVAL, eval_units, "embed_eval", _eval_params,
                   setup=Lazy(f"{UNITS}:setup_eval"))]  # fmt: skip


def validate_stages(job: Job) -> list[Stage]:
    return [
        *_eval_stage(job),
        *_training_stages(job, validate_units, "train_validate_arm", "validate_results"),
    ]


def sweep_stages(job: Job) -> list[Stage]:
    return [
        *_eval_stage(job),
        _stage("select", selection_units, "select_subset", _select_params),
        *_training_stages(job, sweep_units, "train_sweep_arm", "sweep_results"),
    ]
