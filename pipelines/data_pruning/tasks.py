"""`curate prune` as separate tasks (the `curate_prune` Airflow DAG): the runner's steps, one
task at a time.

The request is the CLI's: the config's options plus `shards` and `overwrite`, by the same
names. The first task checks it, takes the lease (a `TaskLease` named by the scheduler's run)
and records the resolved config; every later task rebuilds that config from the run's
`config.json`, with the storage options of the request (the record masks their secrets), so
every task of the run sees one shard list and one set of fingerprints.
"""

from __future__ import annotations

import functools

from curation import rundir
from curation.driver import stage_digests
from curation.executors import task_executor
from curation.lease import TaskLease
from curation.stage import Context
from curation.storage import Folder, storage_options
from curation.tasks import StageSlot, TaskRun, TaskSteps, check_recorded
from pipelines.data_pruning.config import PruneConfig, prune_config
from pipelines.data_pruning.pipeline import every_stage, is_barrier, stages
from pipelines.data_pruning.runner import (
    abandon,
    begin,
    check_request,
    created_folders,
    folders,
)

# What the request holds besides the config's options (JSON schemas, as the CLI's arguments).
REQUEST = {
    "shards": {
        "type": "array",
        "items": {"type": "string"},
        "minItems": 1,
        "description": "Input shards: paths, globs, brace ranges (data/{00000..00009}.tar) or "
        "URLs, as `curate prune` takes them.",
    },
}
FLAGS = {
    "overwrite": {
        "type": "boolean",
        "default": False,
        "description": "Replace what the output folder holds.",
    },
}


def request_config(params: dict) -> PruneConfig:
    """The run's config from the request, as `curate prune` builds it."""
    options = {k: v for k, v in params.items() if k not in REQUEST and k not in FLAGS}
    return prune_config(list(params["shards"]), **options)


class PruneTasks(TaskSteps):
    slots = tuple(StageSlot(stage.name, is_barrier(stage)) for stage in every_stage())

    def start(self, params: dict, token: str, holder: str) -> dict:
        config = request_config(params)
        replaced = check_request(config, bool(params.get("overwrite", False)))
        task_executor(config.executor, config.workers, config.scheduler).close()  # it answers
        created = created_folders(config)
        out, _ = folders(config)
        out.makedirs()
        lease = TaskLease(out, token, holder).acquire()
        try:
            begin(config, replaced)
        except BaseException:
            lease.release()
            raise
        return {"run_dir": config.run_dir, "output": config.output, "token": token,
                "holder": holder, "created": created}  # fmt: skip

    def open(self, params: dict, claim: dict) -> TaskRun:
        options = storage_options(params.get("storage_options"))
        run = Folder(claim["run_dir"], options)
        record = rundir.read_config(run)
        config = PruneConfig(**{**record["config"], "storage_options": options})
        pipeline = stages(config)
        digests = stage_digests(pipeline, config)
        check_recorded(run, record, digests)
        lease = TaskLease(Folder(config.output, options), claim["token"], claim["holder"])
        executor = functools.partial(
            task_executor, config.executor, config.workers, config.scheduler
        )
        return TaskRun(Context(run, config), pipeline, digests, lease, executor)

    def abandon(self, run: TaskRun, claim: dict) -> None:
        abandon(run.ctx.config, claim["created"])

    def end(self, params: dict, claim: dict) -> None:
        out = Folder(claim["output"], storage_options(params.get("storage_options")))
        TaskLease(out, claim["token"], claim["holder"]).release()
