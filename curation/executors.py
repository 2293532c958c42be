"""Executors only schedule: each runs `run_unit` over the pending units of a stage, and gives
each unit the threads of the worker that runs it."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import socket
import sys
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Protocol

from curation.errors import CurateError
from curation.stage import Context, Stage, run_unit

Result = tuple[str, dict | BaseException]
SCHEDULER_TIMEOUT_S = 10
DASHBOARD_TIMEOUT_S = 3


class Executor(Protocol):
    def map(self, stage: Stage, units: list[str], ctx: Context) -> Iterator[Result]: ...

    def close(self) -> None: ...


def local_threads(workers: int) -> int:
    """This machine's cores shared between `workers` processes."""
    return max(1, (os.cpu_count() or 1) // workers)


class InProcessExecutor:
    """Units one after the other in this process, each with the threads a local pool of
    `workers` processes gives a unit: the local executor's single worker, and a unit task of a
    scheduler that starts a process per unit (an Airflow task), so their results match the
    local executor's byte for byte."""

    def __init__(self, workers: int = 1):
        self.threads = local_threads(workers)

    def map(self, stage: Stage, units: list[str], ctx: Context) -> Iterator[Result]:
        ctx = dataclasses.replace(ctx, threads=self.threads)
        for unit in units:
            try:
                yield unit, run_unit(stage, unit, ctx)
            except Exception as exc:
                yield unit, exc

    def close(self) -> None:
        return None


class LocalExecutor:
    """A process pool over units (spawned, so no worker inherits OpenMP state); one worker
    runs units in this process. A worker keeps its loaded models between units."""

    def __init__(self, workers: int):
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def map(self, stage: Stage, units: list[str], ctx: Context) -> Iterator[Result]:
        if self.workers == 1:
            yield from InProcessExecutor().map(stage, units, ctx)
            return
        ctx = dataclasses.replace(ctx, threads=local_threads(self.workers))
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


_WORKER_LOCK = threading.Lock()


def run_on_worker(stage: Stage, unit: str, ctx: Context) -> dict:
    """A unit on a Dask worker: it owns the worker process while it runs (one unit at a time)
    and uses the worker's `nthreads` threads."""
    from distributed import get_worker

    with _WORKER_LOCK:
        threads = max(1, get_worker().state.nthreads)
        return run_unit(stage, unit, dataclasses.replace(ctx, threads=threads))


def _working_dashboard(client) -> str | None:
    """The client's dashboard link when it answers: a scheduler started without a dashboard
    still serves HTTP on its dashboard address (health, metrics), where the link is a 404."""
    if "dashboard" not in client.scheduler_info().get("services", {}):
        return None
    link = client.dashboard_link
    try:
        with urllib.request.urlopen(link, timeout=DASHBOARD_TIMEOUT_S) as page:
            return link if page.status == 200 else None
    except (OSError, ValueError):
        return None


def check_scheduler(address: str) -> None:
    """Fail in seconds, with one line, when nothing listens at a scheduler's address: a Dask
    client would retry until its timeout, then spend as long again closing. Transports other
    than TCP (ucx://...) are left to the client."""
    from distributed.comm.addressing import get_address_host_port, parse_address

    if parse_address(address)[0] not in ("tcp", "tls"):
        return
    try:
        host, port = get_address_host_port(address)
    except ValueError as exc:
        raise CurateError(f"--scheduler {address}: {exc} (e.g. tcp://host:8786)") from None
    try:
        socket.create_connection((host, port), timeout=SCHEDULER_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise CurateError(f"cannot reach the Dask scheduler {address} ({reason}): is it "
                          "running?") from None  # fmt: skip


class DaskExecutor:
    """`client.map` over units (pure=False: units write files; retries: they are idempotent).
    Starts a LocalCluster of `workers` single-threaded processes when no scheduler is given."""

    def __init__(self, workers: int, scheduler: str | None = None, retries: int = 1):
        from distributed import Client, LocalCluster

        self.retries = retries
        if scheduler:
            self._cluster = None
            check_scheduler(scheduler)
            try:
                self._client = Client(scheduler, timeout=f"{SCHEDULER_TIMEOUT_S}s")
            except Exception as exc:  # anything that is not a scheduler's answer
                raise CurateError(
                    f"cannot reach the Dask scheduler {scheduler} within "
                    f"{SCHEDULER_TIMEOUT_S} s ({type(exc).__name__}): is it running, and is it "
                    "a Dask scheduler's address?"
                ) from None
        else:
            self._cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=local_threads(workers),
                processes=True,
                dashboard_address=None,
            )
            self._client = Client(self._cluster)
        link = _working_dashboard(self._client)
        if link is not None:
            print(f"Dask dashboard: {link}", file=sys.stderr)

    def map(self, stage: Stage, units: list[str], ctx: Context) -> Iterator[Result]:
        from distributed import as_completed as dask_completed

        if not units:
            return
        futures = self._client.map(
            run_on_worker,
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


def task_executor(kind: str, workers: int, scheduler: str | None = None) -> Executor:
    """The executor of one task of a run made of separate tasks: this process, or a running
    Dask cluster (a LocalCluster started for every task would cost more than its unit)."""
    if kind == "local":
        return InProcessExecutor(workers)
    if kind == "dask" and not scheduler:
        raise CurateError("--executor dask in a scheduled run needs --scheduler (the address "
                          "of a running Dask scheduler)")  # fmt: skip
    return make_executor(kind, workers, scheduler)
