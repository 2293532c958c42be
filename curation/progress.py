"""Per-stage progress: a rich bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time
from datetime import timedelta

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

LOG_INTERVAL_S = 2.0


class StageProgress:
    """Counts units and samples of one stage; `advance` once per finished unit."""

    def __init__(self, stage: str, total: int, already_done: int, interactive: bool | None = None):
        self.stage = stage
        self.total = total
        self.done = already_done
        self.samples = 0
        self._start = time.monotonic()
        self._finished_here = 0
        self._last_log = 0.0
        self._interactive = sys.stderr.isatty() if interactive is None else interactive
        self._bar: Progress | None = None
        if self._interactive:
            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("units · {task.fields[samples]:,} samples · {task.fields[rate]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(
                stage, total=total, completed=already_done, samples=0, rate=""
            )
        else:
            self._log(force=True)

    def advance(self, samples: int) -> None:
        self.done += 1
        self._finished_here += 1
        self.samples += samples
        if self._bar is not None:
            self._bar.update(
                self._task,
                completed=self.done,
                samples=self.samples,
                rate=f"{self._rate():,.0f} samples/s",
            )
        else:
            self._log(force=self.done == self.total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()

    def _rate(self) -> float:
        return self.samples / max(time.monotonic() - self._start, 1e-9)

    def _eta(self) -> str:
        if not self._finished_here:
            return "?"
        per_unit = (time.monotonic() - self._start) / self._finished_here
        return str(timedelta(seconds=round(per_unit * (self.total - self.done))))

    def _log(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_log < LOG_INTERVAL_S:
            return
        self._last_log = now
        print(
            f"[{self.stage}] {self.done}/{self.total} units, {self.samples:,} samples, "
            f"{self._rate():,.1f} samples/s, ETA {self._eta()}",
            file=sys.stderr,
            flush=True,
        )
