"""A lease on a folder, so that one curate run at a time writes it.

The lease is a small JSON file in the folder: its owner (host, pid, a random token), start
time, heartbeat time and time to live. A heartbeat thread refreshes it; a lease whose heartbeat
is older than its TTL (or whose owner process is gone, seen from the same host) is stale and is
taken over.

What is guaranteed, and what is not:
- Creation is exclusive where the filesystem can say "create only if absent": O_EXCL on local
  disks, If-None-Match on S3 stores that honour it (AWS S3, MinIO, moto). Elsewhere the create
  is a plain PUT and the last writer wins.
- Either way, after `settle` seconds the acquirer reads the lease back and keeps it only when
  it still holds its own token. Two acquirers whose writes land more than `settle` apart can
  both believe they hold it, as can two takers of one stale lease racing between their check
  and their delete.
- Each heartbeat first re-reads the lease: an owner whose lease was replaced or removed marks
  it lost within one heartbeat interval, and `check()` then raises, so an overlap lasts at
  most that long for a run that calls `check()` between steps.
- Staleness compares heartbeat times written by one host's clock with another's: clocks must
  agree to well within the TTL.

A run made of separate tasks (an Airflow DAG run) holds a `TaskLease` instead: its token is
the run's name, each task renews it and beats while it runs, and it goes stale only by age.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone

from curation.errors import CurateError
from curation.storage import Folder

LEASE_NAME = ".curate-lease.json"
TASK_TTL_S = 3600.0  # a task lease outlives the longest wait for a free scheduler slot
TASK_INTERVAL_S = 60.0


def _pid_namespace() -> str:
    """Tells two containers with one hostname apart: their pids are not comparable."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _well_formed(record: object) -> bool:
    if not isinstance(record, dict) or not isinstance(record.get("token"), str):
        return False
    return all(isinstance(record.get(k), (int, float)) for k in ("heartbeat", "ttl", "pid"))


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Lease:
    """`with Lease(folder):` holds the folder for the block; `acquire` refuses with one line
    while another live run holds it."""

    def __init__(
        self,
        folder: Folder,
        ttl: float = 60.0,
        interval: float | None = None,
        settle: float | None = None,
    ):
        self.folder = folder
        self.ttl = ttl
        self.interval = ttl / 4 if interval is None else interval
        self.settle = (1.0 if folder.object_store else 0.2) if settle is None else settle
        self.token = uuid.uuid4().hex
        self.started = time.time()
        self.held = False
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.folder.url_of(LEASE_NAME)

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()

    def acquire(self) -> Lease:
        """Take the lease, or raise `CurateError` naming the live owner."""
        self._take()
        self._start_heartbeat()
        return self

    def _start_heartbeat(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()

    def _stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _take(self) -> None:
        """Create the lease file, taking over a stale one; `held` once it is ours."""
        for _ in range(3):  # a racing takeover may need another look
            if self._create():
                time.sleep(self.settle)
                record = self._read()
                if record is not None and record["token"] == self.token:
                    self.held = True
                    return
                if record is not None:
                    raise CurateError(self._busy(record))
                continue
            record = self._read()
            if record is None:
                continue
            reason = self._stale(record)
            if reason is None:
                raise CurateError(self._busy(record))
            print(f"curate: taking over the stale lease {self.url} ({reason})", file=sys.stderr)
            self._remove_if_token(record["token"])
        raise CurateError(f"could not take the lease {self.url}: other runs keep replacing it")

    def check_free(self) -> None:
        """Raise now, naming the live owner, when another run holds the folder: a request
        refused for that needs no slower check first (the lease is taken later)."""
        record = self._read()
        if record is not None and self._stale(record) is None:
            raise CurateError(self._busy(record))

    def check(self) -> None:
        """Raise once the lease is lost, so a run stops before writing over another's."""
        if self.lost is not None:
            raise CurateError(
                f"lost the lease on {self.folder.url} ({self.lost}): another curate run may be "
                "writing it; stopping"
            )

    def release(self) -> None:
        """Stop the heartbeat and remove the lease file if it is still ours. Never raises: a
        lease that cannot be removed goes stale after its TTL."""
        self._stop_heartbeat()
        if not self.held:
            return
        self.held = False
        self._remove_own()

    def _remove_own(self) -> None:
        try:
            record = self._read()
            if record is not None and record["token"] == self.token:
                self.folder.fs.rm_file(self.folder.path(LEASE_NAME))
        except Exception as exc:
            print(
                f"curate: could not remove the lease {self.url} ({exc}); it goes stale in "
                f"{self.ttl:.0f} s",
                file=sys.stderr,
            )

    def _record(self) -> dict:
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "pid_namespace": _pid_namespace(),
            "token": self.token,
            "started": _utc(self.started),
            "heartbeat": time.time(),
            "ttl": self.ttl,
        }

    def _encode(self) -> bytes:
        return json.dumps(self._record(), indent=2, sort_keys=True).encode() + b"\n"

    def _create(self) -> bool:
        """Exclusive create; False when a lease file exists."""
        self.folder.makedirs()
        try:
            with self.folder.fs.open(self.folder.path(LEASE_NAME), "xb") as f:
                f.write(self._encode())
        except FileExistsError:
            return False
        return True

    def _read(self) -> dict | None:
        """The lease's record, or None when there is none. A local O_EXCL create shows the
        file before its content, so an unreadable lease gets a second look."""
        for attempt in range(2):
            try:
                data = self.folder.fs.cat_file(self.folder.path(LEASE_NAME))
            except FileNotFoundError:
                return None
            try:
                record = json.loads(data)
            except ValueError:
                record = None
            if _well_formed(record):
                return record
            if attempt == 0:
                time.sleep(max(self.settle, 0.05))
        raise CurateError(
            f"lease file {self.url} is unreadable (not a curate lease): remove it if no "
            f"curate run is writing {self.folder.url}"
        )

    def _stale(self, record: dict) -> str | None:
        """Why the lease is stale, or None while its owner is alive."""
        same_machine = (
            record.get("host") == socket.gethostname()
            and record.get("pid_namespace") == _pid_namespace()
        )
        task_run = "holder" in record  # its tasks come and go: no process to look for
        if same_machine and not task_run and not _pid_alive(int(record["pid"])):
            return f"pid {record.get('pid')} on this host is gone"
        age = time.time() - float(record["heartbeat"])
        if age > float(record["ttl"]):
            return (
                f"host {record.get('host')}, pid {record.get('pid')}; last heartbeat "
                f"{age:.0f} s ago, ttl {float(record['ttl']):.0f} s"
            )
        return None

    def _busy(self, record: dict) -> str:
        age = max(0.0, time.time() - float(record["heartbeat"]))
        holder = f"{record['holder']}, " if "holder" in record else ""
        return (
            f"{self.folder.url} is being written by another curate run ({holder}host "
            f"{record.get('host')}, pid {record.get('pid')}, since {record.get('started')}; "
            f"last heartbeat {age:.0f} s ago): wait for it to finish, or remove {self.url} if "
            "that run is dead"
        )

    def _remove_if_token(self, token: str) -> None:
        record = self._read()
        if record is not None and record["token"] == token:
            with contextlib.suppress(FileNotFoundError):
                self.folder.fs.rm_file(self.folder.path(LEASE_NAME))

    def _beat(self) -> None:
        """Refresh the heartbeat; mark the lease lost when another run replaced it, or when
        refreshing failed for longer than the TTL (others may have taken it over by then)."""
        failing_since: float | None = None
        while not self._stop.wait(self.interval):
            try:
                record = self._read()
                if record is None or record["token"] != self.token:
                    owner = "removed" if record is None else f"now held by pid {record.get('pid')}"
                    self._lose(f"lease file {owner}")
                    return
                self.folder.write_bytes(self._encode(), LEASE_NAME)
                failing_since = None
            except Exception as exc:
                failing_since = failing_since or time.time()
                if time.time() - failing_since > self.ttl:
                    self._lose(f"heartbeat failing for {self.ttl:.0f} s: {exc}")
                    return

    def _lose(self, reason: str) -> None:
        self.lost = reason
        print(f"curate: lost the lease {self.url}: {reason}", file=sys.stderr)


