"""Repeated keys found by hash range, each unit reading one span of every shard's sorted hashes:
the notes are those of one pass over every key, and two keys that share a hash are not taken
for one."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from curation.stage import Context
from curation.storage import Folder
from pipelines.data_pruning import duplicates, schema


def write_rows(run: Folder, shard: int, keys: list[str], hashes: np.ndarray) -> None:
    n = len(keys)
    ids = schema.sample_ids(shard, np.arange(n))
    table = pa.table({"id": pa.array(ids, pa.int64()), "key": pa.array(keys, pa.string()),
                      "key_hash": pa.array(hashes, pa.uint64())})  # fmt: skip
    schema.write_table(run, table, "embed", f"{schema.unit_name(shard)}.parquet")


def expected_notes(shards: list[list[str]], names: list[str]) -> list[dict[int, str]]:
    """The 0.1.0 rule: in input order, every occurrence after the first names the first."""
    first: dict[str, tuple[int, int]] = {}
    notes: list[dict[int, str]] = [{} for _ in shards]
    for s, keys in enumerate(shards):
        for p, key in enumerate(keys):
            if key in first:
                fs, fp = first[key]
                notes[s][p] = f"duplicate key {key!r}: first seen in {names[fs]} at position {fp}"
            else:
                first[key] = (s, p)
    return notes


@pytest.mark.parametrize("rows_per_part", [1 << 22, 7])
def test_notes_are_those_of_one_pass_over_every_key(tmp_path, monkeypatch, rows_per_part):
    monkeypatch.setattr(duplicates, "ROWS_PER_PART", rows_per_part)
    rng = np.random.default_rng(0)
    pool = [f"key{i}" for i in range(30)]
    shards = [rng.choice(pool, n).tolist() for n in (12, 0, 9, 15)]
    shards[2][3] = "collides"  # a key of its own whose hash another key has
    run = Folder(str(tmp_path))
    for s, keys in enumerate(shards):
        hashes = schema.key_hashes(keys)
        hashes[[i for i, k in enumerate(keys) if k == "collides"]] = schema.key_hashes(["key0"])
        write_rows(run, s, keys, hashes)
        ids = schema.sample_ids(s, np.arange(len(keys)))
        duplicates.write_hashes(run, schema.unit_name(s), hashes, ids)
    names = [f"/in/{s}.tar" for s in range(len(shards))]
    ctx = Context(run, SimpleNamespace(shards=names))
    parts = duplicates.part_units(ctx)
    assert len(parts) == (1 if rows_per_part > 36 else 6)
    for part in parts:
        duplicates.find_repeats(ctx, part)
    columns = [pa.chunked_array([keys], pa.string()) for keys in shards]
    found = [duplicates.shard_notes(run, schema.unit_name(s), column, names)
             for s, column in enumerate(columns)]  # fmt: skip
    assert found == expected_notes(shards, names)
    assert not any("collides" in note for notes in found for note in notes.values())
    assert sum(len(n) for n in found) > 10
