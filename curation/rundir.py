"""The engine's part of a run directory: the record of a run and of each stage's units.

```
RUN/config.json                  pipeline name, resolved config, versions, stage hashes in order
RUN/<stage>/stage.json           the stage's hash: params chained with the upstream hash
RUN/<stage>/units.json           the unit list
RUN/<stage>/done/<unit>          written last
RUN/<stage>/stats/<unit>.json    samples, seconds, bytes...
RUN/<stage>/errors/<unit>.json   the exception and traceback of a failed unit
RUN/<name>/config.json           a nested run (validate, sweep) of another pipeline
```

What each stage writes besides is its pipeline's business (its own schema module).
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

from curation.errors import CurateError
from curation.storage import Folder, check_access

CONFIG = "config.json"
MARKER = ".curate-run.json"  # in an output folder: names the run directory that writes it


def package_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Python's version and each installed package's of `names`, for config.json."""
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def write_config(run: Folder, pipeline: str, config: dict, stages: dict[str, str],
                 versions: dict[str, str]) -> None:  # fmt: skip
    """Record the run as it begins, its lease held; first drop the leftovers of writes into the
    run folder killed before their rename (a `run.log` rewrite): only curate's own atomic
    writes carry the mark, and nothing else of this run is writing yet."""
    run.remove_temporaries()
    record = {"pipeline": pipeline, "config": config, "versions": versions,
              "stages": list(stages.items())}  # fmt: skip
    run.write_json(record, CONFIG)


def read_config(run: Folder) -> dict:
    """The run's record; a user error when the folder holds no run."""
    if not run.exists(CONFIG):
        raise CurateError(f"not a curate run directory (no {CONFIG}): {run.url}")
    return run.read_json(CONFIG)


def resolve(path: str, storage_options: dict | None = None) -> Folder:
    """The run directory at `path`, or the one named by the marker of the output folder at
    `path`, so that commands accept either. A remote one is checked first, so that missing
    credentials or an unreachable store are one line that says what to set."""
    if "://" in path:
        check_access(path, writable=False, storage_options=storage_options)
    folder = Folder(path, storage_options)
    if not folder.exists(CONFIG) and folder.exists(MARKER):
        return Folder(folder.read_json(MARKER)["run_dir"], storage_options)
    return folder


def stage_names(run: Folder) -> list[str]:
    return [name for name, _ in read_config(run)["stages"]]


def nested_runs(run: Folder) -> list[str]:
    """Names of the runs of other pipelines kept inside this one (validate, sweep)."""
    stages = set(stage_names(run))
    return [n for n in run.listdir() if n not in stages and run.exists(n, CONFIG)]


def recorded_hash(run: Folder, stage: str) -> str | None:
    return run.read_json(stage, "stage.json")["hash"] if run.exists(stage, "stage.json") else None


def record_hash(run: Folder, stage: str, digest: str) -> None:
    run.write_json({"stage": stage, "hash": digest}, stage, "stage.json")


def write_units(run: Folder, stage: str, units: list[str]) -> None:
    run.write_json(units, stage, "units.json")


def read_units(run: Folder, stage: str) -> list[str] | None:
    return run.read_json(stage, "units.json") if run.exists(stage, "units.json") else None


def done_units(run: Folder, stage: str) -> list[str]:
    return run.listdir(stage, "done")


def done_fingerprint(run: Folder, stage: str, unit: str) -> str | None:
    """What the unit's done marker records of its input (empty for none); None: not done."""
    if not run.exists(stage, "done", unit):
        return None
    return run.read_bytes(stage, "done", unit).decode()


def is_complete(run: Folder, stage: str) -> bool:
    """Every listed unit of the stage is done."""
    units = read_units(run, stage)
    return units is not None and set(units) <= set(done_units(run, stage))


def read_stats(run: Folder, stage: str, unit: str) -> dict[str, Any]:
    return run.read_json(stage, "stats", f"{unit}.json")


def all_stats(run: Folder, stage: str) -> list[dict[str, Any]]:
    return [run.read_json(stage, "stats", f) for f in run.listdir(stage, "stats")
            if f.endswith(".json")]  # fmt: skip


def error_units(run: Folder, stage: str) -> list[str]:
    return [f.removesuffix(".json") for f in run.listdir(stage, "errors")]


def write_error(run: Folder, stage: str, unit: str, exc: BaseException, trace: str) -> None:
    record = {"unit": unit, "error": f"{type(exc).__name__}: {exc}", "traceback": trace}
    run.write_json(record, stage, "errors", f"{unit}.json")


def finish_unit(run: Folder, stage: str, unit: str, stats: dict[str, Any],
                fingerprint: str = "") -> None:  # fmt: skip
    """Stats, then the done marker last (holding the unit's input fingerprint); a stale error
    record goes."""
    run.write_json(stats, stage, "stats", f"{unit}.json")
    run.write_bytes(fingerprint.encode(), stage, "done", unit)
    run.remove(stage, "errors", f"{unit}.json")
