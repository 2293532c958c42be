"""Kept and pruned per class: --per-class gives every class its share; summary.json, the console
and the report show the table (with class names from classes.json) with --per-class or without,
and warn about a class left far below its share."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipelines.data_pruning.classes import class_table, class_warnings
from tests.builders import write_shards
from tests.runs import cli, cli_prune_args, curate, decisions, run_prune, samples_by_key, summary

NAMES = ["red", "green", "blue", "yellow", "purple"]


def labelled_shards(folder):
    shards = write_shards(folder, shards=3, per_shard=40)
    (folder / "classes.json").write_text(json.dumps({name: i for i, name in enumerate(NAMES)}))
    return shards


def test_per_class_keeps_each_class_its_share(tmp_path, tiny_clip):
    shards = labelled_shards(tmp_path / "in")
    result = run_prune(shards, tmp_path / "out", tiny_clip, rate=0.7, per_class=True)
    rows = {row["name"]: row for row in result["classes"]}
    assert set(rows) == set(NAMES) and result["class_warnings"] == []
    assert sum(row["kept"] for row in rows.values()) == result["kept_samples"] == 36
    for row in rows.values():
        assert abs(row["kept"] - row["share"]) < 1
        assert row["candidates"] == row["kept"] + row["pruned"]
    table = decisions(tmp_path / "out")
    for row in rows.values():  # the ranking holds within each class
        members = table[table["key"].isin(_keys_of(shards, row["label"]))]
        kept, pruned = members[members["kept"]]["score"], members[~members["kept"]]["score"]
        assert kept.min() >= pruned.max()


def _keys_of(shards, label: int) -> set[str]:
    return {key for path in shards for key, members in samples_by_key(path).items()
            if dict(members)[f"{key}.cls"] == str(label).encode()}  # fmt: skip


def test_the_table_without_per_class_and_on_the_console(tmp_path, tiny_clip):
    shards = labelled_shards(tmp_path / "in")
    output = curate(*cli_prune_args(shards, tmp_path / "out", tiny_clip))
    assert "per class" in output and "purple" in output
    rows = summary(tmp_path / "out")["classes"]
    assert [r["name"] for r in rows] == NAMES
    assert sum(r["candidates"] for r in rows) == 120


def test_per_class_with_unlabelled_candidates_is_one_clear_line(tmp_path, tiny_clip):
    shards = write_shards(tmp_path / "in", 1, 20, layout="img2dataset")
    import io
    import tarfile

    for path in shards:  # strip labels
        with tarfile.open(path) as tar:
            members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
        with tarfile.open(path, "w") as tar:
            for name, data in members:
                data = b"{}" if name.endswith(".json") else data
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    result = cli(*cli_prune_args(shards, tmp_path / "out", tiny_clip, "--per-class",
                                 "--clusters", "2"))  # fmt: skip
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "--per-class needs a label on every candidate: 20 of 20 have none" in result.stderr


def test_a_class_far_below_its_share_is_warned_about():
    def tally(labels, kept, pruned):
        return {"labels": np.array(labels), "kept": np.array(kept), "pruned": np.array(pruned)}

    counts = [tally([-1, 0, 1], [5, 30, 0], [5, 10, 20]), tally([0, 2], [10, 4], [10, 16])]
    rows = class_table(counts, {0: "cat", 1: "dog"})
    found = [(r["label"], r["name"], r["candidates"], r["kept"]) for r in rows]
    assert found == [(-1, "(no label)", 10, 5), (0, "cat", 60, 40), (1, "dog", 20, 0),
                     (2, "2", 20, 4)]  # fmt: skip
    shares = np.array([r["share"] for r in rows])
    assert shares.sum() == pytest.approx(49, abs=1e-3)
    assert shares[1] == pytest.approx(49 * 60 / 110, abs=1e-3)
    warnings = class_warnings(rows)
    assert len(warnings) == 2 and warnings[0].startswith("class dog (label 1) kept 0 of 20")
    assert "class 2 (label 2) kept 4 of 20: 0.45 of its proportional share (8.9)" in warnings[1]
