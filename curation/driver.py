"""Runs a pipeline's stages in order on an executor: resume, invalidation, progress."""

from __future__ import annotations

from curation.errors import CurateError
from curation.executors import Executor
from curation.progress import StageProgress
from curation.stage import Context, Stage, stage_hash


def prepare_stage(stage: Stage, ctx: Context, digest: str) -> None:
    """Keep the stage's finished units only when its config (and upstream) is unchanged."""
    run = ctx.run
    recorded = None
    if run.exists(stage.name, "stage.json"):
        recorded = run.read_json(stage.name, "stage.json")["hash"]
    if recorded != digest:
        run.remove(stage.name)
        if stage.clean is not None:
            stage.clean(ctx)
        run.write_json({"stage": stage.name, "hash": digest}, stage.name, "stage.json")
    run.remove_temporaries(stage.name)


def run_stage(stage: Stage, ctx: Context, executor: Executor, digest: str) -> None:
    prepare_stage(stage, ctx, digest)
    units = stage.units(ctx)
    ctx.run.write_json(units, stage.name, "units.json")
    done = set(ctx.run.listdir(stage.name, "done"))
    pending = [u for u in units if u not in done]
    progress = StageProgress(stage.name, len(units), len(units) - len(pending))
    failures: list[tuple[str, BaseException]] = []
    try:
        for unit, result in executor.map(stage, pending, ctx):
            if isinstance(result, BaseException):
                failures.append((unit, result))
            else:
                progress.advance(int(result.get("samples", 0)))
    finally:
        progress.close()
    if failures:
        for _, exc in failures:
            if isinstance(exc, CurateError):
                raise exc
        unit, exc = failures[0]
        raise CurateError(
            f"stage {stage.name}: {len(failures)} of {len(units)} units failed "
            f"(first: unit {unit}: {type(exc).__name__}: {exc}); "
            f"details in {ctx.run.url_of(stage.name, 'errors')}"
        )


def stage_digests(stages: list[Stage], config) -> dict[str, str]:
    """Each stage's hash, chained in order."""
    digests: dict[str, str] = {}
    upstream = ""
    for stage in stages:
        upstream = digests[stage.name] = stage_hash(stage, config, upstream)
    return digests


def run_stages(stages: list[Stage], ctx: Context, executor: Executor) -> None:
    digests = stage_digests(stages, ctx.config)
    for stage in stages:
        run_stage(stage, ctx, executor, digests[stage.name])
