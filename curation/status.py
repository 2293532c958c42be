"""`curate status RUN_DIR`: each stage's progress, read from the run directory alone."""

from __future__ import annotations

from dataclasses import dataclass

from curation import rundir
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


def _stage_status(run: Folder, stage: str, label: str) -> StageStatus:
    units = rundir.read_units(run, stage)
    stats = rundir.all_stats(run, stage)
    return StageStatus(
        name=label,
        units=None if units is None else len(units),
        done=len(set(rundir.done_units(run, stage)) & set(units or [])),  # listed ones only
        samples=sum(int(s.get("samples", 0)) for s in stats),
        seconds=sum(float(s.get("seconds", 0.0)) for s in stats),
        errors=len(rundir.error_units(run, stage)),
    )


def read_status(run: Folder) -> list[StageStatus]:
    """Every stage of the run, then those of the runs nested in it (`validate/train`...)."""
    found = [_stage_status(run, name, name) for name in rundir.stage_names(run)]
    for nested in rundir.nested_runs(run):
        inner = Folder(run.url_of(nested), run.storage_options)
        found += [_stage_status(inner, name, f"{nested}/{name}")
                  for name in rundir.stage_names(inner)]  # fmt: skip
    return found
