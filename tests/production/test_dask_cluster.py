"""`curate prune` on a real Dask cluster (`dask scheduler` and two `dask worker` processes on
127.0.0.1): a worker SIGKILLed in the middle of the embed stage changes no byte, units get
their worker's threads, the dashboard link is printed only when there is one, and an
unreachable scheduler is one line, in seconds."""

import os
import subprocess
import sys
import time
import urllib.request

import pytest

from curation.errors import CurateError
from curation.executors import DaskExecutor, local_threads
from curation.stage import Context, Lazy, Stage
from curation.storage import Folder
from tests.builders import write_shards
from tests.runs import REPO, assert_one_line_error, cli, cli_prune_args, output_files
from tests.services import dask_cluster_on_localhost, free_port


def _busy_worker(client) -> int:
    """The pid of a worker that is running a task now (0: none is)."""
    pids = client.run(os.getpid)
    busy = [address for address, keys in client.processing().items() if keys]
    return pids[busy[0]] if busy else 0


def test_a_worker_killed_mid_embed_changes_no_byte(tmp_path, tiny_clip):
    from distributed import Client

    shards = write_shards(tmp_path / "in", shards=8, per_shard=16)
    threads = local_threads(2)  # what the local pool of two workers gives each unit
    local = cli(*cli_prune_args(shards, tmp_path / "local", tiny_clip, "--workers", "2"))
    assert local.returncode == 0, local.stderr
    out = tmp_path / "dask"
    done = out / "_run" / "embed" / "done"
    with dask_cluster_on_localhost(workers=2, nthreads=threads) as cluster:
        args = cli_prune_args(shards, out, tiny_clip, "--workers", "2", "--executor", "dask",
                              "--scheduler", cluster.address)  # fmt: skip
        run = subprocess.Popen([sys.executable, "-m", "curation", *args], cwd=REPO, text=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        with Client(cluster.address, timeout=30) as client:
            deadline = time.monotonic() + 240
            victim = 0
            while not (victim and done.is_dir() and any(done.iterdir())):
                assert run.poll() is None and time.monotonic() < deadline, "no unit finished"
                victim = _busy_worker(client)
                time.sleep(0.02)
            cluster.kill_worker(victim)
        finished = len(list(done.iterdir()))
        stderr = run.communicate(timeout=300)[1]
        assert len(cluster.worker_pids()) == 1  # the other one finished the run
    assert run.returncode == 0, stderr
    assert finished < 8, "killed too late to test a partial embed stage"
    assert output_files(out) == output_files(tmp_path / "local")


def report_threads(ctx: Context, unit: str) -> dict:
    """A toy stage: the threads its unit was given."""
    return {"samples": 0, "threads": ctx.threads}


def test_a_unit_gets_its_workers_threads_not_the_clients_cores(tmp_path):
    stage = Stage("probe", lambda ctx: ["a", "b"], Lazy(f"{__name__}:report_threads"),
                  lambda config: {})  # fmt: skip
    nthreads = (os.cpu_count() or 1) + 1
    with dask_cluster_on_localhost(workers=1, nthreads=nthreads) as cluster:
        executor = DaskExecutor(1, cluster.address)
        try:
            results = dict(executor.map(stage, ["a", "b"], Context(Folder(str(tmp_path)), {})))
        finally:
            executor.close()
    assert {unit: r["threads"] for unit, r in results.items()} == {"a": nthreads, "b": nthreads}


def test_a_dashboard_link_is_printed_only_when_it_works(dask_cluster, capsys):
    DaskExecutor(1, dask_cluster.address).close()
    assert "dashboard" not in capsys.readouterr().err
    with dask_cluster_on_localhost(workers=1, dashboard=True) as cluster:
        DaskExecutor(1, cluster.address).close()
        line = capsys.readouterr().err.strip()
        assert line == f"Dask dashboard: {cluster.dashboard}"
        with urllib.request.urlopen(line.removeprefix("Dask dashboard: "), timeout=10) as page:
            assert page.status == 200 and b"Dask" in page.read()


def test_an_unreachable_scheduler_is_one_line_in_seconds(tmp_path, tiny_clip):
    shards = write_shards(tmp_path / "in", shards=1, per_shard=4)
    address = f"tcp://127.0.0.1:{free_port()}"
    result = cli(*cli_prune_args(shards, tmp_path / "out", tiny_clip, "--executor", "dask",
                                 "--scheduler", address))  # fmt: skip
    assert_one_line_error(result, f"cannot reach the Dask scheduler {address} (Connection refused)")
    assert not (tmp_path / "out").exists()
    start = time.monotonic()
    with pytest.raises(CurateError, match=r"^--scheduler localhost: missing port number"):
        DaskExecutor(1, "localhost")
    with pytest.raises(CurateError, match=r"\(Connection refused\): is it running\?$"):
        DaskExecutor(1, address)
    assert time.monotonic() - start < 5
