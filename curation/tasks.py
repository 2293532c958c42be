"""A run made of separate tasks, for a scheduler that lays out and runs every unit itself (an
Airflow DAG): what each task does, with the functions the executors' driver calls.

A pipeline says how a run starts (check the request, claim the output, record the config),
how a task finds its run again (`open`: the config rebuilt from the run's record, the lease)
and how a run ends (release the lease). The stage steps are the driver's: `units` prepares a
stage and lists its pending units, `unit` runs one, `finish` checks that every unit is done,
and `barrier` does the three for a stage with a single unit. Each task renews the run's lease,
so a run whose lease was taken stops at its next task, and a stage the run's config does not
have raises `NotInRun` (the scheduler skips it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from curation import progress, rundir
from curation.driver import finish_stage, prepare_stage, run_one
from curation.errors import CurateError, NoResultError
from curation.executors import Executor
from curation.lease import TaskLease
from curation.stage import Context, Stage
from curation.storage import Folder


@dataclass(frozen=True)
class StageSlot:
    """A stage some config of the pipeline runs: a scheduler lays one out per slot."""

    name: str
    barrier: bool  # a single unit, so a single task


class NotInRun(Exception):
    """The run's config has no such stage: its tasks are skipped."""


@dataclass(frozen=True)
class TaskRun:
    """A run as one of its tasks sees it."""

    ctx: Context
    stages: list[Stage]
    digests: dict[str, str]
    lease: TaskLease
    executor: Callable[[], Executor]  # started only by the tasks that run units

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise NotInRun(f"stage {name} is not one this run's config needs")

    def run_units(self, stage: Stage, units: list[str]) -> list[dict]:
        executor = self.executor()
        try:
            return [run_one(stage, unit, self.ctx, executor) for unit in units]
        finally:
            executor.close()


class TaskSteps(ABC):
    """What each task of a run calls. `params` are the run's request, as the scheduler
    validated them; `claim` is what `start` returned, given to every later task."""

    slots: tuple[StageSlot, ...]

    @abstractmethod
    def start(self, params: dict, token: str, holder: str) -> dict:
        """Check the request, take the lease (`token` names the run), record the run; return
        the claim: a small JSON record (no secrets) from which `open` finds the run."""

    @abstractmethod
    def open(self, params: dict, claim: dict) -> TaskRun: ...

    @abstractmethod
    def abandon(self, run: TaskRun, claim: dict) -> None:
        """A stage found that nothing can come of the input: leave nothing of the run."""

    @abstractmethod
    def end(self, params: dict, claim: dict) -> None:
        """Release the lease; runs however the other tasks ended."""

    @contextmanager
    def _task(self, params: dict, claim: dict) -> Iterator[TaskRun]:
        run = self.open(params, claim)
        try:
            with run.lease.holding():
                yield run
        except NoResultError:
            self.abandon(run, claim)
            raise

    def units(self, params: dict, claim: dict, name: str) -> list[str]:
        """Prepare the stage (invalidate it on a changed config, record its units); return the
        units still to run."""
        with self._task(params, claim) as run:
            return _prepare(run, run.stage(name))

    def unit(self, params: dict, claim: dict, name: str, unit: str) -> dict:
        """Run one unit (nothing when it is done already); return its stats."""
        with self._task(params, claim) as run:
            return run.run_units(run.stage(name), [unit])[0]

    def finish(self, params: dict, claim: dict, name: str) -> None:
        with self._task(params, claim) as run:
            _finish(run, run.stage(name))

    def barrier(self, params: dict, claim: dict, name: str) -> None:
        with self._task(params, claim) as run:
            stage = run.stage(name)
            run.run_units(stage, _prepare(run, stage))
            _finish(run, stage)


def check_recorded(run: Folder, record: dict, digests: dict[str, str]) -> None:
    """The stages a task rebuilt from the run's record are the ones `start` recorded."""
    if [list(pair) for pair in digests.items()] != record["stages"]:
        raise CurateError(
            f"run directory {run.url} records other stages than this run's config gives: "
            "another run wrote it since this one started"
        )


def _prepare(run: TaskRun, stage: Stage) -> list[str]:
    pending = prepare_stage(stage, run.ctx, run.digests[stage.name])
    total = len(rundir.read_units(run.ctx.run, stage.name) or [])
    progress.log(run.ctx.run, f"{stage.name}: start, {total} units, {total - len(pending)} "
                              "already done")  # fmt: skip
    return pending


def _finish(run: TaskRun, stage: Stage) -> None:
    """Every unit done, or one error naming the first that is not; RUN/run.log says so, as
    the driver's progress does."""
    finish_stage(stage, run.ctx, [])
    total = len(rundir.read_units(run.ctx.run, stage.name) or [])
    progress.log(run.ctx.run, f"{stage.name}: end, {total}/{total} units")
