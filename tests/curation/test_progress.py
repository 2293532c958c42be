"""Progress that moves inside a unit, on every executor, and a log of every stage."""

from __future__ import annotations

import json

from curation import progress, rundir
from curation.stage import Context, Stage, run_unit
from curation.storage import TMP_MARK, Folder
from tests.builders import TINY_CLIP, write_shards
from tests.runs import cli_prune_args, curate


def _slow(ctx: Context, unit: str) -> dict:
    for i in range(3):
        progress.advance(10, (i + 1) / 3)
        report = ctx.run.read_json("work", "progress", f"{unit}.json")
        assert report["samples"] == 10  # written on the first call, then every few seconds
    return {"samples": 30}


def test_a_unit_reports_as_it_goes_and_its_report_goes_when_done(tmp_path):
    run = Folder(str(tmp_path))
    stage = Stage("work", lambda ctx: ["u"], _slow, lambda c: {})
    assert run_unit(stage, "u", Context(run, None))["samples"] == 30
    assert run.listdir("work", "progress") == []


def test_stage_progress_estimates_from_partial_units(tmp_path):
    run = Folder(str(tmp_path))
    shown = progress.StageProgress(run, "work", ["a", "b", "c", "d"], done=0, interactive=False)
    try:
        half = {"samples": 50, "fraction": 0.5}
        shown._running = {"a": half, "b": half}
        samples, rate, eta = shown._status()
        assert samples == 100 and rate > 0 and eta is not None and eta > 0
    finally:
        shown.close()
    assert "work: start, 4 units" in (tmp_path / "run.log").read_text()


def test_a_long_shard_shows_samples_before_it_is_done(tmp_path, monkeypatch):
    monkeypatch.setattr(progress, "REPORT_INTERVAL_S", 0.05)  # lines as often as the test needs
    monkeypatch.setattr(progress, "POLL_INTERVAL_S", 0.05)
    monkeypatch.setattr(progress, "LOG_INTERVAL_S", 0.1)
    model = tmp_path / "tiny.json"
    model.write_text(json.dumps(TINY_CLIP))
    shards = write_shards(tmp_path / "in", shards=1, per_shard=120)
    args = cli_prune_args(shards, tmp_path / "out", str(model), "--batch-size", "1")
    printed = curate(*args).splitlines()
    embed = [line for line in printed if line.startswith("[embed] 0/1")]
    assert any(" 0 samples" not in line and "ETA ?" not in line for line in embed), embed
    log = (tmp_path / "out" / "_run" / "run.log").read_text()
    for stage in ("embed", "cluster", "assign", "select", "reshard", "summary"):
        assert f"{stage}: start" in log and f"{stage}: end" in log


def test_a_run_log_rewrite_killed_before_its_rename_is_dropped_when_the_run_begins(tmp_path):
    """As a run killed with SIGKILL mid-rewrite leaves it; the rerun's folder is the one an
    unbroken run leaves, and files without the mark stay."""
    run = Folder(str(tmp_path / "_run"))
    progress.log(run, "embed: start")
    (tmp_path / "_run" / f"{progress.LOG}{TMP_MARK}8c31ee930bee").write_bytes(b"")
    (tmp_path / "_run" / "notes.txt").write_text("mine")
    rundir.write_config(run, "prune", {}, {}, {})
    assert sorted(p.name for p in (tmp_path / "_run").iterdir()) == [
        rundir.CONFIG,
        "notes.txt",
        progress.LOG,
    ]