class TaskLease(Lease):
    """The lease of a run whose steps are separate tasks (an Airflow DAG run): no process lives
    as long as the run, so the token is the run's own name, given by the scheduler. A retried
    first task takes the lease again, each task `holding()` it renews it (and keeps a heartbeat
    while it runs), and the last task releases it. It goes stale when no task has renewed it
    for `ttl` seconds (the longest wait between two tasks of the run), never because the
    process that wrote it is gone."""

    def __init__(self, folder: Folder, token: str, holder: str, ttl: float = TASK_TTL_S,
                 interval: float = TASK_INTERVAL_S, settle: float | None = None):  # fmt: skip
        super().__init__(folder, ttl=ttl, interval=interval, settle=settle)
        self.token = token
        self.holder = holder
        self._started: str | None = None

    def acquire(self) -> TaskLease:
        """Take the lease, or take it again when it is this run's already."""
        record = self._read()
        if record is not None and record["token"] == self.token:
            self._renew(record)
        else:
            self._take()
        return self

    @contextlib.contextmanager
    def holding(self) -> Iterator[TaskLease]:
        """For one task: renew the lease (raise if it is no longer this run's), keep its
        heartbeat while the task runs, and raise at the end if it was lost meanwhile."""
        self._renew(self._read())
        self._start_heartbeat()
        try:
            yield self
        finally:
            self._stop_heartbeat()
        self.check()

    def release(self) -> None:
        """Remove the lease if it is this run's (any task of the run may); never raises."""
        self._stop_heartbeat()
        self.held = False
        self._remove_own()

    def _renew(self, record: dict | None) -> None:
        if record is None or record["token"] != self.token:
            owner = "removed" if record is None else f"now held by pid {record.get('pid')}"
            self.lost = f"lease file {owner}"
            self.check()
        self._started = record["started"]
        self.held = True
        self.folder.write_bytes(self._encode(), LEASE_NAME)

    def _record(self) -> dict:
        record = {**super()._record(), "holder": self.holder}
        if self._started is not None:
            record["started"] = self._started
        return record
