"""The stage contract: a named step with deterministic work units and a function per unit.

Every executor (local pool, Dask, an Airflow task) calls `run_unit`, which makes a unit
idempotent and resumable: its outputs are renamed into place by the stage function, then its
stats, then its done marker, last.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from curation.storage import Folder


@dataclass(frozen=True)
class Context:
    """What a unit needs to run anywhere: picklable, no open handles."""

    run: Folder
    config: Any
    threads: int = 1


@dataclass(frozen=True)
class Stage:
    """`units(ctx)` lists work units in a fixed order; `process(ctx, unit)` writes the unit's
    outputs and returns its stats (with at least `samples`); `params(config)` is the part of
    the config the outputs depend on; `clean(ctx)` removes outputs kept outside the run
    directory when the stage is invalidated."""

    name: str
    units: Callable[[Context], list[str]]
    process: Callable[[Context, str], dict]
    params: Callable[[Any], dict]
    clean: Callable[[Context], None] | None = None


def stage_hash(stage: Stage, config: Any, upstream: str) -> str:
    """Chained with the upstream stage's hash, so a change invalidates everything after it."""
    payload = json.dumps({"params": stage.params(config), "upstream": upstream}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def configure_threads(threads: int) -> None:
    """Same thread counts under every executor, so floating-point results match byte for byte."""
    import faiss
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)


def run_unit(stage: Stage, unit: str, ctx: Context) -> dict:
    """Run one unit unless its done marker exists; return its stats."""
    run = ctx.run
    if run.exists(stage.name, "done", unit):
        return run.read_json(stage.name, "stats", f"{unit}.json")
    configure_threads(ctx.threads)
    start = time.time()
    try:
        stats = stage.process(ctx, unit)
    except Exception as exc:
        record = {"unit": unit, "error": f"{type(exc).__name__}: {exc}"}
        record["traceback"] = traceback.format_exc()
        run.write_json(record, stage.name, "errors", f"{unit}.json")
        raise
    stats = {**stats, "unit": unit, "seconds": round(time.time() - start, 3)}
    run.write_json(stats, stage.name, "stats", f"{unit}.json")
    run.write_bytes(b"", stage.name, "done", unit)
    run.remove(stage.name, "errors", f"{unit}.json")
    return stats
