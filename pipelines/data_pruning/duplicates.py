"""Keys that occur more than once, within a shard or across shards.

Samples are identified by (shard, position), so a repeated key never merges two samples: both
are processed, and every occurrence after the first gets a note naming the first one.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from curation.storage import Folder
from pipelines.data_pruning import schema


def repeated_keys(run: Folder, units: list[str], shards: list[str]) -> dict[int, str]:
    """Internal id -> note, for every sample whose key an earlier sample already had.

    Counting runs in Arrow over the key column; only rows of repeated keys reach Python.
    """
    table = pa.concat_tables(
        schema.read_rows(run, unit, ["key", "id", "shard", "position"]) for unit in units
    )
    counts = table.group_by("key").aggregate([("key", "count")])
    repeated = counts.filter(pc.greater(counts["key_count"], 1))["key"]
    if len(repeated) == 0:
        return {}
    rows = table.filter(pc.is_in(table["key"], value_set=repeated)).to_pylist()
    first: dict[str, tuple[int, int]] = {}
    notes = {}
    for row in rows:  # in input order: shards in order, positions ascending
        key = row["key"]
        if key not in first:
            first[key] = (row["shard"], row["position"])
            continue
        shard, position = first[key]
        notes[row["id"]] = (
            f"duplicate key {key!r}: first seen in {shards[shard]} at position {position}"
        )
    return notes
