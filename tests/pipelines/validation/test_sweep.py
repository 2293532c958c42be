"""`curate sweep` as a pipeline of its own: every criterion and every criterion option from the
registry, decided from the stored embeddings and clusters without recomputing them; units that
survive added rates; random draws per seed; differences from random with their intervals."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import pipelines.data_pruning.decide as decide_module
import pipelines.embedders
import pipelines.validation.units as units
from curation.cli import app
from curation.errors import CurateError
from curation.fields import validated
from curation.status import read_status
from curation.storage import Folder
from pipelines.data_pruning.config import PruneConfig
from pipelines.data_pruning.criteria import CRITERIA, ranked
from pipelines.data_pruning.finished import open_run
from pipelines.data_pruning.workers import embedder_of
from pipelines.validation.config import SweepOptions, SweepPlan, ValidationConfig
from pipelines.validation.runner import sweep
from pipelines.validation.selections import Selection, plan_selections, random_counterpart
from pipelines.validation.uncertainty import difference_interval
from tests.builders import write_shards
from tests.runs import run_prune

FAST = ValidationConfig(steps=5, batch_size=16)


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def refuse(*args, **kwargs):
    raise AssertionError("the sweep must not embed again")


def trained(monkeypatch) -> list[str]:
    labels: list[str] = []
    real = units.train_model

    def counting(*args, **kwargs):
        labels.append(kwargs["label"])
        return real(*args, **kwargs)

    monkeypatch.setattr(units, "train_model", counting)
    return labels


def test_sweep_reuses_embeddings_and_clusters(run_copy, monkeypatch):
    """Embeddings and the run's clustering stay as they are (DBP's re-clustering after
    SemDeDup, and the other metrics' scores, are computed once in their own stages)."""
    run = Path(run_copy)
    before = {stage: digest(run / stage) for stage in ("embed", "cluster", "assign", "select")}
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
    assert sorted((c.metric, c.rate) for c in calls) == sorted(
        (m, r) for m in ranked() for r in (0.5, 0.8))  # fmt: skip
    assert len(result["rows"]) == 1 + len(ranked()) * 2 * 2
    for name in ("results.csv", "results.md", "curve.png", "sweep.json"):
        assert (run / "sweep" / name).stat().st_size > 0
    assert (run / "sweep" / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads((run / "sweep" / "config.json").read_text())
    assert [n for n, _ in record["stages"]] == ["select", "teacher", "train", "results"]
    status = {s.name: s for s in read_status(Folder(run_copy))}
    assert status["sweep/train"].state == "done" and status["sweep/train"].units == 25


def test_every_criterion_option_takes_several_values(run_copy):
    options = SweepOptions(keep="hard,easy")
    plan = SweepPlan(rates=[0.5], metrics=["prototypicality", "random"], kd="off")
    result = sweep(run_copy, FAST, plan, options)
    labels = {r["label"]: r for r in result["rows"]}
    assert set(labels) == {"full data", "prototypicality keep=hard", "prototypicality keep=easy",
                           "random"}  # fmt: skip
    assert labels["prototypicality keep=easy"]["selection"] == "prototypicality@0.5@keep=easy"
    assert labels["prototypicality keep=hard"]["selection"] == "prototypicality@0.5"  # the run's
    assert labels["random"]["selection"] == "random@0.5"  # --keep does not change random
    markdown = (Path(run_copy) / "sweep" / "results.md").read_text()
    assert "| prototypicality keep=easy | no |" in markdown


def test_per_class_is_swept_like_a_criterion_option(run_copy):
    """`--per-class false,true`: a class-balanced arm beside each unbalanced one, and the
    balanced selection keeps each class's share of the kept total."""
    plan = SweepPlan(rates=[0.5], metrics=["prototypicality", "random"], kd="off")
    result = sweep(run_copy, FAST, plan, SweepOptions(per_class="false,true"))
    labels = {r["label"]: r["selection"] for r in result["rows"]}
    assert labels == {"full data": labels["full data"],
                      "prototypicality per_class=False": "prototypicality@0.5",
                      "prototypicality per_class=True": "prototypicality@0.5@per_class=True",
                      "random per_class=False": "random@0.5",
                      "random per_class=True": "random@0.5@per_class=True"}  # fmt: skip
    samples = open_run(run_copy).samples()
    pool = samples.label[samples.candidates]
    kept = np.load(Path(run_copy) / "sweep" / "select" / "prototypicality@0.5@per_class=True.npy")
    assert len(kept) == len(pool) // 2 and not samples.heldout[kept].any()
    shares = np.bincount(samples.label[kept], minlength=pool.max() + 1)
    target = np.bincount(pool) * len(kept) / len(pool)
    assert np.abs(shares - target).max() < 1  # largest remainders: within one of each share
    rows = {r["selection"]: r for r in result["rows"]}
    for balanced in (False, True):  # each compared with the random draw of its own kind
        suffix = "@per_class=True" if balanced else ""
        expected = difference_interval(*(_answers(run_copy, f"{name}@0.5{suffix}@seed0")
                                         for name in ("prototypicality", "random")))  # fmt: skip
        assert rows[f"prototypicality@0.5{suffix}"]["vs_random"] == expected


def test_each_selection_is_compared_with_the_random_draw_of_its_kind():
    def selection(name: str) -> Selection:
        metric, rate, *options = name.split("@")
        overrides = dict(o.split("=") for o in options)
        return Selection(name=name, metric=metric, rate=float(rate), overrides=overrides,
                         label=name)  # fmt: skip

    planned = [selection(n) for n in ("random@0.5", "random@0.5@per_class=True", "random@0.9",
                                      "prototypicality@0.5@keep=easy@per_class=True",
                                      "prototypicality@0.5@keep=easy", "el2n@0.9")]  # fmt: skip
    counterpart = {s.name: random_counterpart(s, planned).name for s in planned}
    assert counterpart == {
        "random@0.5": "random@0.5", "random@0.5@per_class=True": "random@0.5@per_class=True",
        "random@0.9": "random@0.9",
        "prototypicality@0.5@keep=easy@per_class=True": "random@0.5@per_class=True",
        "prototypicality@0.5@keep=easy": "random@0.5", "el2n@0.9": "random@0.9",
    }  # fmt: skip
    assert random_counterpart(selection("el2n@0.7"), planned) is None  # no random at 0.7


def _answers(run: str, unit: str) -> np.ndarray:
    """A trained unit's test answers, stacked as the results stage stacks one seed."""
    return np.load(Path(run) / "sweep" / "train" / f"{unit}.npy")[None].astype(np.float64)


def test_adding_a_rate_or_a_value_trains_only_the_new_units(run_copy, monkeypatch):
    plan = SweepPlan(rates=[0.5], metrics=["prototypicality", "random"], kd="on")
    sweep(run_copy, FAST, plan)
    labels = trained(monkeypatch)
    sweep(run_copy, FAST, plan.model_copy(update={"rates": [0.5, 0.7]}))
    assert sorted(labels) == ["prototypicality@0.7@kd@seed0", "random@0.7@kd@seed0"]
    labels.clear()
    sweep(run_copy, FAST, plan.model_copy(update={"rates": [0.5, 0.7]}),
          SweepOptions(keep="hard,easy"))  # fmt: skip
    assert sorted(labels) == ["prototypicality@0.5@keep=easy@kd@seed0",
                              "prototypicality@0.7@keep=easy@kd@seed0"]  # fmt: skip
    labels.clear()
    sweep(run_copy, FAST, plan)  # back to one rate: nothing to train, and the status is done
    assert labels == []
    status = {s.name: s for s in read_status(Folder(run_copy))}
    assert (status["sweep/train"].done, status["sweep/train"].state) == (3, "done")


def test_random_draws_anew_for_every_seed_and_rows_compare_with_random(run_copy):
    plan = SweepPlan(rates=[0.5], metrics=["random", "prototypicality"], kd="both")
    result = sweep(run_copy, FAST.model_copy(update={"seeds": 2}), plan)
    select = Path(run_copy) / "sweep" / "select"
    first, second = (
        np.load(select / "random@0.5@seed0.npy"),
        np.load(select / "random@0.5@seed1.npy"),
    )
    assert len(first) == len(second) and set(first) != set(second)
    assert not (select / "prototypicality@0.5@seed1.npy").exists()  # decided once
    rows = {(r["label"], r["kd"]): r for r in result["rows"]}
    proto = rows[("prototypicality", True)]
    assert (
        proto["vs_random"]["low"] <= proto["vs_random"]["difference"] <= proto["vs_random"]["high"]
    )
    assert rows[("random", False)]["vs_random"] is None
    assert rows[("full data", False)]["seeds"] == 2
    assert len(rows[("random", True)]["accuracy"]["per_seed"]) == 2


def test_table_columns_and_marks(run_copy):
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
    assert all(float(r["low"]) <= float(r["accuracy"]) <= float(r["high"]) for r in rows)
    kd_rows = [r for r in rows if r["kd"] == "True"]
    assert float(kd_rows[1]["alpha"]) > float(kd_rows[0]["alpha"])  # less kept, more KD
    assert rows[1]["vs_full"] != "" and rows[1]["vs_random"] == ""


def test_new_metrics_appear_without_changing_the_sweep(run_copy, monkeypatch):
    monkeypatch.setitem(
        CRITERIA, "newcomer", dataclasses.replace(CRITERIA["random"], name="newcomer")
    )
    plan = SweepPlan(rates=[0.5], metrics=["random", "newcomer"], kd="off")
    result = sweep(run_copy, FAST, plan)
    assert "newcomer" in {row["metric"] for row in result["rows"]}
    assert "| newcomer | no |" in (Path(run_copy) / "sweep" / "results.md").read_text()


def test_scores_stored_once_refuse_two_option_values(run_copy):
    plan = SweepPlan(rates=[0.5], metrics=["el2n"], kd="off")
    with pytest.raises(CurateError, match="need the el2n_train scores with other options"):
        sweep(run_copy, FAST, plan, SweepOptions(el2n_models="2,3"))
    result = sweep(run_copy, FAST, plan, SweepOptions(el2n_models="2"))
    assert {r["selection"] for r in result["rows"]} == {"full", "el2n@0.5@el2n_models=2"}


def test_the_runs_own_scores_are_never_recomputed(tmp_path, tiny_clip):
    shards = write_shards(tmp_path / "in", shards=2, per_shard=30)
    run_prune(shards, tmp_path / "out", tiny_clip, metric="el2n", el2n_models=2, holdout=0.3)
    plan = SweepPlan(rates=[0.5], metrics=["el2n"], kd="off")
    with pytest.raises(CurateError, match="other options than the run's own"):
        sweep(str(tmp_path / "out"), FAST, plan, SweepOptions(el2n_models="3"))
    result = sweep(str(tmp_path / "out"), FAST, plan)
    assert {r["selection"] for r in result["rows"]} == {"full", "el2n@0.5"}


def test_bad_arguments_are_user_errors(run_copy):
    with pytest.raises(CurateError, match="unknown metric"):
        validated(SweepPlan, rates=[0.5], metrics=["nonsense"])
    with pytest.raises(CurateError, match="--rates"):
        validated(SweepPlan, rates=[1.5])
    for bad, message in (("0.5,x", "--rates: takes numbers"), ("1.5", "--rates must be fractions")):
        result = CliRunner().invoke(app, ["sweep", run_copy, "--rates", bad])
        assert result.exit_code == 2 and message in result.output, result.output
    result = CliRunner().invoke(app, ["sweep", run_copy, "--keep", "hard,sideways"])
    assert result.exit_code == 2 and "--keep" in result.output


def test_cli_sweep_takes_registry_options_and_prints_the_table(run_copy):
    result = CliRunner().invoke(
        app,
        ["sweep", run_copy, "--rates", "0.5", "--kd", "on", "--metrics", "prototypicality",
         "--keep", "hard,easy", "--steps", "3", "--batch-size", "16"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "| full data | no |" in result.output
    assert "| prototypicality keep=easy | yes |" in result.output


def test_labels_name_the_options_in_one_order():
    """An option given one value (a change from the run's) and one varied are named in the
    label in the order of the selection's name, whichever of them varies."""
    run = PruneConfig(shards=["/in/0.tar"], output="/out", rate=0.5, metric="prototypicality",
                      pretrained="openai")  # fmt: skip
    plan = SweepPlan(rates=[0.5], metrics=["prototypicality"], kd="off")
    options = SweepOptions(per_class=[True], keep=["easy", "hard"])
    found = {s.name: s.label for s in plan_selections(run, plan, options)}
    assert found == {
        "prototypicality@0.5@per_class=True@keep=easy": "prototypicality per_class=True keep=easy",
        "prototypicality@0.5@per_class=True": "prototypicality per_class=True keep=hard",
    }
