"""Fixtures that start real services on 127.0.0.1 and stop them: an S3 server (moto) and a Dask
cluster (`dask scheduler` plus `dask worker` processes, the commands operators run).

Every wait is bounded, ports are picked free, and each process is killed at teardown, also when
the test failed. `started_in` on each service says how long it took to come up.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

START_TIMEOUT = 30.0
TESTS = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] if log.exists() else ""


@contextmanager
def service(command: list[str], env: dict | None = None) -> Iterator[tuple[subprocess.Popen, Path]]:
    """Run a command in its own process group, output to a log file; killed (group and all)
    when the block ends."""
    log = Path(tempfile.mkstemp(prefix="service-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        yield proc, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        log.unlink(missing_ok=True)


def wait_until(ready, proc: subprocess.Popen, log: Path, what: str) -> None:
    """Poll `ready()` until it holds; fail with the service's log if it exits or times out."""
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{_log_tail(log)}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not ready after {START_TIMEOUT:.0f} s:\n{_log_tail(log)}")
        time.sleep(0.05)


def _answers_http(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()
    except OSError:
        return False
    return True


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


# --- S3 (moto server) -------------------------------------------------------------------------


@dataclass
class S3Server:
    endpoint: str
    started_in: float


@dataclass
class S3Bucket:
    """A fresh bucket on the server, with the environment set the way s3fs users set it."""

    endpoint: str
    bucket: str

    def url(self, *parts: str) -> str:
        return "/".join([f"s3://{self.bucket}", *parts])


@contextmanager
def moto_server(**env: str) -> Iterator[S3Server]:
    """`python -m moto.server` on a free port; `env` configures it (e.g. authentication)."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    start = time.monotonic()
    with service(command, {**os.environ, **env}) as (proc, log):
        wait_until(lambda: _answers_http(f"{endpoint}/moto-api/"), proc, log, "moto server")
        yield S3Server(endpoint, round(time.monotonic() - start, 2))


def s3_environment(monkeypatch, endpoint: str) -> None:
    """Credentials and endpoint through the variables botocore reads; no instance metadata
    lookup (it would leave this machine) and no user config files."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


def _clear_s3fs_instances() -> None:
    """s3fs caches filesystems (and their credentials) per set of options, not per
    environment; each test starts from none."""
    from s3fs import S3FileSystem

    S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with moto_server() as server:
        yield server


@pytest.fixture
def s3(s3_server, monkeypatch) -> Iterator[S3Bucket]:
    """An empty bucket of its own for each test, and the S3 environment."""
    import s3fs

    s3_environment(monkeypatch, s3_server.endpoint)
    _clear_s3fs_instances()
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(skip_instance_cache=True).mkdir(bucket)
    yield S3Bucket(s3_server.endpoint, bucket)
    _clear_s3fs_instances()


# --- Dask (scheduler and workers) -------------------------------------------------------------


@dataclass
class DaskCluster:
    address: str
    dashboard: str | None
    workers: list[subprocess.Popen] = field(default_factory=list)
    started_in: float = 0.0

    def worker_pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.poll() is None]

    def kill_worker(self, pid: int) -> None:
        """SIGKILL one worker process (no nanny restarts it) and reap it."""
        worker = next(w for w in self.workers if w.pid == pid)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)


def _dask(*args: str) -> list[str]:
    return [sys.executable, "-m", "dask", *args]


@contextmanager
def dask_cluster_on_localhost(workers: int = 2, dashboard: bool = False,
                              nthreads: int = 1) -> Iterator[DaskCluster]:  # fmt: skip
    """`dask scheduler` and `workers` `dask worker --no-nanny` processes of `nthreads` threads.
    No nanny, so a SIGKILLed worker stays dead and its tasks move to the others (operators keep
    the nanny, which restarts it). Workers import this checkout (PYTHONPATH)."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    # The scheduler's HTTP server (health, metrics; the dashboard when asked) always listens:
    # keep it on a free local port, not on :8787 of every interface.
    view = ["--dashboard-address", f"127.0.0.1:{free_port()}"]
    view += [] if dashboard else ["--no-dashboard"]
    paths = [str(TESTS.parent), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    start = time.monotonic()
    with ExitStack() as stack:
        command = _dask("scheduler", "--host", "127.0.0.1", "--port", str(port), *view)
        scheduler, log = stack.enter_context(service(command, env))
        wait_until(lambda: _accepts(port), scheduler, log, "dask scheduler")
        cluster = DaskCluster(address, None)
        for i in range(workers):
            command = _dask(
                "worker", address, "--nthreads", str(nthreads), "--no-nanny", "--no-dashboard",
                "--host", "127.0.0.1", "--name", f"worker-{i}",
            )  # fmt: skip
            cluster.workers.append(stack.enter_context(service(command, env))[0])
        with Client(address, timeout=START_TIMEOUT) as client:
            client.wait_for_workers(workers, timeout=START_TIMEOUT)
            services = client.scheduler_info()["services"]
        if dashboard:
            cluster.dashboard = f"http://127.0.0.1:{services['dashboard']}/status"
        cluster.started_in = round(time.monotonic() - start, 2)
        yield cluster


def hold_until_released(folder: str) -> int:
    """A toy task for cluster tests: says which worker process runs it, then waits for a
    `go` file (at most a minute) and returns that process's pid."""
    pid = os.getpid()
    Path(folder, f"started-{pid}").touch()
    deadline = time.monotonic() + 60
    while not Path(folder, "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    Path(folder, f"finished-{pid}").touch()
    return pid


@pytest.fixture
def dask_cluster() -> Iterator[DaskCluster]:
    """A fresh scheduler and two workers per test (a test may kill one)."""
    with dask_cluster_on_localhost() as cluster:
        yield cluster
