"""`curate model prune` end to end on a tiny CNN: IMP with rewinding and controls, the files of
every level, resume after SIGKILL, local = dask, and bad input refused before any write."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from curation.errors import CurateError
from curation.lease import LEASE_NAME, Lease
from curation.storage import Folder
from pipelines.model_pruning import levels, schema
from pipelines.model_pruning.config import PruneConfig, model_config
from pipelines.model_pruning.data import load_data
from pipelines.model_pruning.finetune import fit
from pipelines.model_pruning.network import dense_network
from tests.builders import write_shards
from tests.pipelines.model_pruning.nets import tiny_cnn
from tests.pipelines.model_pruning.runs import (
    FAST,
    artifacts,
    cli_args,
    prune_config,
    run_prune,
    run_sweep,
)
from tests.runs import REPO, cli


def _run(out: Path) -> Folder:
    return Folder(str(out / "_run"))


def test_imp_levels_prune_the_remaining_and_keep_open_lth_files(data, tmp_path):
    out = tmp_path / "out"
    summary = run_prune(data, out, schedule="imp", sparsity=0.5, controls=True, kd=True)
    run = _run(out)
    assert summary["levels"] == 4
    previous = None
    for level in range(5):
        names = {p.name for p in (out / "_run" / f"level_{level}").iterdir()}
        assert {"mask.pt", "sparsity_report.json", "model.pt", "metrics.json"} <= names
        masks = schema.load_masks(run, f"level_{level}", "mask.pt")
        if previous is not None:  # each level prunes among what the last one kept
            assert all((m & ~previous[k]).sum() == 0 for k, m in masks.items())
        previous = masks
        report = schema.read_report(run, (f"level_{level}",))
        assert report["total"] == 1448 and set(report["layers"]) == {"0", "3", "8"}
    assert (out / "_run/level_0/rewind.pt").is_file()
    for kind in ("reinit", "random"):
        control = [schema.read_metrics(run, (f"level_{level}", kind)) for level in (1, 2, 3, 4)]
        assert [c["sparsity"] for c in control] == [
            m["sparsity"] for m in summary["level_metrics"][1:]
        ]
    random_masks = schema.load_masks(run, "level_4", "random", "mask.pt")
    main_masks = schema.load_masks(run, "level_4", "mask.pt")
    for name, mask in main_masks.items():  # the same count per layer, other weights
        assert int(random_masks[name].sum()) == int(mask.sum())
        assert not torch.equal(random_masks[name], mask)
    assert summary["level_metrics"][1]["alpha"] == 0.5  # uncurated shards: f = 1
    table = (out / "summary.md").read_text()
    assert "| nonzero parameters |" in table and "reinit top-1 (%)" in table
    assert (out / "model.pt").read_bytes() == (out / "_run/level_4/model.pt").read_bytes()


def test_rewinding_restores_exactly_the_step_k_weights(data, tmp_path, monkeypatch):
    config = prune_config(data, tmp_path / "out", schedule="imp", sparsity=0.36, rewind_steps=2)
    # The dense network's state after 2 of its 6 steps, trained independently.
    loaded = load_data(config)
    independent = fit(dense_network(config, loaded.classes), loaded, config, 6, 0, "check",
                      snapshot_at=2).snapshot  # fmt: skip
    starts = []
    real_fit = levels.fit

    def recording_fit(net, *args, **kwargs):
        starts.append({k: v.clone() for k, v in net.state_dict().items()})
        return real_fit(net, *args, **kwargs)

    monkeypatch.setattr(levels, "fit", recording_fit)
    from pipelines.model_pruning.runner import prune

    prune(config)
    run = _run(tmp_path / "out")
    rewind = schema.load_state(run, "level_0", "rewind.pt")
    assert rewind.keys() == independent.keys()
    assert all(torch.equal(rewind[k], independent[k]) for k in rewind)
    assert len(starts) == 3  # level 0, then levels 1 and 2
    for level, start in ((1, starts[1]), (2, starts[2])):
        masks = schema.load_masks(run, f"level_{level}", "mask.pt")
        for key, value in rewind.items():
            layer, _, kind = key.rpartition(".")
            if kind == "weight" and layer in masks:  # a pruned layer: orig and mask installed
                assert torch.equal(start[f"{layer}.weight_orig"], value)
                assert torch.equal(start[f"{layer}.weight_mask"].bool(), masks[layer])
            else:  # biases, BN parameters and running statistics
                assert torch.equal(start[key], value)


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "curation", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip


def _wait_for(path: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 240
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError("the run finished before it could be interrupted")
        if time.monotonic() > deadline:
            raise AssertionError("no progress")
        time.sleep(0.005)


def test_sigkill_mid_level_then_rerun_gives_identical_bytes(data, tmp_path):
    extra = ["--schedule", "imp", "--levels", "3", "--steps", "100", "--controls"]
    run_prune(data, tmp_path / "reference", schedule="imp", levels=3, steps=100, controls=True)
    out = tmp_path / "out"
    process = _start(cli_args(data, out, *extra))
    _wait_for(out / "_run/level_2/units.json", process)  # level 2 is running
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "_run/level_2/done/main").exists(), "killed too late"
    first_level = (out / "_run/level_1/done/main").stat().st_mtime_ns
    resumed = cli(*cli_args(data, out, *extra))
    assert resumed.returncode == 0, resumed.stderr
    assert "[level_1] done (3/3 units)" in resumed.stderr  # finished levels were not redone
    assert (out / "_run/level_1/done/main").stat().st_mtime_ns == first_level
    assert artifacts(out) == artifacts(tmp_path / "reference")
    assert [p for p in out.rglob("*") if ".tmp-" in p.name] == []


def test_progress_reports_steps_per_second_and_eta(data, tmp_path):
    result = cli(*cli_args(data, tmp_path / "out", "--steps", "5"))
    assert result.returncode == 0, result.stderr
    assert "[level_1] step 5/5," in result.stderr and "steps/s" in result.stderr
    assert "ETA" in result.stderr
    assert "| top-1 accuracy (%) |" in result.stdout


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_local_and_dask_give_identical_checkpoints_and_metrics(data, tmp_path, workers):
    common = {"methods": ["global", "random"], "sparsities": [0.5, 0.8], "workers": workers}
    run_sweep(data, tmp_path / "local", **common)
    run_sweep(data, tmp_path / "dask", executor="dask", **common)
    local, dask = artifacts(tmp_path / "local"), artifacts(tmp_path / "dask")
    models = [name for name in local if name.endswith("model.pt")]
    assert len(models) == 1 + 4  # level 0 and four members (the output holds none)
    assert local == dask


def test_training_on_curate_prune_output_reads_its_kept_fraction(pruned_run, data, tmp_path):
    dense = tmp_path / "dense.pt"
    torch.save(tiny_cnn(5).state_dict(), dense)
    curated = replace(data, train=str(Path(pruned_run).parent / "{00000..00002}.tar"))
    summary = run_prune(curated, tmp_path / "out", checkpoint=str(dense), kd=True)
    found = summary["data"]["curated"]
    assert found["prune_run"] == pruned_run and found["kept_fraction"] == 0.5
    kept = json.loads((Path(pruned_run).parent / "summary.json").read_text())["kept_samples"]
    assert summary["data"]["train_samples"] == kept  # what the prune run kept
    assert summary["level_metrics"][1]["alpha"] == 0.75  # 1 - f / 2, as in curate validate


def _refused(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("curate: error:"), result.stderr
    assert message in lines[-1], lines[-1]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("sparsity 1", "--sparsity: must be in [0, 1), got 1.0"),
        ("sparsity -0.1", "--sparsity: must be in [0, 1), got -0.1"),
        ("no prunable layer", "has no prunable layer"),
        ("no labels", "--train: no labelled image in its 1 shards"),
        ("checkpoint does not fit", "does not fit"),
        ("missing shards", "--eval: no shards match"),
        ("kd without teacher", "--kd needs a trained dense model"),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(case, message, data, tmp_path):
    out = tmp_path / "out"
    args = cli_args(data, out)
    if case.startswith("sparsity"):
        args[args.index("--sparsity") + 1] = case.split()[1]
    elif case == "no prunable layer":
        args[args.index("--model") + 1] = "tests.pipelines.model_pruning.nets:no_prunable"
    elif case == "no labels":  # captions and json without the label field asked for
        unlabelled = write_shards(tmp_path / "captions", 1, 5, layout="img2dataset")
        args[args.index("--train") + 1] = str(unlabelled[0])
        args += ["--label-field", "missing"]
    elif case == "checkpoint does not fit":
        wrong = tmp_path / "wrong.pt"
        torch.save(tiny_cnn(3).state_dict(), wrong)
        args += ["--checkpoint", str(wrong)]
    elif case == "missing shards":
        args[args.index("--eval") + 1] = str(tmp_path / "nowhere" / "*.tar")
    else:
        args += ["--kd"]
    _refused(cli(*args), message)
    assert not out.exists()


def test_a_folder_that_holds_something_else_is_refused(data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("mine")
    _refused(cli(*cli_args(data, out)), "is not empty (1 entries) and holds no curate")
    assert [p.name for p in out.iterdir()] == ["precious.txt"]


def test_a_folder_held_by_a_live_run_is_refused_and_one_it_left_is_taken(data, tmp_path):
    out = tmp_path / "out"
    with Lease(Folder(str(out)), settle=0.05) as held:
        with pytest.raises(CurateError, match="is being written by another curate run"):
            run_prune(data, out)
        assert Folder(str(out)).read_json(LEASE_NAME)["token"] == held.token
        assert sorted(p.name for p in out.iterdir()) == [LEASE_NAME]
        left = {**json.loads((out / LEASE_NAME).read_text()), "heartbeat": 0.0}
    (out / LEASE_NAME).write_text(json.dumps(left))  # a killed run's: stale, taken over
    run_prune(data, out)
    assert (out / "model.pt").is_file() and not (out / LEASE_NAME).exists()


def test_rerun_resumes_and_another_pipeline_s_folder_is_refused(data, tmp_path):
    out = tmp_path / "out"
    run_prune(data, out)
    marker = (out / "_run/level_1/done/main").stat().st_mtime_ns
    run_prune(data, out)
    assert (out / "_run/level_1/done/main").stat().st_mtime_ns == marker
    config = model_config(PruneConfig, train=data.train, eval=data.eval, output=str(out),
                          **{**FAST, "sparsity": 0.5})  # fmt: skip
    from pipelines.model_pruning.runner import prune

    prune(config)  # a changed sparsity redoes level 1 and keeps level 0
    assert json.loads((out / "summary.json").read_text())["sparsity_requested"] == 0.5
    with pytest.raises(Exception, match="holds no curate model-sweep run"):
        run_sweep(data, out)
