"""The run lease on a local folder and on a real S3 server: one writer, stale takeover, release,
heartbeat, lost leases, and real processes racing for one folder."""

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from curation.errors import CurateError
from curation.lease import LEASE_NAME, Lease
from curation.storage import Folder

ROOT = Path(__file__).resolve().parents[2]
FAST = {"settle": 0.05}


@pytest.fixture(params=["local", "s3"])
def folder(request, tmp_path) -> Folder:
    if request.param == "local":
        return Folder(str(tmp_path / "out"))
    return Folder(request.getfixturevalue("s3").url("out"))


def _write_lease(folder: Folder, **fields) -> None:
    record = {
        "host": "elsewhere",
        "pid": 4242,
        "pid_namespace": "pid:[1]",
        "token": "theirs",
        "started": "2026-01-01T00:00:00Z",
        "heartbeat": time.time(),
        "ttl": 60.0,
        **fields,
    }
    folder.write_bytes(json.dumps(record).encode(), LEASE_NAME)


def _token(folder: Folder) -> str:
    return folder.read_json(LEASE_NAME)["token"]


def test_a_second_writer_is_refused_with_one_line_naming_the_owner(folder):
    with Lease(folder, **FAST) as first:
        assert _token(folder) == first.token
        with pytest.raises(CurateError) as refused:
            Lease(folder, **FAST).acquire()
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"{folder.url} is being written by another curate run (host ")
    assert re.search(rf"pid {os.getpid()}, since \S+Z; last heartbeat \d s ago\)", message)
    assert message.endswith(f"or remove {folder.url}/{LEASE_NAME} if that run is dead")


def test_release_removes_the_lease_so_the_next_run_can_start(folder):
    Lease(folder, **FAST).acquire().release()
    assert not folder.exists(LEASE_NAME)
    with Lease(folder, **FAST) as second:
        assert _token(folder) == second.token


def test_a_stale_lease_is_taken_over_and_says_so(folder, capsys):
    _write_lease(folder, heartbeat=time.time() - 120, ttl=60.0)
    with Lease(folder, **FAST) as lease:
        assert _token(folder) == lease.token
    err = capsys.readouterr().err
    assert f"taking over the stale lease {folder.url}/{LEASE_NAME}" in err
    assert re.search(r"host elsewhere, pid 4242; last heartbeat 12\d s ago, ttl 60 s", err)


def test_a_live_lease_of_another_host_is_respected(folder):
    _write_lease(folder, heartbeat=time.time() - 30, ttl=60.0)
    with pytest.raises(CurateError, match=r"host elsewhere, pid 4242, since 2026-01-01T00:00:00Z"):
        Lease(folder, **FAST).acquire()
    assert _token(folder) == "theirs"


def test_a_dead_owner_on_this_host_is_taken_over_at_once(tmp_path, capsys):
    folder = Folder(str(tmp_path / "out"))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    namespace = os.readlink("/proc/self/ns/pid")
    _write_lease(folder, host=socket.gethostname(), pid=gone.pid, pid_namespace=namespace)
    with Lease(folder, **FAST):
        pass
    assert f"pid {gone.pid} on this host is gone" in capsys.readouterr().err


def test_release_leaves_a_lease_that_another_run_took(folder):
    lease = Lease(folder, **FAST).acquire()
    _write_lease(folder)
    lease.release()
    assert _token(folder) == "theirs"


def test_the_heartbeat_refreshes_the_lease_and_notices_when_it_is_lost(folder, capsys):
    with Lease(folder, ttl=2.0, interval=0.1, **FAST) as lease:
        first = folder.read_json(LEASE_NAME)["heartbeat"]
        deadline = time.monotonic() + 10
        while folder.read_json(LEASE_NAME)["heartbeat"] == first:
            assert time.monotonic() < deadline, "no heartbeat"
            time.sleep(0.05)
        lease.check()
        _write_lease(folder)
        while lease.lost is None:
            assert time.monotonic() < deadline, "the lost lease went unnoticed"
            time.sleep(0.05)
        with pytest.raises(CurateError, match=rf"lost the lease on {folder.url} \(lease file now"):
            lease.check()
    assert _token(folder) == "theirs"
    assert "lost the lease" in capsys.readouterr().err


def test_an_unreadable_lease_file_is_refused_not_overwritten(folder):
    folder.write_bytes(b"{not json", LEASE_NAME)
    with pytest.raises(CurateError, match=r"lease file .* is unreadable .*remove it if no curate"):
        Lease(folder, **FAST).acquire()
    assert folder.read_bytes(LEASE_NAME) == b"{not json"


RACER = textwrap.dedent(
    """
    import sys, time
    from curation.errors import CurateError
    from curation.lease import Lease
    from curation.storage import Folder

    url, start, exclusive = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"
    lease = Lease(Folder(url), settle=0.5)
    if not exclusive:  # a store that ignores If-None-Match: check, then a plain PUT
        def create():
            if lease.folder.exists(".curate-lease.json"):
                return False
            lease.folder.write_bytes(lease._encode(), ".curate-lease.json")
            return True
        lease._create = create
    time.sleep(max(0.0, start - time.time()))
    try:
        lease.acquire()
    except CurateError as exc:
        print("refused", exc)
        sys.exit(0)
    print("acquired")
    time.sleep(1.5)
    lease.check()
    lease.release()
    """
)


def _race(url: str, racers: int, exclusive: bool) -> list[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    start = time.time() + 3.0  # all racers imported and waiting by then
    flag = "1" if exclusive else "0"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, url, str(start), flag],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(racers)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outputs.append(out.strip())
    return outputs


def test_racing_processes_leave_exactly_one_writer(folder):
    _assert_one_writer(folder, _race(folder.url, racers=3, exclusive=True))


def test_on_a_store_ignoring_if_none_match_the_read_back_decides(s3):
    folder = Folder(s3.url("out"))
    _assert_one_writer(folder, _race(folder.url, racers=3, exclusive=False))


def _assert_one_writer(folder: Folder, outputs: list[str]) -> None:
    assert sorted(o.split()[0] for o in outputs) == ["acquired", "refused", "refused"], outputs
    refusals = [o for o in outputs if o != "acquired"]
    assert all("is being written by another curate run" in o for o in refusals), outputs
    assert not folder.exists(LEASE_NAME)
