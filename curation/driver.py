"""Runs a pipeline's stages in order on an executor: resume, invalidation, progress.

Split in three steps (`prepare_stage`, the units, `finish_stage`) so that a scheduler that
runs units itself (Airflow's mapped tasks) drives a stage exactly as the executors do.
"""

from __future__ import annotations

from collections.abc import Callable

from curation import rundir
from curation.errors import CurateError
from curation.executors import Executor
from curation.progress import StageProgress
from curation.stage import Context, Stage, stage_hash, unit_fingerprint


def stage_digests(stages: list[Stage], config) -> dict[str, str]:
    """Each stage's hash, chained in order."""
    digests: dict[str, str] = {}
    upstream = ""
    for stage in stages:
        upstream = digests[stage.name] = stage_hash(stage, config, upstream)
    return digests


def prepare_stage(stage: Stage, ctx: Context, digest: str) -> list[str]:
    """Keep the stage's finished units only when its config (and upstream) is unchanged;
    record its unit list; return the units still to run."""
    run = ctx.run
    if rundir.recorded_hash(run, stage.name) != digest:
        run.remove(stage.name)
        if stage.clean is not None:
            stage.clean(ctx)
        rundir.record_hash(run, stage.name, digest)
    run.remove_temporaries(stage.name)
    units = stage.units(ctx)
    rundir.write_units(run, stage.name, units)
    if stage.fingerprint is None:
        done = set(rundir.done_units(run, stage.name))
        return [u for u in units if u not in done]
    return [u for u in units if rundir.done_fingerprint(run, stage.name, u)
            != unit_fingerprint(stage, ctx, u)]  # fmt: skip


def finish_stage(stage: Stage, ctx: Context, failures: list[tuple[str, BaseException]]) -> None:
    """Raise when a unit failed (a user error as itself) or is not done."""
    for _, exc in failures:
        if isinstance(exc, CurateError):
            raise exc
    units = rundir.read_units(ctx.run, stage.name) or []
    missing = sorted(set(units) - set(rundir.done_units(ctx.run, stage.name)))
    if not failures and not missing:
        return
    if failures:
        unit, exc = failures[0]
        first = f"unit {unit}: {type(exc).__name__}: {exc}"
    else:
        errors = rundir.error_units(ctx.run, stage.name)
        first = f"unit {missing[0]} is not done" + (f" (error in {errors[0]})" if errors else "")
    raise CurateError(
        f"stage {stage.name}: {len(failures) or len(missing)} of {len(units)} units failed "
        f"(first: {first}); details in {ctx.run.url_of(stage.name, 'errors')}"
    )


def run_one(stage: Stage, unit: str, ctx: Context, executor: Executor) -> dict:
    """One unit on an executor, for a scheduler that runs units itself: its stats, or its
    exception raised."""
    ((_, result),) = list(executor.map(stage, [unit], ctx))
    if isinstance(result, BaseException):
        raise result
    return result


def run_stage(stage: Stage, ctx: Context, executor: Executor, digest: str) -> None:
    pending = prepare_stage(stage, ctx, digest)
    units = rundir.read_units(ctx.run, stage.name) or []
    progress = StageProgress(ctx.run, stage.name, units, len(units) - len(pending))
    failures: list[tuple[str, BaseException]] = []
    try:
        for unit, result in executor.map(stage, pending, ctx):
            if isinstance(result, BaseException):
                failures.append((unit, result))
            else:
                progress.finished(unit, int(result.get("samples", 0)))
    finally:
        progress.close()
    finish_stage(stage, ctx, failures)


def run_stages(stages: list[Stage], ctx: Context, executor: Executor,
               guard: Callable[[], None] | None = None) -> None:  # fmt: skip
    """Every stage in order; `guard` (a lease's check) runs before each and stops the run by
    raising."""
    digests = stage_digests(stages, ctx.config)
    for stage in stages:
        if guard is not None:
            guard()
        run_stage(stage, ctx, executor, digests[stage.name])
