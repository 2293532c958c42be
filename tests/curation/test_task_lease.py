"""The lease of a run made of separate tasks, on a local folder and on a real S3 server: taken
again by its own run, refused to others (and others refused while it lives), renewed by each
task, released by any task of the run, stale only by age."""

import json
import subprocess
import sys
import time

import pytest

from curation.errors import CurateError
from curation.lease import LEASE_NAME, Lease, TaskLease
from curation.storage import Folder
from tests.runs import REPO

FAST = {"settle": 0.05}
HOLDER = "Airflow DAG run curate_prune/manual__1"


@pytest.fixture(params=["local", "s3"])
def folder(request, tmp_path) -> Folder:
    if request.param == "local":
        return Folder(str(tmp_path / "out"))
    return Folder(request.getfixturevalue("s3").url("out"))


def _task_lease(folder: Folder, token: str = "curate_prune/manual__1", **kwargs) -> TaskLease:
    return TaskLease(folder, token, HOLDER, **{**FAST, **kwargs})


def _record(folder: Folder) -> dict:
    return folder.read_json(LEASE_NAME)


def test_a_retried_first_task_takes_its_runs_lease_again_and_keeps_its_start(folder):
    _task_lease(folder).acquire()
    first = _record(folder)
    time.sleep(1.1)
    _task_lease(folder).acquire()
    again = _record(folder)
    assert again["token"] == first["token"] and again["holder"] == HOLDER
    assert again["started"] == first["started"] and again["heartbeat"] > first["heartbeat"]


def test_other_runs_are_refused_with_the_holder_named_even_after_its_task_process_ended(folder):
    """Its tasks are separate processes: one that wrote the lease and ended is no dead owner."""
    script = (
        "import sys; from curation.lease import TaskLease; from curation.storage import Folder; "
        f"TaskLease(Folder(sys.argv[1]), 'run-1', {HOLDER!r}, settle=0.05).acquire()"
    )
    subprocess.run([sys.executable, "-c", script, folder.url], check=True, timeout=60, cwd=REPO)
    with pytest.raises(CurateError, match=rf"another curate run \({HOLDER}, host "):
        Lease(folder, **FAST).acquire()
    with pytest.raises(CurateError, match="is being written by another curate run"):
        _task_lease(folder, token="curate_prune/manual__2").acquire()
    assert _record(folder)["token"] == "run-1"


def test_a_task_lease_is_refused_while_a_cli_run_holds_the_folder(folder):
    with Lease(folder, **FAST), pytest.raises(CurateError, match=r"another curate run \(host"):
        _task_lease(folder).acquire()


def test_each_task_renews_it_beats_while_it_runs_and_stops_once_it_is_lost(folder):
    _task_lease(folder).acquire()
    before = _record(folder)["heartbeat"]
    with _task_lease(folder, interval=0.1).holding():
        renewed = _record(folder)["heartbeat"]
        deadline = time.monotonic() + 10
        while _record(folder)["heartbeat"] == renewed:
            assert time.monotonic() < deadline, "no heartbeat while the task runs"
            time.sleep(0.05)
    assert renewed > before
    folder.remove(LEASE_NAME)
    with (
        pytest.raises(CurateError, match=r"lost the lease on .* \(lease file removed\)"),
        _task_lease(folder).holding(),
    ):
        pass


def test_a_task_learns_at_its_end_that_the_lease_was_taken_meanwhile(folder):
    _task_lease(folder).acquire()
    with (
        pytest.raises(CurateError, match=r"lost the lease .*now held by pid 4242"),
        _task_lease(folder, interval=0.1).holding() as lease,
    ):
        record = {**_record(folder), "token": "theirs", "pid": 4242}
        folder.write_bytes(json.dumps(record).encode(), LEASE_NAME)
        deadline = time.monotonic() + 10
        while lease.lost is None:
            assert time.monotonic() < deadline, "the lost lease went unnoticed"
            time.sleep(0.05)
    assert _record(folder)["token"] == "theirs"


def test_any_task_of_the_run_releases_it_and_no_other_run_can(folder):
    _task_lease(folder).acquire()
    _task_lease(folder, token="another run").release()
    assert folder.exists(LEASE_NAME)
    _task_lease(folder).release()
    assert not folder.exists(LEASE_NAME)


def test_a_task_lease_not_renewed_within_its_ttl_is_taken_over(folder, capsys):
    _task_lease(folder, ttl=0.5).acquire()
    time.sleep(1.0)
    with Lease(folder, **FAST) as lease:
        assert _record(folder)["token"] == lease.token
    assert f"taking over the stale lease {folder.url}/{LEASE_NAME}" in capsys.readouterr().err
