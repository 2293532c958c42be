"""Progress of one training run inside a unit: steps/s and ETA, a log line every few seconds
(on the worker's stderr: the terminal locally, the worker log on Dask)."""

from __future__ import annotations

import sys
import time
from datetime import timedelta

LOG_INTERVAL_S = 5.0


class StepProgress:
    """`step(done, loss)` after every optimisation step (the training loop's `on_step`)."""

    def __init__(self, label: str, total: int, interval: float = LOG_INTERVAL_S):
        self.label, self.total, self.interval = label, total, interval
        self.losses: list[float] = []
        self._start = self._last = time.monotonic()

    def step(self, done: int, loss: float) -> None:
        self.losses.append(loss)
        now = time.monotonic()
        if done == self.total or now - self._last >= self.interval:
            self._last = now
            print(self.line(done, now - self._start), file=sys.stderr, flush=True)

    def line(self, done: int, elapsed: float) -> str:
        rate = done / max(elapsed, 1e-9)
        eta = timedelta(seconds=round((self.total - done) / rate)) if rate else "?"
        return (
            f"[{self.label}] step {done}/{self.total}, {rate:.2f} steps/s, "
            f"loss {self.losses[-1]:.4f}, ETA {eta}"
        )
