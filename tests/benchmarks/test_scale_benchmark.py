"""The scale benchmark reads every stage's stats from a real run and reports their growth."""

from __future__ import annotations

import pytest

from benchmarks import scale
from curation.storage import Folder
from tests.runs import run_prune


def test_every_stage_of_a_run_is_reported_with_its_phases_and_memory(tmp_path, tiny_clip):
    shards = scale.write_shards(tmp_path / "in", 60, per_shard=30)
    run_prune(shards, tmp_path / "out", tiny_clip, metric="dbp")
    stats = scale.stage_stats(Folder(str(tmp_path / "out" / "_run")))
    assert list(stats)[:3] == ["embed", "cluster", "assign"] and "dbp_assign" in stats
    assert stats["embed"]["samples"] == 60 and stats["embed"]["units"] == 2
    assert set(stats["embed"]["phases"]) == {"read", "decode", "model", "write"}
    assert all(s["peak_mib"] >= s["growth_mib"] >= 0 for s in stats.values())
    results = [{"samples": n, "process_seconds": 10.0 * n, "stages": stats} for n in (1, 4)]
    lines = scale.table(results).splitlines()
    assert len(lines) == 2 + len(stats) + 1 and lines[2].startswith("| embed | ")


def test_the_exponent_is_one_for_linear_growth():
    assert scale.exponent(1.0, 16.0, 16) == "1.00"
    assert scale.exponent(1.0, 4.0, 16) == "0.50"
    assert scale.exponent(0.01, 4.0, 16) == "-"  # too short to tell


@pytest.mark.slow
def test_the_benchmark_runs_curate_prune_in_its_own_process(tmp_path):
    result = scale.measure(tmp_path, scale.PER_SHARD, "semdedup", 4)
    assert result["process_seconds"] > 0 and result["stages"]["dedup"]["units"] == 4
