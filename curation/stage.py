"""The stage contract: a named step with deterministic work units and a function per unit.

Every executor (local pool, Dask, an Airflow task) calls `run_unit`, which makes a unit
idempotent and resumable: its outputs are renamed into place by the stage function, then its
stats, then its done marker, last.

Stage functions are named by import path (`Lazy`), so declaring a pipeline imports nothing
heavy: a worker imports the module of a stage only when it runs one of its units.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from curation import progress, rundir
from curation.storage import Folder


@dataclass(frozen=True)
class Context:
    """What a unit needs to run anywhere: picklable, no open handles. `threads` is what the
    worker running the unit gives it (set by the executor)."""

    run: Folder
    config: Any
    threads: int = 1


@dataclass(frozen=True)
class Lazy:
    """A function named `module:function`, imported on first call; extra keyword arguments are
    bound. Pickles as its name, so a worker imports only the stages it runs."""

    path: str
    kwargs: dict = field(default_factory=dict)

    def __call__(self, *args: Any) -> Any:
        module, _, name = self.path.partition(":")
        return getattr(importlib.import_module(module), name)(*args, **self.kwargs)


@dataclass(frozen=True)
class Stage:
    """`units(ctx)` lists work units in a fixed order; `process(ctx, unit)` writes the unit's
    outputs and returns its stats (with at least `samples`); `params(config)` is the part of
    the config the outputs depend on; `setup(ctx)` prepares a worker once before its first
    unit of the stage (threads, model caches); `clean(ctx)` removes outputs kept outside the
    run directory when the stage is invalidated; `fingerprint(ctx, unit)` identifies what a
    unit reads (an input shard's size and mtime, say), recorded in its done marker: a unit
    whose input changed is redone, the others stay done."""

    name: str
    units: Callable[[Context], list[str]]
    process: Callable[[Context, str], dict]
    params: Callable[[Any], dict]
    setup: Callable[[Context], None] | None = None
    clean: Callable[[Context], None] | None = None
    fingerprint: Callable[[Context, str], str] | None = None


def unit_fingerprint(stage: Stage, ctx: Context, unit: str) -> str:
    return "" if stage.fingerprint is None else stage.fingerprint(ctx, unit)


def stage_hash(stage: Stage, config: Any, upstream: str) -> str:
    """Chained with the upstream stage's hash, so a change invalidates everything after it."""
    payload = json.dumps({"params": stage.params(config), "upstream": upstream}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


_SET_UP: set[tuple[str, str, int]] = set()  # (run, stage, threads) set up in this process


def _setup_once(stage: Stage, ctx: Context) -> None:
    key = (ctx.run.url, stage.name, ctx.threads)
    if stage.setup is not None and key not in _SET_UP:
        stage.setup(ctx)
        _SET_UP.add(key)


def run_unit(stage: Stage, unit: str, ctx: Context) -> dict:
    """Run one unit unless its done marker exists; return its stats."""
    run = ctx.run
    fingerprint = unit_fingerprint(stage, ctx, unit)
    if rundir.done_fingerprint(run, stage.name, unit) == fingerprint:
        return rundir.read_stats(run, stage.name, unit)
    _setup_once(stage, ctx)
    start = time.time()
    try:
        with progress.reporting(run, stage.name, unit):
            stats = stage.process(ctx, unit)
    except Exception as exc:
        rundir.write_error(run, stage.name, unit, exc, traceback.format_exc())
        raise
    stats = {**stats, "unit": unit, "seconds": round(time.time() - start, 3)}
    rundir.finish_unit(run, stage.name, unit, stats, fingerprint)
    return stats
