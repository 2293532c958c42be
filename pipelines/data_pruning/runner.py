"""`curate prune`: check the output folder, record the config, run the stages."""

from __future__ import annotations

import platform
from importlib import metadata

from curation import rundir
from curation.driver import run_stages, stage_digests
from curation.errors import CurateError, NoResultError
from curation.executors import make_executor
from curation.stage import Context
from curation.storage import Folder
from pipelines.data_pruning import schema
from pipelines.data_pruning.pipeline import NAME, stages

VERSIONED = ("curate", "torch", "open_clip_torch", "timm", "faiss-cpu", "numpy", "pyarrow")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def claim_output(out: Folder, run: Folder, overwrite: bool) -> bool:
    """Make sure the output folder is ours to write; returns whether it started empty."""
    entries = out.listdir()
    if not entries:
        return True
    if overwrite:
        for name in entries:
            out.remove(name)
        run.remove()
        return True
    if rundir.MARKER not in entries:
        raise CurateError(
            f"output folder {out.url} is not empty ({len(entries)} entries) and holds no curate "
            "run: choose an empty folder, or pass --overwrite to replace its contents"
        )
    return False


def prune(config, overwrite: bool = False) -> dict:
    """Run (or resume) the pipeline; returns the summary."""
    out, run = Folder(config.output), Folder(config.run_dir)
    pipeline = stages(config)
    started_empty = claim_output(out, run, overwrite)
    out.makedirs()
    out.remove_temporaries()  # a killed reshard may have left a half-written shard
    out.write_json({"run_dir": config.run_dir}, rundir.MARKER)
    rundir.write_config(run, NAME, config.model_dump(), stage_digests(pipeline, config),
                        versions())  # fmt: skip
    executor = make_executor(config.executor, config.workers, config.scheduler)
    try:
        run_stages(pipeline, Context(run, config), executor)
    except NoResultError:
        if started_empty:
            out.remove()
        raise
    finally:
        executor.close()
    return out.read_json(schema.SUMMARY)
