"""A folder on any fsspec filesystem with atomic writes: the run directory and the output."""

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

TMP_MARK = ".tmp-"


def absolute(path: str) -> str:
    """A local path made absolute; a URL as it is."""
    return path if "://" in path else os.path.abspath(path)


class Folder:
    """A local path or fsspec URL. Writes go to a temporary name and are renamed into place,
    so a reader never sees a half-written file under its final name."""

    def __init__(self, url: str):
        self.url = url.rstrip("/") or "/"
        self.fs, self.root = fsspec.core.url_to_fs(self.url)

    def __repr__(self) -> str:
        return f"Folder({self.url!r})"

    def __reduce__(self):
        return (Folder, (self.url,))

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
        self.fs.makedirs(self.path(*parts), exist_ok=True)

    def remove(self, *parts: str) -> None:
        path = self.path(*parts)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    @contextmanager
    def open_atomic(self, *parts: str) -> Iterator[BinaryIO]:
        final = self.path(*parts)
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

    def remove_temporaries(self, *parts: str) -> None:
        """Drop leftovers of writes killed before their rename."""
        for name in self.listdir(*parts):
            if TMP_MARK in name:
                self.fs.rm(self.path(*parts, name))

    def write_bytes(self, data: bytes, *parts: str) -> None:
        with self.open_atomic(*parts) as f:
            f.write(data)

    def read_bytes(self, *parts: str) -> bytes:
        with self.fs.open(self.path(*parts), "rb") as f:
            return f.read()

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
