"""A folder on any fsspec filesystem with atomic writes: the run directory and the output.

Local disks (and other filesystems with a cheap rename) get a temporary name renamed into
place. An object store publishes an object only when its upload completes, and a rename there
is a copy plus a delete, so writes go to the final name directly: one PUT (one multipart
upload for large files), aborted on failure.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import fsspec
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem
from fsspec.registry import known_implementations

from curation.errors import CurateError

TMP_MARK = ".tmp-"
LOCAL_PROTOCOLS = frozenset({"file", "local"})
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss"})
S3_PROTOCOLS = frozenset({"s3", "s3a"})
# A reachability check must answer in seconds: two attempts, short timeouts.
S3_PROBE_CONFIG = {
    "retries": {"total_max_attempts": 2, "mode": "standard"},
    "connect_timeout": 3,
    "read_timeout": 5,
}
SECRET_WORDS = ("key", "secret", "token", "password", "credential", "sas", "signature")


def protocol_of(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else "file"


def filesystem(
    url: str, storage_options: dict | None = None, **extra: Any
) -> tuple[AbstractFileSystem, str]:
    """fsspec's filesystem and path for a URL. One set of options serves every remote URL of a
    run (inputs, output, run directory), so local paths ignore them. Object-store listings are
    not cached: other processes (workers, tasks) add files between two listings."""
    protocol = protocol_of(url)
    options = {} if protocol in LOCAL_PROTOCOLS else {**(storage_options or {}), **extra}
    if protocol in OBJECT_STORES:
        options.setdefault("use_listings_cache", False)
    try:
        return fsspec.core.url_to_fs(url, **options)
    except ImportError:
        raise CurateError(_missing_backend(protocol)) from None
    except (TypeError, ValueError) as exc:
        raise CurateError(f"cannot open {url}: {exc}") from None


def _missing_backend(protocol: str) -> str:
    if protocol in S3_PROTOCOLS:
        return f"{protocol}:// paths need the s3 extra: pip install 'curate[s3]'"
    known = known_implementations.get(protocol, {})
    return f"{protocol}:// paths need an fsspec backend: {known.get('err', 'not installed')}"


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def explain(exc: BaseException, url: str) -> CurateError:
    """One line for a storage failure that says what to set (credentials, endpoint)."""
    names = _names(exc)
    s3 = protocol_of(url) in S3_PROTOCOLS
    credentials = (
        "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or key and secret "
        "in --storage-options"
        if s3
        else "set the credentials in the environment or in --storage-options"
    )
    endpoint = (
        "check AWS_ENDPOINT_URL, or endpoint_url in --storage-options"
        if s3
        else "check the endpoint in --storage-options"
    )
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if names & {"NoCredentialsError", "PartialCredentialsError"}:
        return CurateError(f"no credentials for {url}: {credentials}")
    if isinstance(exc, PermissionError):
        return CurateError(f"access denied to {url} ({detail}): {credentials}")
    unreachable = {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"}
    if names & unreachable or isinstance(exc, (ConnectionError, TimeoutError)):
        return CurateError(f"cannot reach the storage endpoint for {url} ({detail}): {endpoint}")
    if isinstance(exc, FileNotFoundError):
        return CurateError(f"not found: {url} ({detail})")
    if isinstance(exc, TypeError):
        return CurateError(f"storage options not accepted for {url}: {detail}")
    return CurateError(f"cannot use {url}: {type(exc).__name__}: {detail}")


def check_access(url: str, writable: bool, storage_options: dict | None = None) -> None:
    """Fail fast with one line when a run could not use `url`: no backend, missing or wrong
    credentials, an unreachable endpoint, a missing bucket, a file where a folder belongs.
    Call it before creating anything: it creates no folder and leaves nothing behind."""
    extra: dict[str, Any] = {"skip_instance_cache": True}
    if protocol_of(url) in S3_PROTOCOLS:
        user_config = (storage_options or {}).get("config_kwargs", {})
        extra["config_kwargs"] = {**S3_PROBE_CONFIG, **user_config}
    fs, path = filesystem(url, storage_options, **extra)
    if hasattr(fs, "retries"):
        fs.retries = 1  # s3fs retries timeouts itself on top of botocore
    try:
        found, kind = _nearest_existing(fs, path, url)
        if kind != "directory":
            raise CurateError(f"{url}: {found} is a file, not a folder")
        if not writable and found != path:
            raise CurateError(f"not found: {url}")
        if writable:
            _check_writable(fs, found, path, url)
    except CurateError:
        raise
    except Exception as exc:
        raise explain(exc, url) from None


def _nearest_existing(fs: AbstractFileSystem, path: str, url: str) -> tuple[str, str]:
    """The path itself or its closest existing parent, with its type."""
    current = path.rstrip("/") or "/"
    while True:
        try:
            return current, fs.info(current)["type"]
        except (FileNotFoundError, NotADirectoryError):
            parent = fs._parent(current)
            if not parent or parent == current or parent == fs.root_marker:
                what = "bucket " if is_object_store(fs) else ""
                raise CurateError(f"{url}: {what}{current} does not exist") from None
            current = parent


def _check_writable(fs: AbstractFileSystem, found: str, path: str, url: str) -> None:
    """Local: the closest existing folder is writable. Object store: a probe object can be
    put and removed (the only way to know what the credentials allow)."""
    if is_object_store(fs):
        probe = posixpath.join(path, f".curate-access-{uuid.uuid4().hex[:12]}")
        fs.pipe_file(probe, b"")
        fs.rm_file(probe)
    elif isinstance(fs, LocalFileSystem) and not os.access(found, os.W_OK | os.X_OK):
        raise CurateError(f"cannot write to {url}: {found} is not writable")


def is_object_store(fs: AbstractFileSystem) -> bool:
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else fs.protocol
    return bool(OBJECT_STORES.intersection(protocols))


def storage_options(given: str | dict | None) -> dict:
    """`--storage-options JSON` (or a dict from the Python API): keyword arguments for the
    fsspec filesystem of every remote URL, e.g. '{"endpoint_url": "http://127.0.0.1:9000"}'."""
    if isinstance(given, dict):
        return given
    text = given
    if not text:
        return {}
    try:
        options = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CurateError(f"--storage-options is not valid JSON: {exc}") from None
    if not isinstance(options, dict):
        raise CurateError("--storage-options must be a JSON object, e.g. '{\"anon\": true}'")
    return options


def public_options(options: dict) -> dict:
    """Storage options fit to record in config.json: secrets masked, at any depth."""
    masked: dict = {}
    for name, value in options.items():
        if isinstance(value, dict):
            masked[name] = public_options(value)
        elif any(word in name.lower() for word in SECRET_WORDS):
            masked[name] = "***"
        else:
            masked[name] = value
    return masked


def absolute(path: str) -> str:
    """A local path made absolute; a URL as it is."""
    return path if "://" in path else os.path.abspath(path)


class Folder:
    """A local path or fsspec URL (with its fsspec storage options). A reader never sees a
    half-written file under its final name."""

    def __init__(self, url: str, storage_options: dict | None = None):
        self.url = url.rstrip("/") or "/"
        self.storage_options = dict(storage_options or {})
        self.fs, self.root = filesystem(self.url, self.storage_options)
        self.object_store = is_object_store(self.fs)

    def __repr__(self) -> str:
        return f"Folder({self.url!r})"

    def __reduce__(self):
        return (Folder, (self.url, self.storage_options))

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts) if parts else self.root

    def url_of(self, *parts: str) -> str:
        return posixpath.join(self.url, *parts) if parts else self.url

    def exists(self, *parts: str) -> bool:
        return self.fs.exists(self.path(*parts))

    def listdir(self, *parts: str) -> list[str]:
        """Names directly inside a subfolder, sorted; empty when it does not exist."""
        path = self.path(*parts)
        if not self.fs.isdir(path):
            return []
        return sorted(posixpath.basename(p.rstrip("/")) for p in self.fs.ls(path, detail=False))

    def makedirs(self, *parts: str) -> None:
        """Object stores have no folders (and s3fs would create a missing bucket): nothing."""
        if not self.object_store:
            self.fs.makedirs(self.path(*parts), exist_ok=True)

    def remove(self, *parts: str) -> None:
        path = self.path(*parts)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    @contextmanager
    def open_atomic(self, *parts: str) -> Iterator[BinaryIO]:
        final = self.path(*parts)
        if self.object_store:
            with self._open_direct(final) as f:
                yield f
            return
        self.fs.makedirs(posixpath.dirname(final), exist_ok=True)
        tmp = f"{final}{TMP_MARK}{uuid.uuid4().hex[:12]}"
        try:
            with self.fs.open(tmp, "wb") as f:
                yield f
            self.fs.mv(tmp, final)
        except BaseException:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
            raise

    @contextmanager
    def _open_direct(self, final: str) -> Iterator[BinaryIO]:
        """The object appears when `close` completes its upload; on failure the upload is
        discarded and the file marked closed, so nothing (not even garbage collection)
        publishes a partial object."""
        f = self.fs.open(final, "wb")
        try:
            yield f
        except BaseException:
            f.discard()
            f.closed = True
            raise
        f.close()

    def remove_temporaries(self, *parts: str) -> None:
        """Drop leftovers of writes killed before their rename, in the subfolder and every
        folder below it (a unit's stats, a nested output shard). An object store has none:
        its writes are direct."""
        root = self.path(*parts)
        if self.object_store or not self.fs.isdir(root):
            return
        for path in self.fs.find(root):
            if TMP_MARK in posixpath.basename(path):
                self.fs.rm(path)

    def write_bytes(self, data: bytes, *parts: str) -> None:
        with self.open_atomic(*parts) as f:
            f.write(data)

    def read_bytes(self, *parts: str) -> bytes:
        """One GET on an object store: a file opened for reading there fails when another
        process replaces it before the read (a heartbeat, a retried unit's stats)."""
        return self.fs.cat_file(self.path(*parts))

    def write_json(self, obj: Any, *parts: str) -> None:
        self.write_bytes(json.dumps(obj, indent=2, sort_keys=True).encode() + b"\n", *parts)

    def read_json(self, *parts: str) -> Any:
        return json.loads(self.read_bytes(*parts))

    def open_read(self, *parts: str) -> BinaryIO:
        return self.fs.open(self.path(*parts), "rb")

    def write_buffer(self, fill, *parts: str) -> None:
        """Write what `fill(buffer)` produces; for writers (numpy, parquet) that want a file."""
        buffer = io.BytesIO()
        fill(buffer)
        self.write_bytes(buffer.getvalue(), *parts)
