"""`curate sweep`: every criterion, rates x KD, decided from the stored
embeddings and clusters without recomputing them."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

import pipelines.data_pruning.decide as decide_module
import pipelines.embedders
from curation.cli import app
from curation.errors import CurateError
from curation.fields import validated
from pipelines.data_pruning.criteria import CRITERIA, ranked
from pipelines.data_pruning.finished import open_run
from pipelines.data_pruning.workers import embedder_of
from pipelines.sweep import sweep
from pipelines.validation.config import SweepPlan, ValidationConfig

FAST = ValidationConfig(steps=5, batch_size=16)


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def refuse(*args, **kwargs):
    raise AssertionError("the sweep must not embed again")


def test_sweep_reuses_embeddings_and_clusters(run_copy, monkeypatch):
    """Embeddings and the run's clustering stay as they are (DBP's own re-clustering after
    SemDeDup, and the other metrics' scores, are computed once in their own stages)."""
    run = Path(run_copy)
    before = {stage: digest(run / stage) for stage in ("embed", "cluster", "assign")}
    monkeypatch.setattr(pipelines.embedders, "load_embedder", refuse)
    with pytest.raises(AssertionError, match="must not embed"):  # the patch is where embed looks
        embedder_of(open_run(run_copy).config)
    calls = []
    real = decide_module.decide
    monkeypatch.setattr(
        decide_module,
        "decide",
        lambda samples, config: calls.append(config) or real(samples, config),
    )
    result = sweep(run_copy, FAST, SweepPlan(rates=[0.5, 0.8]))
    assert {stage: digest(run / stage) for stage in before} == before
    assert [(c.metric, c.rate) for c in calls] == [(m, r) for m in ranked() for r in (0.5, 0.8)]
    assert len(result["rows"]) == 1 + len(ranked()) * 2 * 2
    for name in ("results.csv", "results.md", "curve.png", "sweep.json"):
        assert (run / "sweep" / name).stat().st_size > 0
    assert (run / "sweep" / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_new_metrics_appear_without_changing_the_sweep(run_copy, monkeypatch):
    monkeypatch.setitem(
        CRITERIA, "newcomer", dataclasses.replace(CRITERIA["random"], name="newcomer")
    )
    result = sweep(run_copy, FAST, SweepPlan(rates=[0.5], metrics=["random", "newcomer"], kd="off"))
    assert "newcomer" in {row["metric"] for row in result["rows"]}
    assert "| newcomer | no |" in (Path(run_copy) / "sweep" / "results.md").read_text()


def test_table_rows_and_columns(run_copy):
    plan = SweepPlan(rates=[0.3, 0.7], metrics=["random"], kd="both")
    sweep(run_copy, FAST.model_copy(update={"seeds": 2}), plan)
    rows = list(csv.DictReader(io.StringIO((Path(run_copy) / "sweep" / "results.csv").read_text())))
    assert [(r["metric"], r["rate"], r["kd"]) for r in rows] == [
        ("full", "0.0", "False"),
        ("random", "0.3", "False"),
        ("random", "0.3", "True"),
        ("random", "0.7", "False"),
        ("random", "0.7", "True"),
    ]
    assert all(len(r["accuracies"].split(";")) == 2 for r in rows)
    kd_rows = [r for r in rows if r["kd"] == "True"]
    assert float(kd_rows[1]["alpha"]) > float(kd_rows[0]["alpha"])  # less kept, more KD
    assert float(rows[3]["kept_fraction"]) < float(rows[1]["kept_fraction"])


def test_bad_arguments_are_user_errors(run_copy):
    with pytest.raises(CurateError, match="unknown metric"):
        validated(SweepPlan, rates=[0.5], metrics=["nonsense"])
    with pytest.raises(CurateError, match="--rates"):
        validated(SweepPlan, rates=[1.5])
    for bad, message in (("0.5,x", "--rates: takes numbers"), ("1.5", "--rates must be fractions")):
        result = CliRunner().invoke(app, ["sweep", run_copy, "--rates", bad])
        assert result.exit_code == 2 and message in result.output, result.output


def test_cli_sweep_prints_the_table(run_copy):
    result = CliRunner().invoke(
        app,
        ["sweep", run_copy, "--rates", "0.5", "--kd", "on", "--steps", "3", "--batch-size", "16"],
    )
    assert result.exit_code == 0, result.output
    assert "| full data | no |" in result.output
