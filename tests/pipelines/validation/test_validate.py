"""`curate validate` on a finished labelled run, as a pipeline of its own on the engine: arms
of equal size, a test set the pruning never saw, matched compute, resume after a kill, any
teacher, and one clear line for bad input."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook
from typer.testing import CliRunner

import pipelines.validation.units as units
from curation import rundir
from curation.cli import app
from curation.errors import CurateError
from curation.status import read_status
from curation.storage import Folder
from pipelines.cifar_resnet import resnet20
from pipelines.data_pruning.finished import open_run
from pipelines.validation.config import ValidationConfig
from pipelines.validation.data import load
from pipelines.validation.pipeline import ARMS
from pipelines.validation.runner import validate
from tests.builders import write_shards
from tests.runs import run_prune

FAST = ValidationConfig(steps=15, batch_size=32)


def trained(monkeypatch, fail_after: int | None = None) -> list[str]:
    """Record the label of every model trained from now on; raise KeyboardInterrupt (a kill)
    when `fail_after` models have been trained."""
    labels: list[str] = []
    real = units.train_model

    def counting(*args, **kwargs):
        if fail_after is not None and len(labels) == fail_after:
            raise KeyboardInterrupt
        labels.append(kwargs["label"])
        return real(*args, **kwargs)

    monkeypatch.setattr(units, "train_model", counting)
    return labels


def decisions(run: str):
    return open_run(run).decisions().to_pandas()


def heldout_keys(run: str) -> set[str]:
    table = decisions(run)
    return set(table[table["status"] == "heldout"]["key"])


def test_prune_with_validate_wrote_a_nested_run(pruned_run):
    folder = Path(pruned_run, "validate")
    results = json.loads((folder / "results.json").read_text())
    assert [a["arm"] for a in results["arms"]] == list(ARMS)
    assert results["alpha"] == pytest.approx(1 - results["kept_fraction"] / 2)
    record = json.loads((folder / "config.json").read_text())
    assert record["pipeline"] == "validate"
    assert [name for name, _ in record["stages"]] == ["teacher", "train", "results"]
    status = {s.name: s for s in read_status(Folder(pruned_run))}
    assert status["validate/train"].state == "done" and status["validate/train"].units == 6
    for name in ("results.md", "results.csv"):
        assert (folder / name).stat().st_size > 0


def test_every_arm_at_the_rate_trains_on_the_kept_count_and_tests_on_held_out_samples(run_copy):
    results = validate(run_copy, FAST)
    sizes = {a["arm"]: a["train_size"] for a in results["arms"]}
    kept = sizes["kept"]
    assert sizes == {"full": results["pool_size"], "kept": kept, "kept+kd": kept,
                     "kept+kd_kept": kept, "random": kept, "random+kd": kept}  # fmt: skip
    assert kept < results["pool_size"]
    assert results["test_size"] == len(heldout_keys(run_copy))  # every test sample is held out
    assert "held-out samples (--holdout 0.2)" in results["test_source"]
    for arm in results["arms"]:
        accuracy = arm["accuracy"]
        assert accuracy["low"] <= accuracy["mean"] <= accuracy["high"]
    assert {(c["arm"], c["against"]) for c in results["comparisons"]} >= {
        ("kept", "random"), ("kept+kd", "random+kd"), ("random+kd", "full")}  # fmt: skip
    teachers = results["teachers"]
    assert "has seen the pruned samples" in teachers["full"]["source"]
    assert "never saw a pruned sample" in teachers["kept"]["source"]
    assert teachers["kept"]["train_size"] == kept


def test_the_pool_excludes_every_held_out_sample(run_copy):
    data = load(run_copy, Folder(f"{run_copy}/validate"), FAST, [], image_view=False)
    table = decisions(run_copy)
    assert set(table["status"].to_numpy()[data.pool_rows]) <= {"kept", "pruned"}
    assert len(data.test) == (table["status"] == "heldout").sum()


def test_every_model_takes_the_same_number_of_steps(run_copy):
    counted = []
    handle = register_optimizer_step_post_hook(lambda *args: counted.append(1))
    try:
        results = validate(run_copy, FAST.model_copy(update={"seeds": 2}))
    finally:
        handle.remove()
    # teachers full and kept are seed 0's full and kept arms; 4 more models for seed 0, 6 for 1
    assert results["steps"] == 15
    assert len(counted) == (2 + 4 + 6) * 15


def test_a_killed_validation_resumes_with_only_the_missing_models(run_copy, tmp_path):
    config = FAST.model_copy(update={"seeds": 2})
    with pytest.MonkeyPatch.context() as patch:
        first = trained(patch, fail_after=5)
        with pytest.raises(KeyboardInterrupt):
            validate(run_copy, config)
    assert len(first) == 5
    status = {s.name: s for s in read_status(Folder(run_copy))}
    assert status["validate/train"].state == "in progress"
    with pytest.MonkeyPatch.context() as patch:
        second = trained(patch)
        resumed = validate(run_copy, config)
    assert len(first) + len(second) == 12 and not set(first) & set(second)
    fresh = shutil.copytree(run_copy, tmp_path / "fresh")
    shutil.rmtree(fresh / "validate")
    again = validate(str(fresh), config)
    assert [a["accuracy"] for a in again["arms"]] == [a["accuracy"] for a in resumed["arms"]]


def test_more_seeds_add_units_and_a_new_recipe_redoes_them(run_copy, monkeypatch):
    validate(run_copy, FAST)
    labels = trained(monkeypatch)
    validate(run_copy, FAST.model_copy(update={"seeds": 2}))
    assert sorted(labels) == sorted(f"{arm}@seed1" for arm in ARMS)
    labels.clear()
    validate(run_copy, FAST.model_copy(update={"seeds": 2, "steps": 16}))
    assert len(labels) == 12  # 2 teachers, then 10 students


def test_seeds_reproduce_every_number(run_copy, tmp_path):
    other = shutil.copytree(run_copy, tmp_path / "other")
    shutil.rmtree(other / "validate")
    first = validate(run_copy, FAST.model_copy(update={"seeds": 2}))
    second = validate(str(other), FAST.model_copy(update={"seeds": 2}))
    assert first["arms"] == second["arms"] and first["comparisons"] == second["comparisons"]
    assert all(len(a["accuracy"]["per_seed"]) == 2 for a in first["arms"])


def test_random_arms_draw_a_new_subset_for_every_seed(run_copy, monkeypatch):
    subsets = {}
    real = units.train_model

    def spy(data, subset, config, steps, seed, *args, **kwargs):
        subsets[kwargs.get("label")] = data.pool_rows[subset]
        return real(data, subset, config, steps, seed, *args, **kwargs)

    monkeypatch.setattr(units, "train_model", spy)
    validate(run_copy, FAST.model_copy(update={"seeds": 2}))
    assert len(subsets["random@seed0"]) == len(subsets["random@seed1"])
    assert set(subsets["random@seed0"]) != set(subsets["random@seed1"])
    assert set(subsets["kept+kd@seed0"]) == set(subsets["kept+kd@seed1"])


def test_eval_shards_are_the_test_set_embedded_into_the_validate_run(run_copy, tmp_path):
    shards = write_shards(tmp_path / "eval", shards=2, per_shard=15, seed=9)
    before = {p: p.stat().st_mtime_ns for p in Path(run_copy, "embed").iterdir()}
    results = validate(run_copy, FAST.model_copy(update={"eval": str(tmp_path / "eval/*.tar")}))
    assert results["test_size"] == 30 and "--eval" in results["test_source"]
    embedded = Path(run_copy, "validate", "eval", "embed")
    assert {p.name for p in embedded.iterdir()} >= {"00000.json", "00000.parquet", "00001.json",
                                                     "00001.parquet", "content"}  # fmt: skip
    assert len(list((embedded / "content").glob("*.npy"))) == 2
    assert {p: p.stat().st_mtime_ns for p in Path(run_copy, "embed").iterdir()} == before
    assert len(shards) == 2


def test_a_run_with_no_test_set_is_one_clear_error(tmp_path, tiny_clip):
    shards = write_shards(tmp_path / "in", shards=1, per_shard=30)
    run_prune(shards, tmp_path / "out", tiny_clip, clusters=2)
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "out"), "--steps", "2"])
    assert result.exit_code == 2
    assert "no held-out samples" in result.output
    assert "--eval SHARDS" in result.output and "--holdout F" in result.output


def test_a_network_teacher_on_images_teaches_a_student_on_embeddings(run_copy, tmp_path):
    weights = tmp_path / "teacher.th"
    torch.save({"state_dict": resnet20(num_classes=5).state_dict()}, weights)
    config = FAST.model_copy(
        update={
            "teacher": "pipelines.cifar_resnet:resnet20",
            "teacher_checkpoint": str(weights),
            "image_size": 16,
        }
    )
    results = validate(run_copy, config)
    given = results["teachers"]["given"]
    assert "pipelines.cifar_resnet:resnet20 with" in given["source"]
    assert {a["arm"]: a["teacher"] for a in results["arms"]}["random+kd"] == "given"
    assert "kept" in results["teachers"]  # the kept-subset teacher is trained all the same


def test_a_teacher_written_by_validate_is_reused_and_a_wrong_one_refused(run_copy, tmp_path):
    validate(run_copy, FAST)
    teacher = f"{run_copy}/validate/teacher/full.pt"
    copy = tmp_path / "full.pt"
    copy.write_bytes(Path(teacher).read_bytes())
    given = validate(run_copy, FAST.model_copy(update={"teacher": str(copy)}))
    assert given["teachers"]["given"]["source"].startswith(str(copy))
    wrong = FAST.model_copy(update={"teacher": str(copy), "on": "images", "image_size": 8,
                                    "steps": 1, "batch_size": 4})  # fmt: skip
    with pytest.raises(CurateError, match="takes input"):
        validate(run_copy, wrong)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CurateError, match="not a teacher checkpoint"):
        validate(run_copy, FAST.model_copy(update={"teacher": str(tmp_path / "junk.pt")}))


def test_images_mode_trains_a_cifar_resnet(run_copy):
    config = ValidationConfig(on="images", image_size=8, steps=2, batch_size=8)
    results = validate(run_copy, config)
    assert results["model"] == "pipelines.cifar_resnet:resnet20"
    assert [a["arm"] for a in results["arms"]] == list(ARMS)
    saved = torch.load(Path(run_copy, "validate", "teacher", "full.pt"), weights_only=True)
    assert saved["spec"]["kind"] == "network" and saved["spec"]["input"] == [3, 8, 8]


def test_unlabelled_runs_are_a_user_error(tmp_path, tiny_clip):
    paths = write_shards(tmp_path / "in", shards=1, per_shard=30)
    for path in paths:  # drop the .cls members
        with tarfile.open(path) as tar:
            members = [(m, tar.extractfile(m).read()) for m in tar if not m.name.endswith(".cls")]
        with tarfile.open(path, "w") as tar:
            for member, data in members:
                tar.addfile(member, io.BytesIO(data))
    run_prune(paths, tmp_path / "out", tiny_clip, clusters=2, holdout=0.3)
    with pytest.raises(CurateError, match="needs labels"):
        validate(str(tmp_path / "out"), FAST)


def test_cli_prints_the_table_and_explains_bad_input(run_copy, tmp_path):
    runner = CliRunner()
    args = ["--steps", "5", "--batch-size", "16", "--alpha", "0.9", "--temperature", "2"]
    ok = runner.invoke(app, ["validate", run_copy, *args, "--teacher-cache"])
    assert ok.exit_code == 0, ok.output
    assert "random+kd" in ok.output and "0.900" in ok.output and "95% interval" in ok.output
    recorded = json.loads(Path(run_copy, "validate", "config.json").read_text())["config"]
    assert recorded["config"]["teacher_cache"] is True
    missing = runner.invoke(app, ["validate", str(tmp_path / "nothing")])
    assert missing.exit_code == 2
    assert "not a curate run directory" in missing.output
    bad = runner.invoke(app, ["validate", run_copy, "--alpha", "1.5"])
    assert bad.exit_code == 2 and "--alpha must be in [0, 1]" in bad.output
    untrained = runner.invoke(app, ["validate", run_copy, "--teacher", "timm:resnet18"])
    assert untrained.exit_code == 2 and "needs --teacher-checkpoint" in untrained.output


def test_the_output_folder_is_accepted_for_the_run(pruned_run, tmp_path):
    root = shutil.copytree(Path(pruned_run).parents[1], tmp_path / "copy")
    marker = root / "out" / rundir.MARKER
    marker.write_text(json.dumps({"run_dir": str(root / "out" / "_run")}))
    results = validate(str(root / "out"), FAST)
    assert results["run_dir"].rstrip("/").endswith("copy/out/_run")
    assert np.isfinite(results["arms"][0]["accuracy"]["mean"])


@pytest.mark.parametrize("executor", ["local", pytest.param("dask", marks=pytest.mark.slow)])
def test_worker_processes_give_the_same_numbers(run_copy, tmp_path, executor):
    """Two worker processes (a spawned pool, or a Dask LocalCluster), each loading the data and
    teachers once, give exactly the numbers of one in-process worker."""
    inline = validate(run_copy, FAST.model_copy(update={"seeds": 2}))
    other = shutil.copytree(run_copy, tmp_path / "other")
    shutil.rmtree(other / "validate")
    config = FAST.model_copy(update={"seeds": 2, "executor": executor, "workers": 2})
    spread = validate(str(other), config)
    assert spread["arms"] == inline["arms"] and spread["comparisons"] == inline["comparisons"]
