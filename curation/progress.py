"""Progress that moves: units report their samples as they go, the driver shows each stage.

A unit's code calls `advance(samples, fraction)` as it works (embed after every batch); the
reports reach the driver through small files in the run directory
(`RUN/<stage>/progress/<unit>.json`, written at most every few seconds and removed when the unit
is done), so they work the same under every executor (in-process, a process pool, Dask
workers on other machines, Airflow tasks). The driver polls them: a rich bar on a terminal,
a plain line every LOG_INTERVAL_S otherwise, with samples/s and an ETA from the overall rate;
a stage with nothing left to do is shown once, as done. Every stage's start and end, with its
counts, also goes to `RUN/run.log`.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from curation.storage import Folder

REPORT_INTERVAL_S = 2.0  # a unit writes its progress at most this often
POLL_INTERVAL_S = 1.0  # the driver reads the reports this often
LOG_INTERVAL_S = 10.0  # a line this often when stderr is not a terminal
LOG = "run.log"


@dataclass
class _Reporter:
    run: Folder
    stage: str
    unit: str
    samples: int = 0
    fraction: float | None = None
    written: float = 0.0

    def add(self, samples: int, fraction: float | None) -> None:
        self.samples += samples
        self.fraction = fraction
        if time.monotonic() - self.written >= REPORT_INTERVAL_S:
            self.write()

    def write(self) -> None:
        self.written = time.monotonic()
        self.run.write_json({"samples": self.samples, "fraction": self.fraction},
                            self.stage, "progress", f"{self.unit}.json")  # fmt: skip


_current: ContextVar[_Reporter | None] = ContextVar("curate_unit_progress", default=None)


def advance(samples: int, fraction: float | None = None) -> None:
    """Report `samples` more processed by the running unit, and how far through it is (0-1)
    when it knows; a no-op outside a unit."""
    reporter = _current.get()
    if reporter is not None:
        reporter.add(samples, fraction)


@contextmanager
def reporting(run: Folder, stage: str, unit: str) -> Iterator[None]:
    """Route `advance` calls of the unit run inside to its progress file; removed after."""
    token = _current.set(_Reporter(run, stage, unit))
    try:
        yield
    finally:
        _current.reset(token)
        run.remove(stage, "progress", f"{unit}.json")


def log(run: Folder, line: str) -> None:
    """Append a timestamped line to RUN/run.log (rewritten whole: object stores cannot
    append, and the log stays small)."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    before = run.read_bytes(LOG).decode() if run.exists(LOG) else ""
    run.write_bytes(f"{before}{stamp} {line}\n".encode(), LOG)


def _eta(seconds: float | None) -> str:
    return "?" if seconds is None else str(timedelta(seconds=round(seconds)))


class StageProgress:
    """The driver's view of one stage: finished units' samples and the running units'
    reports, polled in a thread."""

    def __init__(self, run: Folder, stage: str, units: list[str], done: int,
                 interactive: bool | None = None):  # fmt: skip
        self.run, self.stage, self.total, self.done = run, stage, len(units), done
        self.finished_samples = 0
        self._finished_here = 0
        self._running: dict[str, dict] = {}
        self._start = time.monotonic()
        self._last_log = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._interactive = sys.stderr.isatty() if interactive is None else interactive
        self._bar: Progress | None = None
        log(run, f"{stage}: start, {self.total} units, {done} already done")
        if done == self.total:
            self._line(f"[{stage}] done ({self.total}/{self.total} units)")
            return
        if done:
            self._line(f"[{stage}] resuming: {done}/{self.total} units already done")
        if self._interactive:
            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("units · {task.fields[text]}"),
                                 console=Console(stderr=True), transient=False)  # fmt: skip
            self._bar.start()
            self._task = self._bar.add_task(stage, total=self.total, completed=done, text="")
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def finished(self, unit: str, samples: int) -> None:
        with self._lock:
            self.done += 1
            self._finished_here += 1
            self.finished_samples += samples
            self._running.pop(unit, None)
        self._show(force=self.done == self.total)

    def close(self) -> None:
        self._stop.set()
        if self._bar is not None:
            self._bar.stop()
        log(self.run, f"{self.stage}: end, {self.done}/{self.total} units, "
                      f"{self.finished_samples:,} samples here")  # fmt: skip

    def _poll(self) -> None:
        while not self._stop.wait(POLL_INTERVAL_S):
            reports = {}
            for name in self.run.listdir(self.stage, "progress"):
                try:
                    reports[name.removesuffix(".json")] = self.run.read_json(
                        self.stage, "progress", name)  # fmt: skip
                except (OSError, ValueError):
                    continue  # removed or half-visible between listing and reading
            with self._lock:
                self._running = reports
            self._show()

    def _status(self) -> tuple[int, float, float | None]:
        """(samples so far, samples/s, seconds left) over this session's work."""
        with self._lock:
            running = list(self._running.values())
            samples = self.finished_samples + sum(int(r.get("samples", 0)) for r in running)
            partial = sum(float(r.get("fraction") or 0.0) for r in running)
            finished_here, left = self._finished_here, self.total - self.done
        elapsed = max(time.monotonic() - self._start, 1e-9)
        progressed = finished_here + partial
        eta = None if progressed <= 0 else elapsed * max(left - partial, 0.0) / progressed
        return samples, samples / elapsed, eta

    def _show(self, force: bool = False) -> None:
        samples, rate, eta = self._status()
        text = f"{samples:,} samples · {rate:,.0f} samples/s · ETA {_eta(eta)}"
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, text=text)
            return
        now = time.monotonic()
        if not force and samples == 0:
            return  # nothing to tell yet
        if force or now - self._last_log >= LOG_INTERVAL_S:
            self._last_log = now
            self._line(f"[{self.stage}] {self.done}/{self.total} units, {text}")

    @staticmethod
    def _line(text: str) -> None:
        print(text, file=sys.stderr, flush=True)
