"""`curate validate` on a finished labelled run: the arms, matched compute, reproducibility,
teachers, and clear errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from torch.optim.optimizer import register_optimizer_step_post_hook
from typer.testing import CliRunner

from curation.cli import app
from curation.errors import CurateError
from pipelines.data_pruning.samples import Clustering, Samples
from pipelines.validation.config import ValidationConfig
from pipelines.validation.data import load_labelled
from pipelines.validation.validate import validate

FAST = ValidationConfig(steps=15, batch_size=32)
ARMS = ["full", "kept", "kept+kd", "random", "random+kd"]


def test_prune_with_validate_wrote_results(pruned_run):
    results = json.loads(Path(pruned_run, "validate", "results.json").read_text())
    assert [a["arm"] for a in results["arms"]] == ARMS
    assert results["alpha"] == pytest.approx(1 - results["kept_fraction"] / 2)


def test_arms_sizes_and_a_test_split_outside_every_training_set(run_copy):
    results = validate(run_copy, FAST)
    sizes = {a["arm"]: a["train_size"] for a in results["arms"]}
    assert sizes["kept"] == sizes["random"] == sizes["kept+kd"] < sizes["full"]
    assert sizes["full"] == results["train_size"]
    assert results["train_size"] + results["test_size"] <= 120
    assert results["kept_fraction"] == pytest.approx(sizes["kept"] / sizes["full"])
    assert [a["kd"] for a in results["arms"]] == [False, False, True, False, True]


def test_every_model_takes_the_same_number_of_steps(run_copy):
    counted = []
    handle = register_optimizer_step_post_hook(lambda *args: counted.append(1))
    try:
        results = validate(run_copy, FAST.model_copy(update={"seeds": 2}))
    finally:
        handle.remove()
    # seed 0: teacher (= full), kept, kept+kd, random, random+kd; seed 1: five more models
    assert results["steps"] == 15
    assert len(counted) == 10 * 15


def test_seeds_reproduce_every_number(run_copy):
    first = validate(run_copy, FAST.model_copy(update={"seeds": 2}))
    second = validate(run_copy, FAST.model_copy(update={"seeds": 2}))
    assert first["arms"] == second["arms"]
    assert first["teacher"] == second["teacher"]
    assert all(len(a["accuracy"]["per_seed"]) == 2 for a in first["arms"])


def test_a_saved_teacher_is_reused_and_a_wrong_one_refused(run_copy, tmp_path):
    validate(run_copy, FAST)
    teacher = f"{run_copy}/validate/teacher.pt"
    given = validate(run_copy, FAST.model_copy(update={"teacher": teacher}))
    assert given["teacher"]["source"] == teacher
    with pytest.raises(CurateError, match="takes input"):
        validate(
            run_copy,
            FAST.model_copy(
                update={"teacher": teacher, "probe": "mlp", "on": "images", "image_size": 8}
            ),
        )
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CurateError, match="not a teacher checkpoint"):
        validate(run_copy, FAST.model_copy(update={"teacher": str(tmp_path / "junk.pt")}))


def test_images_mode_trains_the_small_cnn(run_copy):
    results = validate(
        run_copy, ValidationConfig(on="images", image_size=16, steps=2, batch_size=8)
    )
    assert results["model"] == "cnn"
    assert [a["arm"] for a in results["arms"]] == ARMS


def test_unlabelled_samples_are_a_user_error():
    samples = Samples(
        ids=np.arange(4),
        valid=np.ones(4, bool),
        heldout=np.zeros(4, bool),
        label=np.full(4, -1),
        clusters=Clustering(np.zeros((1, 2), np.float32), np.zeros(4, np.int32), np.zeros(4)),
        shard_sizes=np.array([4]),
    )
    with pytest.raises(CurateError, match="needs labels"):
        load_labelled(None, samples, FAST)


def test_cli_prints_the_table_and_explains_bad_input(run_copy, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(
        app,
        [
            "validate",
            run_copy,
            "--steps",
            "5",
            "--batch-size",
            "16",
            "--alpha",
            "0.9",
            "--temperature",
            "2",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "random+kd" in ok.output and "0.900" in ok.output
    missing = runner.invoke(app, ["validate", str(tmp_path / "nothing")])
    assert missing.exit_code == 2
    assert "not a curate run directory" in missing.output
    bad = runner.invoke(app, ["validate", run_copy, "--alpha", "1.5"])
    assert bad.exit_code == 2 and "--alpha must be in [0, 1]" in bad.output
