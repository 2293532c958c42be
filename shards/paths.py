"""Expand the shard arguments a user types into a concrete, ordered list of shard URLs."""

from __future__ import annotations

import glob
import os

import fsspec
from braceexpand import braceexpand

from curation.errors import CurateError

GLOB_CHARS = "*?["


def is_url(path: str) -> bool:
    return "://" in path


def _expand_one(pattern: str) -> list[str]:
    has_glob = any(c in pattern for c in GLOB_CHARS)
    if is_url(pattern):
        fs, _, _ = fsspec.get_fs_token_paths(pattern)
        protocol = pattern.split("://", 1)[0]
        if has_glob:
            found = sorted(fs.glob(pattern))
            return [p if "://" in p else f"{protocol}://{p}" for p in found]
        if not fs.exists(pattern):
            raise CurateError(f"shard not found: {pattern}")
        return [pattern]
    if has_glob:
        return sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
    if not os.path.exists(pattern):
        raise CurateError(f"shard not found: {pattern}")
    if not os.path.isfile(pattern):
        raise CurateError(f"shard is not a file: {pattern}")
    return [pattern]


def expand_shards(patterns: list[str]) -> list[str]:
    """Paths, globs, brace ranges (`{00000..00009}`) and fsspec URLs, in the order given.

    Globs expand in sorted order, so the shard list (and every output name derived from it)
    does not depend on directory listing order.
    """
    shards: list[str] = []
    for pattern in patterns:
        for concrete in braceexpand(pattern):
            found = _expand_one(concrete)
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
    return [s if is_url(s) else os.path.abspath(s) for s in shards]


def open_shard(url: str):
    """Open a shard for binary streaming reads (local path or fsspec URL)."""
    return fsspec.open(url, "rb").open()
