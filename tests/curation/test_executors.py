"""Interrupted runs resume to the same bytes; the local and dask executors agree."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.builders import write_shards
from tests.runs import REPO, cli_prune_args, output_files, run_prune


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "curation", *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait_for_done_markers(folder, at_least: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if folder.is_dir() and len(list(folder.iterdir())) >= at_least:
            return
        if process.poll() is not None:
            raise AssertionError("the run finished before it could be interrupted")
        time.sleep(0.005)
    raise AssertionError("no progress")


@pytest.mark.parametrize("stage", ["embed", "reshard"])
def test_sigkill_mid_stage_then_rerun_gives_identical_outputs(stage, tmp_path, tiny_clip):
    shards = write_shards(tmp_path / "in", shards=8, per_shard=25)
    reference = tmp_path / "reference"
    run_prune(shards, reference, tiny_clip, batch_size=4)
    out = tmp_path / "out"
    args = cli_prune_args(shards, out, tiny_clip, "--batch-size", "4")
    process = _start(args)
    _wait_for_done_markers(out / "_run" / stage / "done", 1, process)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done = len(list((out / "_run" / stage / "done").iterdir()))
    assert done < 8, "killed too late to test a partial stage"
    assert not (out / "summary.json").exists()
    resumed = subprocess.run(
        [sys.executable, "-m", "curation", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"[{stage}] resuming: {done}/8 units already done" in resumed.stderr
    assert output_files(out) == output_files(reference)
    leftovers = [p for p in out.rglob("*") if ".tmp-" in p.name]
    assert leftovers == []


def test_local_pool_and_dask_give_identical_bytes(tmp_path, tiny_clip):
    shards = write_shards(tmp_path / "in", shards=4, per_shard=20)
    run_prune(shards, tmp_path / "inline", tiny_clip, workers=2)
    run_prune(shards, tmp_path / "dask", tiny_clip, workers=2, executor="dask")
    inline, dask = output_files(tmp_path / "inline"), output_files(tmp_path / "dask")
    assert inline.keys() == dask.keys() and inline == dask


@pytest.mark.slow
def test_dask_scheduler_address(tmp_path, tiny_clip):
    from distributed import LocalCluster

    shards = write_shards(tmp_path / "in", shards=2, per_shard=20)
    run_prune(shards, tmp_path / "local", tiny_clip, workers=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        run_prune(shards, tmp_path / "remote", tiny_clip, workers=2, executor="dask",
                  scheduler=cluster.scheduler_address)  # fmt: skip
    assert output_files(tmp_path / "local") == output_files(tmp_path / "remote")
