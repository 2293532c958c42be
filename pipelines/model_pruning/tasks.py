"""`curate model prune` and `curate model sweep` as separate tasks (the `curate_model_prune` and
`curate_model_sweep` Airflow DAGs): the runner's steps, one task at a time.

The request is the command's options by the same names (`model`, `train`, `eval`, `output`,
`sparsity`, ...). The first task checks it as the CLI does before any folder exists (the data,
the checkpoint, the network's prunable layers, the method's reach, the Dask scheduler), takes
the lease (a `TaskLease` named by the scheduler's run) and records the config; every later task
rebuilds that config from the run's `config.json`.

A prune run's levels depend on its config (the schedule, `--levels`, `--imp-rate`), and a
scheduler lays out its tasks before it sees one: the prune tasks lay out level_0 to a maximum
level and the summary, the levels a config does not reach are skipped, and `start` refuses a
config of more levels with one line. A sweep's stages are the same for every config.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from curation import rundir
from curation.driver import stage_digests
from curation.errors import CurateError
from curation.executors import task_executor
from curation.lease import TaskLease
from curation.stage import Context, Stage
from curation.storage import Folder
from curation.tasks import StageSlot, TaskRun, TaskSteps, check_recorded
from pipelines.model_pruning.config import ModelSettings, PruneConfig, SweepConfig, model_config
from pipelines.model_pruning.pipeline import (
    PRUNE,
    SWEEP,
    every_prune_stage,
    is_barrier,
    prune_stages,
    sweep_stages,
)
from pipelines.model_pruning.runner import begin, check_request, prune_arms, sweep_arms


@dataclass(frozen=True)
class ModelPipeline:
    """What the tasks need of one model pipeline: its record's name, its config, its stages
    and the (method, sparsity) pairs its preflight tries."""

    name: str
    schema: type[ModelSettings]
    stages: Callable[[ModelSettings], list[Stage]]
    arms: Callable[[ModelSettings], list[tuple[str, float]]]


PRUNE_PIPELINE = ModelPipeline(PRUNE, PruneConfig, prune_stages, prune_arms)
SWEEP_PIPELINE = ModelPipeline(SWEEP, SweepConfig, sweep_stages, sweep_arms)


def request_config(schema: type[ModelSettings], params: dict) -> ModelSettings:
    """The run's config from the request, as the CLI builds it."""
    return model_config(schema, **params)


class ModelTasks(TaskSteps):
    """The tasks of one model pipeline, laid out over `every_stage`."""

    def __init__(self, pipeline: ModelPipeline, every_stage: list[Stage]):
        self.pipeline = pipeline
        self.slots = tuple(StageSlot(stage.name, is_barrier(stage)) for stage in every_stage)

    def start(self, params: dict, token: str, holder: str) -> dict:
        config = request_config(self.pipeline.schema, params)
        stages = self.pipeline.stages(config)
        self._laid_out(stages)
        check_request(config, self.pipeline.name, self.pipeline.arms(config))
        task_executor(config.executor, config.workers, config.scheduler).close()  # it answers
        out = Folder(config.output)
        out.makedirs()
        lease = TaskLease(out, token, holder).acquire()
        try:
            begin(config, self.pipeline.name, stages)
        except BaseException:
            lease.release()
            raise
        return {"run_dir": config.run_dir, "output": config.output, "token": token,
                "holder": holder}  # fmt: skip

    def _laid_out(self, stages: list[Stage]) -> None:
        """Every stage of the config has its tasks: a prune config may have more levels."""
        names = {slot.name for slot in self.slots}
        missing = [stage.name for stage in stages if stage.name not in names]
        if missing:
            raise CurateError(
                f"this config prunes in {len(stages) - 2} levels, and the DAG lays out "
                f"{len(self.slots) - 2} (its MAX_LEVELS): give fewer --levels or a larger "
                "--imp-rate, or raise MAX_LEVELS in the DAG file"
            )

    def open(self, params: dict, claim: dict) -> TaskRun:
        run = Folder(claim["run_dir"])
        record = rundir.read_config(run)
        config = self.pipeline.schema(**record["config"])
        stages = self.pipeline.stages(config)
        digests = stage_digests(stages, config)
        check_recorded(run, record, digests)
        lease = TaskLease(Folder(config.output), claim["token"], claim["holder"])
        executor = functools.partial(
            task_executor, config.executor, config.workers, config.scheduler
        )
        return TaskRun(Context(run, config), stages, digests, lease, executor)

    def abandon(self, run: TaskRun, claim: dict) -> None:
        """Nothing to remove: the model stages raise no `NoResultError` (the preflight refuses
        input they could make nothing of), as the CLI's runner has no such step."""

    def end(self, params: dict, claim: dict) -> None:
        TaskLease(Folder(claim["output"]), claim["token"], claim["holder"]).release()


def prune_tasks(max_levels: int) -> ModelTasks:
    """`curate model prune`'s tasks: level_0, level_1 .. level_`max_levels`, summary."""
    return ModelTasks(PRUNE_PIPELINE, every_prune_stage(max_levels))


def sweep_tasks() -> ModelTasks:
    """`curate model sweep`'s tasks: level_0, the members (mapped), summary."""
    return ModelTasks(SWEEP_PIPELINE, sweep_stages(None))  # the same stages for every config
