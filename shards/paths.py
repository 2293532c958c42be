"""Expand the shard arguments a user types into a concrete, ordered list of shard URLs."""

from __future__ import annotations

import glob
import os

from braceexpand import braceexpand

from curation.errors import CurateError
from curation.storage import explain, filesystem

GLOB_CHARS = "*?["


def is_url(path: str) -> bool:
    return "://" in path


def _expand_url(pattern: str, storage_options: dict | None) -> list[str]:
    """Glob or check one URL; storage failures become one line naming what to set."""
    fs, path = filesystem(pattern, storage_options)
    protocol = pattern.split("://", 1)[0]
    try:
        if any(c in pattern for c in GLOB_CHARS):
            found = sorted(fs.glob(path))
            return [p if "://" in p else f"{protocol}://{p}" for p in found]
        kind = fs.info(path)["type"]
    except FileNotFoundError:
        raise CurateError(f"shard not found: {pattern}") from None
    except Exception as exc:
        raise explain(exc, pattern) from None
    if kind != "file":
        raise CurateError(f"shard is not a file: {pattern}")
    return [pattern]


def _expand_one(pattern: str, storage_options: dict | None) -> list[str]:
    if is_url(pattern):
        return _expand_url(pattern, storage_options)
    if any(c in pattern for c in GLOB_CHARS):
        return sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
    if not os.path.exists(pattern):
        raise CurateError(f"shard not found: {pattern}")
    if not os.path.isfile(pattern):
        raise CurateError(f"shard is not a file: {pattern}")
    return [pattern]


def expand_shards(patterns: list[str], storage_options: dict | None = None) -> list[str]:
    """The shards of `given_shards`, local paths made absolute."""
    return [s if is_url(s) else os.path.abspath(s)
            for s in given_shards(patterns, storage_options)]  # fmt: skip


def given_shards(patterns: list[str], storage_options: dict | None = None) -> list[str]:
    """Paths, globs, brace ranges (`{00000..00009}`) and fsspec URLs, in the order given and
    as given (a relative path stays relative); `storage_options` go to the filesystem of each
    URL (`--storage-options`).

    Globs expand in sorted order, so the shard list (and every output name derived from it)
    does not depend on directory listing order.
    """
    shards: list[str] = []
    for pattern in patterns:
        for concrete in braceexpand(pattern):
            found = _expand_one(concrete, storage_options)
            if not found:
                raise CurateError(f"no shards match: {concrete}")
            shards.extend(found)
    if not shards:
        raise CurateError("no input shards given")
    seen: set[str] = set()
    for shard in shards:
        if shard in seen:
            raise CurateError(f"shard listed twice: {shard}")
        seen.add(shard)
    return shards


def shard_size(url: str, storage_options: dict | None = None) -> int:
    """A shard's size in bytes (what progress inside a unit is measured against)."""
    fs, path = filesystem(url, storage_options)
    return int(fs.size(path) or 0)


def open_shard(url: str, storage_options: dict | None = None):
    """Open a shard for binary streaming reads (local path or fsspec URL)."""
    fs, path = filesystem(url, storage_options)
    return fs.open(path, "rb")


def _identity(info: dict) -> str:
    """What says a remote object changed: its ETag, or its size and modification time."""
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return f"etag={str(etag).strip(chr(34))}"
    modified = info.get("mtime") or info.get("LastModified") or info.get("last_modified")
    return f"size={info.get('size')};mtime={modified}"


def fingerprints(urls: list[str], storage_options: dict | None = None) -> list[str]:
    """Each shard's identity as it is now (local: size and mtime in ns; objects: the ETag),
    so that a shard replaced at the same path is noticed. Remote folders are listed once each
    rather than asked object by object."""
    found: dict[str, str] = {}
    remote: dict[str, list[str]] = {}
    for url in urls:
        if is_url(url):
            remote.setdefault(url.rsplit("/", 1)[0], []).append(url)
        else:
            stat = os.stat(url)
            found[url] = f"size={stat.st_size};mtime_ns={stat.st_mtime_ns}"
    for parent, members in remote.items():
        fs, path = filesystem(parent, storage_options)
        try:
            listing = {entry["name"].rstrip("/").rsplit("/", 1)[-1]: entry
                       for entry in fs.ls(path, detail=True)}  # fmt: skip
        except Exception as exc:
            raise explain(exc, parent) from None
        for url in members:
            info = listing.get(url.rsplit("/", 1)[-1])
            if info is None:
                raise CurateError(f"shard not found: {url}")
            found[url] = _identity(info)
    return [found[url] for url in urls]


def file_identity(url: str, storage_options: dict | None = None) -> str | None:
    """A file's identity as `fingerprints` gives it; None when there is no such file (the
    caller says so, in its own words)."""
    fs, path = filesystem(url, storage_options)
    if not fs.isfile(path):
        return None
    return fingerprints([url], storage_options)[0]


def check_unchanged(url: str, fingerprint: str, storage_options: dict) -> None:
    """A shard read now must be the one the run started with."""
    (now,) = fingerprints([url], storage_options)
    if now != fingerprint:
        raise CurateError(
            f"shard {url} changed since this run started ({fingerprint} -> {now}): "
            "run the same command again to prune what it holds now"
        )
