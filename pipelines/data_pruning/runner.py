"""`curate prune`: check everything, claim the output folder, record the config, run the stages.

Everything that can be wrong with the request (where it writes, access to storage, the model,
the device, labels or captions the criterion needs, the Dask scheduler) is checked before any
folder is created; a second run on the same output is refused by a lease; `--overwrite`
removes only the files a previous curate run wrote there.

`prune` is a few steps (`check_request`, `begin`, the stages, `abandon`) that the tasks of a
scheduled run (`pipelines.data_pruning.tasks`, the Airflow DAG) call one by one.
"""

from __future__ import annotations

import re

from curation import rundir
from curation.driver import run_stages, stage_digests
from curation.errors import CurateError, NoResultError
from curation.executors import make_executor
from curation.lease import LEASE_NAME, Lease
from curation.safety import check_write_location
from curation.stage import Context
from curation.storage import Folder, check_access, public_options
from pipelines.data_pruning import schema
from pipelines.data_pruning.config import PruneConfig
from pipelines.data_pruning.pipeline import NAME, stages
from pipelines.data_pruning.preflight import preflight

VERSIONED = ("curate", "torch", "open_clip_torch", "timm", "faiss-cpu", "faiss-gpu", "numpy",
             "pyarrow")  # fmt: skip


def versions() -> dict[str, str]:
    return rundir.package_versions(VERSIONED)


def check_locations(config) -> None:
    """The output and the run directory: somewhere a run may write, and reachable."""
    for option, path in (("--output", config.output), ("--run-dir", config.run_dir)):
        check_write_location(path, option, config.shards)
        check_access(path, writable=True, storage_options=config.storage_options)
    if config.run_dir.rstrip("/") == config.output.rstrip("/"):
        raise CurateError("--run-dir must not be the output folder itself (default: OUTPUT/_run)")
    stems: dict[str, str] = {}
    for i, shard in enumerate(config.shards):
        stem = schema.output_stem(config, i)
        if stem in stems:
            raise CurateError(f"the input shards {stems[stem]} and {shard} would both write "
                              f"{stem}.tar: give shards of distinct names")  # fmt: skip
        stems[stem] = shard


def written_names(run: Folder, out: Folder) -> set[str]:
    """What the run recorded in `run` wrote in `out`: from its config when the run directory is
    there, else the names only a curate run gives (NNNNN.tar, NNNNN_stats.json, ...)."""
    if run.exists(rundir.CONFIG):
        config = PruneConfig(**run.read_json(rundir.CONFIG)["config"])
        return schema.output_names(config) | {rundir.MARKER}
    pattern = re.compile(r"^\d+(\.tar|_stats\.json)$")
    found = {n for n in out.listdir() if pattern.match(n)}
    return found | {schema.SUMMARY, schema.DECISIONS, rundir.MARKER}


def previous_run(out: Folder, config, overwrite: bool) -> list[str]:
    """The files of a previous run in the output folder that `--overwrite` replaces (none when
    resuming or starting empty). A folder holding anything curate did not write is refused,
    with or without `--overwrite`: files the run did not write are never deleted or
    overwritten."""
    entries = [n for n in out.listdir() if n != LEASE_NAME]
    if not entries:
        return []
    if rundir.MARKER not in entries:
        raise CurateError(
            f"output folder {out.url} is not empty ({len(entries)} entries, e.g. {entries[0]}) "
            "and holds no curate run: choose an empty or new folder (--overwrite replaces only "
            "what a curate run wrote)"
        )
    recorded = out.read_json(rundir.MARKER)["run_dir"]
    ours = written_names(Folder(recorded, config.storage_options), out)
    foreign = sorted(set(entries) - ours)
    clash = sorted(set(foreign) & schema.output_names(config))
    if clash:
        raise CurateError(
            f"output folder {out.url} holds {clash[0]}, which no curate run wrote and this run "
            "would write: move it away or choose another folder"
        )
    if not overwrite:
        if recorded.rstrip("/") != config.run_dir.rstrip("/"):
            raise CurateError(
                f"output folder {out.url} holds the outputs of the run {recorded}: pass "
                f"--run-dir {recorded} to resume it, or --overwrite to replace its outputs"
            )
        return []
    return sorted(n for n in ours if out.exists(n))  # nested shard names too


def check_run_dir(run: Folder) -> None:
    """A run directory is new, empty, or a curate run's (then resumed)."""
    entries = run.listdir()
    if entries and rundir.CONFIG not in entries:
        raise CurateError(
            f"run directory {run.url} is not empty ({len(entries)} entries, e.g. {entries[0]}) "
            "and holds no curate run: choose an empty or new folder"
        )


def folders(config) -> tuple[Folder, Folder]:
    """The output folder and the run directory."""
    return (Folder(config.output, config.storage_options),
            Folder(config.run_dir, config.storage_options))  # fmt: skip


def check_request(config, overwrite: bool) -> list[str]:
    """Everything about the request that can be wrong, checked before anything is created;
    returns the files of a previous run that `--overwrite` replaces."""
    check_locations(config)
    out, run = folders(config)
    Lease(out).check_free()
    preflight(config)
    replaced = previous_run(out, config, overwrite)
    check_run_dir(run)
    return replaced


def created_folders(config) -> dict[str, bool]:
    """Which of the output folder and the run directory this run creates (by URL), so that a
    run that can produce nothing removes only those."""
    return {folder.url: not folder.exists() for folder in folders(config)}


def begin(config, replaced: list[str]) -> None:
    """With the lease held: the previous run's files replaced, leftovers of killed writes
    dropped, the output marked as this run's and the run recorded."""
    out, run = folders(config)
    _replace(out, replaced)
    out.remove_temporaries()  # a killed reshard may have left a half-written shard
    out.write_json({"run_dir": config.run_dir}, rundir.MARKER)
    record = config.model_dump() | {"storage_options": public_options(config.storage_options)}
    rundir.write_config(run, NAME, record, stage_digests(stages(config), config), versions())


def abandon(config, created: dict[str, bool]) -> None:
    """Nothing can come of this input: leave nothing of the run behind."""
    out, run = folders(config)
    if created[run.url]:
        run.remove()
    if created[out.url]:
        out.remove()
    else:
        for name in [*schema.output_names(config), rundir.MARKER]:
            out.remove(name)


def prune(config, overwrite: bool = False) -> dict:
    """Run (or resume) the pipeline; returns the summary."""
    replaced = check_request(config, overwrite)
    executor = make_executor(config.executor, config.workers, config.scheduler)
    out, run = folders(config)
    created = created_folders(config)
    try:
        out.makedirs()
        with Lease(out) as lease:
            begin(config, replaced)
            run_stages(stages(config), Context(run, config), executor, lease.check)
    except NoResultError:
        abandon(config, created)
        raise
    finally:
        executor.close()
    return out.read_json(schema.SUMMARY)


def _replace(out: Folder, names: list[str]) -> None:
    """`--overwrite`: remove the previous run's files, its run directory first."""
    if not names:
        return
    recorded = Folder(out.read_json(rundir.MARKER)["run_dir"], out.storage_options)
    if recorded.exists(rundir.CONFIG):
        recorded.remove()
    for name in names:
        out.remove(name)
