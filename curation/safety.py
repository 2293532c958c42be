"""Where a run may write: never over its inputs, never a folder a typo could make precious.

Checked before anything is created, for every folder a run writes (the output and the run
directory), against every input it reads.
"""

from __future__ import annotations

import os
import posixpath

from curation.errors import CurateError


def _normal(path: str) -> str:
    """A comparable form: local paths resolved (symbolic links followed), URLs normalised."""
    if "://" in path:
        protocol, rest = path.split("://", 1)
        return f"{protocol}://{posixpath.normpath(rest)}".rstrip("/")
    return os.path.realpath(path)


def _inside(path: str, folder: str) -> bool:
    """`path` equals `folder` or lies below it."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def check_write_location(given: str, option: str, inputs: list[str]) -> None:
    """Refuse a folder to write that is empty or `.`, the filesystem root, the home folder or
    the current folder, a file, or one that equals, contains or lies inside the folder of an
    input."""
    if not given.strip() or given.strip() in (".", "./"):
        raise CurateError(f"{option} {given!r} is the current folder: name a folder of its own")
    path = _normal(given)
    if "://" not in path:
        precious = {
            "/": "the filesystem root",
            _normal(os.path.expanduser("~")): "your home folder",
            _normal(os.getcwd()): "the current folder",
        }
        if path in precious:
            raise CurateError(f"{option} {given} is {precious[path]}: name a folder of its own")
        if os.path.isfile(path):
            raise CurateError(f"{option} {given} is a file, not a folder")
    for shard in inputs:
        folder = _normal(shard).rsplit("/", 1)[0] or "/"
        if _inside(path, folder) or _inside(folder, path):
            raise CurateError(
                f"{option} {given} overlaps the folder of the input shard {shard}: write "
                "outside the folders the inputs are in"
            )
