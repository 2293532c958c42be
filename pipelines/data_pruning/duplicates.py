"""Keys that occur more than once, within a shard or across shards.

Samples are identified by (shard, position), so a repeated key never merges two samples: both
are processed, and every occurrence after the first gets a note naming the first one.

No unit holds every key: the check is partitioned by the 64-bit hash of the key. `select_stats`
writes each shard's (hash, id) pairs sorted by hash with where each of `RANGES` hash ranges
starts; each `select_repeats` unit reads one span of hash ranges from every shard (a seek, not
the whole file), finds the hashes seen more than once, compares the keys themselves (two keys
can share a hash), and writes, per shard, the rows whose key an earlier row had and that row's
id; `select` turns them into notes.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.stage import Context
from curation.storage import Folder
from pipelines.data_pruning import schema

RANGE_BITS = 10
RANGES = 1 << RANGE_BITS  # hash ranges (by their top bits) each shard's hashes are indexed by
ROWS_PER_PART = 1 << 22  # rows a select_repeats unit reads at most, on average
HASH_ROW = np.dtype([("hash", "<u8"), ("id", "<i8")])


def write_hashes(run: Folder, unit: str, hashes: np.ndarray, ids: np.ndarray) -> None:
    """A shard's key hashes, sorted, and the first row of each hash range in them."""
    order = np.lexsort((ids, hashes))
    rows = np.empty(len(ids), dtype=HASH_ROW)
    rows["hash"], rows["id"] = hashes[order], ids[order]
    starts = np.arange(RANGES, dtype=np.uint64) << np.uint64(64 - RANGE_BITS)
    ranges = np.searchsorted(rows["hash"], starts).astype(np.int64)
    schema.write_key_hashes(run, unit, rows, np.append(ranges, len(rows)))


def part_units(ctx: Context) -> list[str]:
    """One unit per span of hash ranges, "FIRST-LAST", about `ROWS_PER_PART` rows each."""
    rows = sum(schema.row_count(ctx.run, u) for u in schema.shard_units(ctx))
    parts = min(RANGES, max(1, math.ceil(rows / ROWS_PER_PART)))
    return [f"{p * RANGES // parts:04d}-{(p + 1) * RANGES // parts:04d}" for p in range(parts)]


def find_repeats(ctx: Context, unit: str) -> dict:
    """The repeated keys whose hash falls in this unit's span of ranges, written per shard."""
    units = schema.shard_units(ctx)
    first, last = (int(bound) for bound in unit.split("-"))
    pieces = []
    for shard_unit in units:
        ranges = schema.read_key_hash_ranges(ctx.run, shard_unit)
        pieces.append(schema.read_key_hashes(ctx.run, shard_unit, ranges[first], ranges[last]))
    rows = np.concatenate(pieces) if pieces else np.zeros(0, HASH_ROW)
    # By (hash, id): each piece is, and ids grow with the shard, so a stable sort by hash
    # merges the sorted pieces (3.5x faster than a lexsort of 1M rows)
    rows = rows[np.argsort(rows["hash"], kind="stable")]
    same = rows["hash"][1:] == rows["hash"][:-1]
    shared = np.zeros(len(rows), dtype=bool)
    shared[1:] |= same
    shared[:-1] |= same
    ids = rows["id"][shared]
    repeats = _repeated(ctx.run, units, ids)
    for shard in np.unique(schema.id_shard(repeats["id"])).tolist():
        mine = schema.id_shard(repeats["id"]) == shard
        positions = schema.id_position(repeats["id"][mine]).astype(np.int32)
        table = pa.table({"position": positions, "first": repeats["first"][mine]},
                         schema=schema.REPEAT_SCHEMA)  # fmt: skip
        schema.write_repeats(ctx.run, units[shard], unit, table)
    return {"samples": len(rows), "repeated": len(repeats)}


def _repeated(run: Folder, units: list[str], ids: np.ndarray) -> np.ndarray:
    """Of rows whose key hash repeats (ids, ascending by hash then id), those whose key an
    earlier row had, with that row's id: the keys themselves decide."""
    table = pa.table({"key": _keys(run, units, ids), "id": ids})
    table = table.sort_by([("key", "ascending"), ("id", "ascending")])
    key, sorted_ids = table["key"], table["id"].to_numpy()
    starts = np.ones(len(table), dtype=bool)
    if len(table) > 1:
        starts[1:] = pc.not_equal(key[1:], key[:-1]).to_numpy(zero_copy_only=False)
    first = sorted_ids[np.maximum.accumulate(np.where(starts, np.arange(len(table)), 0))]
    later = ~starts
    found = np.empty(int(later.sum()), dtype=[("id", "<i8"), ("first", "<i8")])
    found["id"], found["first"] = sorted_ids[later], first[later]
    return found


def _keys(run: Folder, units: list[str], ids: np.ndarray) -> pa.Array:
    """The keys of `ids`, read one shard at a time."""
    keys = np.empty(len(ids), dtype=object)
    shard = schema.id_shard(ids)
    for s in np.unique(shard).tolist():
        mine = np.flatnonzero(shard == s)
        column = schema.read_rows(run, units[s], ["key"])["key"]
        keys[mine] = column.take(schema.id_position(ids[mine])).to_numpy(zero_copy_only=False)
    return pa.array(keys, pa.string())


def shard_notes(run: Folder, unit: str, keys: pa.ChunkedArray,
                shards: list[str]) -> dict[int, str]:  # fmt: skip
    """Position -> note, for every row of a shard whose key an earlier row already had
    (`keys`: the shard's key column)."""
    found = schema.read_repeats(run, unit)
    notes = {}
    for position, first in zip(found["position"].to_pylist(), found["first"].to_pylist(),
                               strict=True):  # fmt: skip
        shard, at = first >> schema.POSITION_BITS, first & schema.POSITION_MASK
        key = keys[position].as_py()
        notes[position] = f"duplicate key {key!r}: first seen in {shards[shard]} at position {at}"
    return notes
