"""The service fixtures themselves: a real S3 server and a real Dask cluster on 127.0.0.1."""

import os
import time
import urllib.error
import urllib.request

import fsspec
import pytest

from tests.services import dask_cluster_on_localhost, hold_until_released


def test_s3_fixture_sets_the_environment_s3fs_reads(s3):
    assert os.environ["AWS_ENDPOINT_URL"] == s3.endpoint
    fs = fsspec.filesystem("s3")
    fs.pipe_file(f"{s3.bucket}/a.txt", b"hello")
    assert fs.cat_file(s3.url("a.txt")) == b"hello"


def test_a_task_killed_with_its_worker_is_retried_on_the_other(dask_cluster, tmp_path):
    from distributed import Client

    with Client(dask_cluster.address, timeout=10) as client:
        workers = client.scheduler_info()["workers"].values()
        assert sorted(w["nthreads"] for w in workers) == [1, 1]
        assert sorted(client.run(os.getpid).values()) == sorted(dask_cluster.worker_pids())
        future = client.submit(hold_until_released, str(tmp_path), pure=False)
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob("started-*")):
            assert time.monotonic() < deadline, f"the task never started ({future.status})"
            time.sleep(0.05)
        first = int(next(tmp_path.glob("started-*")).name.split("-")[1])
        dask_cluster.kill_worker(first)
        (tmp_path / "go").touch()
        second = future.result(timeout=30)
    assert second != first and second in dask_cluster.worker_pids()
    assert sorted(p.name for p in tmp_path.glob("finished-*")) == [f"finished-{second}"]


def test_without_a_dashboard_the_client_still_gives_a_link_that_is_not_one(dask_cluster):
    """So a link is worth printing only when it answers."""
    from distributed import Client

    assert dask_cluster.dashboard is None
    with Client(dask_cluster.address, timeout=10) as client:
        link = client.dashboard_link
    assert link.startswith("http://127.0.0.1:")
    with pytest.raises(urllib.error.HTTPError, match="404"):
        urllib.request.urlopen(link, timeout=10)


def test_a_cluster_with_a_dashboard_gives_its_link():
    with dask_cluster_on_localhost(workers=1, dashboard=True) as cluster:
        assert cluster.dashboard.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(cluster.dashboard, timeout=10) as page:
            assert page.status == 200
