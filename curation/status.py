"""`curate status RUN_DIR`: each stage's progress, read from the run directory alone."""

from __future__ import annotations

from dataclasses import dataclass

from curation.errors import CurateError
from curation.storage import Folder


@dataclass
class StageStatus:
    name: str
    units: int | None
    done: int
    samples: int
    seconds: float
    errors: int

    @property
    def state(self) -> str:
        if self.units is None:
            return "not started"
        if self.errors:
            return "failed units"
        return "done" if self.done == self.units else "in progress"


def read_status(run_dir: str) -> list[StageStatus]:
    run = Folder(run_dir)
    if not run.exists("config.json"):
        raise CurateError(f"not a curate run directory (no config.json): {run_dir}")
    stages = [name for name, _ in run.read_json("config.json")["stages"]]
    found = []
    for name in stages:
        units = len(run.read_json(name, "units.json")) if run.exists(name, "units.json") else None
        stats = [
            run.read_json(name, "stats", f)
            for f in run.listdir(name, "stats")
            if f.endswith(".json")
        ]
        found.append(
            StageStatus(
                name=name,
                units=units,
                done=len(run.listdir(name, "done")),
                samples=sum(int(s.get("samples", 0)) for s in stats),
                seconds=sum(float(s.get("seconds", 0.0)) for s in stats),
                errors=len(run.listdir(name, "errors")),
            )
        )
    return found
