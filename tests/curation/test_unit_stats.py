"""Every unit's stats hold its seconds, its peak resident memory and the seconds of its phases
(issue 13, item 4)."""

from __future__ import annotations

import sys
import time

import numpy as np

from curation.stage import Context, Phases, Stage, run_unit
from curation.storage import Folder


def _allocate(ctx, unit: str) -> dict:
    """Touch `unit` MiB, then free them."""
    block = np.ones(int(unit) * 2**20 // 8)
    return {"samples": int(block[::512].sum() > 0)}


def test_a_units_peak_rss_is_its_own_not_an_earlier_units(tmp_path):
    stage = Stage("memory", lambda ctx: ["300", "10"], _allocate, lambda config: {})
    ctx = Context(Folder(str(tmp_path / "run")), {})
    big, small = (run_unit(stage, unit, ctx) for unit in ("300", "10"))
    assert big["peak_rss_scope"] == small["peak_rss_scope"] == (
        "unit" if sys.platform == "linux" else "process")  # fmt: skip
    if big["peak_rss_scope"] == "unit":
        assert big["peak_rss_mib"] - small["peak_rss_mib"] > 250
        assert big["peak_rss_mib"] - big["start_rss_mib"] > 250
        assert small["peak_rss_mib"] - small["start_rss_mib"] < 100
    assert small["peak_rss_mib"] > 0 and big["seconds"] >= 0


def test_phases_add_up_per_name():
    phases = Phases()
    for _ in range(2):
        with phases("read"):
            time.sleep(0.01)
    phases.add("decode", 1.25)
    phases.add("decode", 0.5)
    stats = phases.stats()
    assert set(stats) == {"read_seconds", "decode_seconds"}
    assert stats["decode_seconds"] == 1.75 and 0.02 <= stats["read_seconds"] < 1
