"""Executors only schedule: each runs `run_unit` over the pending units of a stage."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Protocol

from curation.stage import Context, Stage, run_unit

Result = tuple[str, dict | BaseException]


class Executor(Protocol):
    workers: int

    def map(self, stage: Stage, units: list[str], ctx: Context) -> Iterator[Result]: ...

    def close(self) -> None: ...


class LocalExecutor:
    """A process pool over units (spawned, so no worker inherits OpenMP state); one worker
    runs units in this process. A worker keeps its loaded models between units."""

    def __init__(self, workers: int):
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def map(self, stage: Stage, units: list[str], ctx: Context) -> Iterator[Result]:
        if self.workers == 1:
            for unit in units:
                try:
                    yield unit, run_unit(stage, unit, ctx)
                except Exception as exc:
                    yield unit, exc
            return
        if self._pool is None:
            spawn = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=spawn)
        futures = {self._pool.submit(run_unit, stage, unit, ctx): unit for unit in units}
        for future in as_completed(futures):
            exc = future.exception()
            yield futures[future], exc if exc is not None else future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


class DaskExecutor:
    """`client.map` over units (pure=False: units write files; retries: they are idempotent).
    Starts a LocalCluster of `workers` single-threaded processes when no scheduler is given."""

    def __init__(self, workers: int, scheduler: str | None = None, retries: int = 1):
        from distributed import Client, LocalCluster

        self.retries = retries
        if scheduler:
            self._cluster = None
            self._client = Client(scheduler)
            self.workers = max(1, len(self._client.scheduler_info()["workers"]))
        else:
            self._cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
            )
            self._client = Client(self._cluster)
            self.workers = workers

    def map(self, stage: Stage, units: list[str], ctx: Context) -> Iterator[Result]:
        from distributed import as_completed as dask_completed

        if not units:
            return
        futures = self._client.map(
            run_unit,
            [stage] * len(units),
            units,
            [ctx] * len(units),
            pure=False,
            retries=self.retries,
        )
        names = {future.key: unit for future, unit in zip(futures, units, strict=True)}
        for future in dask_completed(futures):
            unit = names[future.key]
            if future.status == "error":
                yield unit, future.exception()
            else:
                yield unit, future.result()

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(kind: str, workers: int, scheduler: str | None = None) -> Executor:
    if kind == "local":
        return LocalExecutor(workers)
    if kind == "dask":
        return DaskExecutor(workers, scheduler)
    raise ValueError(f"unknown executor {kind!r}")
