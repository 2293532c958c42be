"""`--holdout`: samples set aside for validation by a hash of their key are never clustered,
scored, selected or written, and the same keys are held out however the data is sharded."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from pipelines.data_pruning import schema
from tests.builders import write_shards
from tests.runs import decisions, run_prune, samples_by_key


def _heldout_keys(out) -> set[str]:
    table = decisions(out)
    return set(table[table["status"] == "heldout"]["key"])


def test_heldout_samples_enter_no_stage_and_no_output(tmp_path, tiny_clip):
    shards = write_shards(tmp_path / "in", shards=2, per_shard=40)
    out = tmp_path / "out"
    summary = run_prune(shards, out, tiny_clip, metric="el2n", holdout=0.25, el2n_models=2)
    table = decisions(out)
    heldout = table[table["status"] == "heldout"]
    assert 10 <= len(heldout) <= 30  # about a quarter of 80
    assert summary["heldout_samples"] == len(heldout)
    assert summary["input_samples"] == sum(
        summary[f"{s}_samples"] for s in ("kept", "pruned", "failed", "heldout")
    )
    candidates = summary["kept_samples"] + summary["pruned_samples"]
    assert summary["kept_samples"] == round(0.5 * candidates)  # the rate counts candidates only
    assert not heldout["kept"].any() and set(heldout["reason"]) == {"heldout"}
    ids = set(heldout["id"])
    run = out / "_run"
    trained_on = set(np.load(run / "cluster" / "training_ids.npy").tolist())
    assert not trained_on & ids
    for shard, unit in zip(shards, ("00000", "00001"), strict=True):
        scores = np.load(run / "el2n" / f"{unit}.npy")
        rows = table[table["shard"] == str(shard)]
        assert np.isnan(scores[rows["status"].to_numpy() == "heldout"]).all()
        assert not set(samples_by_key(out / shard.name)) & set(heldout["key"])


def test_the_split_follows_keys_not_shards(tmp_path, tiny_clip):
    two = write_shards(tmp_path / "two", shards=2, per_shard=30, seed=5)
    three = write_shards(tmp_path / "three", shards=3, per_shard=20, seed=5)  # same samples
    assert [k for s in two for k in samples_by_key(s)] == [
        k for s in three for k in samples_by_key(s)
    ]
    run_prune(two, tmp_path / "a", tiny_clip, holdout=0.3, clusters=3)
    run_prune(three, tmp_path / "b", tiny_clip, holdout=0.3, clusters=3)
    assert _heldout_keys(tmp_path / "a") == _heldout_keys(tmp_path / "b")
    keys = pq.read_table(tmp_path / "a" / "decisions.parquet")["key"].to_pylist()
    expected = {k for k, h in zip(keys, schema.key_hashes(keys), strict=True) if h < 0.3 * 2**64}
    assert _heldout_keys(tmp_path / "a") == expected
