"""`curate validate` and `curate sweep`: check the prune run, record the nested run's config
(`RUN/validate/config.json`, `RUN/sweep/config.json`), run its stages on an executor. A rerun
resumes: finished units are kept, missing ones run."""

from __future__ import annotations

from curation import rundir
from curation.driver import run_stages, stage_digests
from curation.executors import make_executor
from curation.stage import Context, Stage
from curation.storage import Folder
from pipelines.data_pruning.finished import FinishedRun, open_run
from pipelines.data_pruning.pipeline import scoring_stages
from pipelines.data_pruning.runner import versions
from pipelines.validation.config import SweepOptions, SweepPlan, ValidationConfig
from pipelines.validation.data import check_test_set
from pipelines.validation.pipeline import SWEEP, VALIDATE, Job, sweep_stages, validate_stages
from pipelines.validation.selections import plan_selections, scoring_configs
from shards.paths import expand_shards, fingerprints


def _job(run: FinishedRun, pipeline: str, config: ValidationConfig, **extra) -> Job:
    options = run.run.storage_options
    eval_shards = expand_shards([config.eval], options) if config.eval else []
    eval_fingerprints = fingerprints(eval_shards, options)
    check_test_set(run, eval_shards)
    return Job(pipeline=pipeline, run_dir=run.run.url, basis=rundir.read_config(run.run)["stages"],
               run_config=run.config.model_dump(), config=config, eval_shards=eval_shards,
               eval_fingerprints=eval_fingerprints, storage_options=options,
               **extra)  # fmt: skip


def _run(run: FinishedRun, job: Job, stages: list[Stage], before=None) -> Folder:
    """Record the nested run and run its stages; `before(executor)` runs first on the same
    executor."""
    folder = Folder(run.run.url_of(job.pipeline), job.storage_options)
    rundir.write_config(folder, job.pipeline, job.record(),
                        stage_digests(stages, job), versions())  # fmt: skip
    config = job.config
    executor = make_executor(config.executor, config.workers, config.scheduler)
    try:
        if before is not None:
            before(executor)
        run_stages(stages, Context(folder, job), executor)
    finally:
        executor.close()
    return folder


def validate(run_dir: str, config: ValidationConfig, storage_options: dict | None = None) -> dict:
    """Train every arm for every seed (or only those not finished); returns results.json. A
    remote run is read with `storage_options`."""
    run = open_run(run_dir, storage_options=storage_options)
    run.require_embeddings("curate validate")
    job = _job(run, VALIDATE, config)
    return _run(run, job, validate_stages(job)).read_json("results.json")


def sweep(run_dir: str, config: ValidationConfig, plan: SweepPlan,
          options: SweepOptions | None = None,
          storage_options: dict | None = None) -> dict:  # fmt: skip
    """Every selection of the plan (metrics x option values x rates) against random and the
    full data, each with and without KD; the scores a selection reads are computed first in
    the prune run (embeddings and clusters are never recomputed). Returns sweep.json."""
    run = open_run(run_dir, ("embed", "assign"), storage_options)
    run.require_embeddings("curate sweep")
    options = options or SweepOptions()
    selections = plan_selections(run.config, plan, options)
    scoring = scoring_configs(run.run, run.config, selections)
    job = _job(run, SWEEP, config, plan=plan, options=options, selections=selections)

    def scores(executor) -> None:
        for cfg in scoring:
            run_stages(scoring_stages(cfg), Context(run.run, cfg), executor)

    return _run(run, job, sweep_stages(job), before=scores).read_json("sweep.json")
