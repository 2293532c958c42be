"""`curate model bench` on a sweep: every member timed against the dense network it was pruned
from; a run that has not finished, or is not a model run, is refused in one line."""

import json

import pytest
from typer.testing import CliRunner

from curation.cli import app
from pipelines.model_pruning.bench import bench
from pipelines.model_pruning.config import BenchConfig
from tests.pipelines.model_pruning.runs import run_sweep

QUICK = BenchConfig(batch_sizes=[2], warmup=0, repeats=2, device="cpu")


def test_every_sweep_member_is_timed(data, tmp_path):
    out = tmp_path / "out"
    run_sweep(data, out, methods=["global", "random"], sparsities=[0.5])
    found = bench(str(out / "_run"), QUICK)  # the run directory, as well as its output
    timed = found["devices"]["cpu"]
    assert sorted(timed) == ["global-s0.5-seed0", "random-s0.5-seed0"]
    for result in timed.values():
        (row,) = result["batches"]
        assert row["batch_size"] == 2 and row["dense_ms"] > 0 and row["pruned_ms"] > 0
        assert (result["threads"], result["repeats"]) == (1, 2)
    assert json.loads((out / "_run/latency.json").read_text()) == found


def test_an_unfinished_run_is_refused(data, tmp_path):
    out = tmp_path / "out"
    run_sweep(data, out, methods=["global"], sparsities=[0.5])
    (out / "_run/summary/done/all").unlink()
    with pytest.raises(Exception, match="has not finished"):
        bench(str(out), QUICK)
    assert not (out / "_run/latency.json").exists()


def test_a_folder_without_a_run_is_one_line(tmp_path):
    result = CliRunner().invoke(app, ["model", "bench", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"curate: error: not a curate run directory (no config.json): {tmp_path}"
    ]
