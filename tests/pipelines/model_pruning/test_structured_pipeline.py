"""`curate model structured`: channels removed for real through torch-pruning, on the staged
executor; the Liu et al. control; the missing extra; latency from `curate model bench`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from curation.cli import app
from curation.errors import CurateError
from pipelines.cifar_resnet import resnet20
from pipelines.model_pruning.config import StructuredConfig, model_config
from pipelines.model_pruning.runner import structured
from pipelines.model_pruning.schedules import step_targets
from pipelines.model_pruning.structured import MISSING_EXTRA, load_pruned
from tests.pipelines.model_pruning.nets import tiny_cnn
from tests.pipelines.model_pruning.runs import FAST, artifacts
from tests.pipelines.test_structured import _independent_count

RESNET = "pipelines.cifar_resnet:resnet20"
EXAMPLE = torch.zeros(1, 3, 16, 16)


def _config(data, out, **overrides) -> StructuredConfig:
    return model_config(StructuredConfig, train=data.train, eval=data.eval, output=str(out),
                        **{**FAST, **overrides})  # fmt: skip


def test_a_residual_cnn_loses_channels_and_loads_from_its_file(data, tmp_path):
    out = tmp_path / "out"
    summary = structured(_config(data, out, model=RESNET, schedule="gradual", levels=2,
                                 ratios=[0.3], scratch=True))  # fmt: skip
    (row,) = summary["rows"]
    assert row["member"] == "l2-r0.3-seed0"
    assert row["macs_reduction"] > 1.5  # about 1 / (1 - 0.3)^2
    model = load_pruned(out / "l2-r0.3-seed0.pt", resnet20(num_classes=5))
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 5)
    assert (row["params_after"], row["macs_after"]) == _independent_count(model, EXAMPLE)
    assert (row["params_before"], row["macs_before"]) == _independent_count(
        resnet20(num_classes=5), EXAMPLE
    )
    assert row["file_bytes_after"] < row["file_bytes_before"]
    metrics = json.loads((out / "_run/prune/l2-r0.3-seed0/metrics.json").read_text())
    sizes = [s["macs"] for s in metrics["step_sizes"]]
    assert len(sizes) == 2 and sizes[0] > sizes[1]  # two steps on the cubic schedule
    scratch = load_pruned(out / "l2-r0.3-seed0-scratch.pt", resnet20(num_classes=5))
    assert _independent_count(scratch, EXAMPLE) == _independent_count(model, EXAMPLE)
    assert not torch.equal(scratch.conv1.weight, model.conv1.weight)
    assert row["scratch_accuracy"] is not None
    assert "| l2-r0.3-seed0 |" in (out / "results.md").read_text()
    assert row["exported_file"] == "l2-r0.3-seed0.pt2"
    _loads_with_torch_alone(out / "l2-r0.3-seed0.pt2", model, tmp_path)


LOAD_ALONE = """
import sys, torch
model = torch.export.load(sys.argv[1]).module()
x = torch.load(sys.argv[2])
torch.save(model(x).detach(), sys.argv[3])
mine = [m for m in sys.modules if m.split(".")[0] in ("curation", "pipelines", "torch_pruning")]
assert not mine, mine
"""


def _loads_with_torch_alone(exported: Path, model: torch.nn.Module, tmp_path: Path) -> None:
    """A fresh interpreter, isolated (-I: no PYTHONPATH, no working folder on the path), loads
    the .pt2 without importing curate or torch-pruning and computes what `model` computes, at a
    batch size other than the one exported."""
    x = torch.randn(3, 3, 16, 16)
    torch.save(x, tmp_path / "x.pt")
    subprocess.run([sys.executable, "-I", "-c", LOAD_ALONE, str(exported), str(tmp_path / "x.pt"),
                    str(tmp_path / "y.pt")], check=True, cwd=tmp_path)  # fmt: skip
    with torch.no_grad():
        assert torch.allclose(torch.load(tmp_path / "y.pt"), model.eval()(x), atol=1e-5)


def test_the_documented_load_needs_only_torch_and_torch_pruning(data, tmp_path):
    import torch_pruning as tp

    out = tmp_path / "out"
    (row,) = structured(_config(data, out))["rows"]  # the default target: 2x fewer MACs
    assert row["member"] == "l2-x2-seed0" and row["macs_reduction"] >= 2.0
    saved = torch.load(out / "l2-x2-seed0.pt", map_location="cpu", weights_only=True)
    model = tiny_cnn(5)
    graph = tp.DependencyGraph().build_dependency(model, torch.zeros(saved["input_shape"]))
    graph.load_pruning_history(saved["pruning_history"])
    model.load_state_dict(saved["state_dict"])
    assert sum(p.numel() for p in model.parameters()) < sum(
        p.numel() for p in tiny_cnn(5).parameters()
    )
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(model.eval()(x), load_pruned(out / "l2-x2-seed0.pt", tiny_cnn(5))(x))


def test_cubic_step_targets():
    config = StructuredConfig(model="m", train=["a"], eval=["b"], output="/o",
                              schedule="gradual", levels=3, macs=[4.0])  # fmt: skip
    removed = [0.75 * (1 - (1 - t / 3) ** 3) for t in (1, 2, 3)]  # of the MACs, to 1 - 1/4
    assert step_targets(config, 4.0) == pytest.approx([1 / (1 - r) for r in removed])
    assert step_targets(config, 4.0)[-1] == 4.0


def test_members_are_units_that_resume_and_agree_under_dask(data, tmp_path):
    common = {"importances": ["l2", "random"], "ratios": [0.25, 0.5]}
    local = structured(_config(data, tmp_path / "local", **common))
    assert [r["member"] for r in local["rows"]] == [
        "l2-r0.25-seed0", "l2-r0.5-seed0", "random-r0.25-seed0", "random-r0.5-seed0"
    ]  # fmt: skip
    structured(_config(data, tmp_path / "dask", executor="dask", workers=2, **common))  # parallel
    assert artifacts(tmp_path / "local") == artifacts(tmp_path / "dask")
    done = tmp_path / "local/_run/prune/done"
    kept = (done / "l2-r0.25-seed0").stat().st_mtime_ns
    before = artifacts(tmp_path / "local")
    (done / "random-r0.5-seed0").unlink()  # as if killed before its marker
    structured(_config(data, tmp_path / "local", **common))
    assert (done / "l2-r0.25-seed0").stat().st_mtime_ns == kept  # not redone
    assert artifacts(tmp_path / "local") == before  # the redone one: the same bytes


def test_missing_extra_is_one_line_before_any_write(data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_pruning", None)  # `import torch_pruning` fails
    with pytest.raises(CurateError) as raised:
        structured(_config(data, tmp_path / "out"))
    assert str(raised.value) == MISSING_EXTRA
    assert not (tmp_path / "out").exists()


def test_the_cli_without_the_extra_says_which_to_install(data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_pruning", None)
    result = CliRunner().invoke(app, ["model", "structured", "--model", FAST["model"],
                                      "--image-size", "16", "--train", data.train, "--eval",
                                      data.eval, "-o", str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"curate: error: {MISSING_EXTRA}"]
    assert not (tmp_path / "out").exists()


def test_bench_times_dense_and_pruned_and_the_report_plots_it(data, tmp_path):
    out = tmp_path / "out"
    structured(_config(data, out, ratios=[0.5]))
    result = CliRunner().invoke(app, ["model", "bench", str(out), "--repeats", "3", "--warmup",
                                      "1", "--batch-sizes", "1,8", "--device", "cpu"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "| l2-r0.5-seed0 | 8 |" in result.output
    latency = json.loads((out / "_run/latency.json").read_text())
    rows = latency["devices"]["cpu"]["l2-r0.5-seed0"]["batches"]
    assert [r["batch_size"] for r in rows] == [1, 8]
    assert all(r["speedup"] == pytest.approx(r["dense_ms"] / r["pruned_ms"], rel=0.01)
               for r in rows)  # fmt: skip
    from pipelines.report.build import build_report

    html = Path(build_report(str(out))).read_text()
    for section in ("macs", "latency", "results"):
        assert f'id="{section}"' in html
