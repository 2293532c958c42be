"""Inputs are known by their content, not only their path (issue 8, item 5), and identical
embeddings rank the same on every machine (item 10)."""

from __future__ import annotations

import os
import shutil

import faiss
import numpy as np
import pytest

from curation.errors import CurateError
from metrics.semdedup import semdedup
from pipelines.data_pruning.cluster import nearest_centroids
from shards.paths import check_unchanged, fingerprints
from tests.builders import write_shards
from tests.runs import output_files, run_prune


def _contents(out) -> dict[str, int]:
    folder = out / "_run" / "embed" / "content"
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("*.npy"))}


def test_a_shard_replaced_at_its_path_is_embedded_again(tmp_path, tiny_clip):
    shards = write_shards(tmp_path / "in", shards=2, per_shard=20, seed=1)
    other = write_shards(tmp_path / "other", shards=2, per_shard=20, seed=2)
    out = tmp_path / "out"
    run_prune(shards, out, tiny_clip)
    shutil.copy(other[1], shards[1])  # the same path, other images
    run_prune(shards, out, tiny_clip)
    fresh, mixed = tmp_path / "fresh", tmp_path / "mixed"  # the same names, embedded anew
    mixed.mkdir()
    run_prune([shutil.copy(shards[0], mixed), shutil.copy(other[1], mixed)], fresh, tiny_clip)
    assert output_files(out)["00001.tar"] == output_files(fresh)["00001.tar"]
    assert output_files(out)["decisions.parquet"] != b""
    assert len(_contents(out)) == 3  # the replaced shard has content of its own


def test_added_shards_embed_only_the_new_ones_and_batch_size_or_workers_embed_nothing(
    tmp_path, tiny_clip
):
    shards = write_shards(tmp_path / "in", shards=3, per_shard=16)
    out = tmp_path / "out"
    run_prune(shards[:2], out, tiny_clip)
    before = _contents(out)
    run_prune([shards[2], *shards[:2]], out, tiny_clip)  # added, and at the front
    after = _contents(out)
    assert len(after) == 3 and all(after[name] == when for name, when in before.items())
    run_prune([shards[2], *shards[:2]], out, tiny_clip, batch_size=5, workers=2)
    assert _contents(out) == after


def test_a_shard_changed_during_a_run_is_refused(tmp_path):
    (shard,) = write_shards(tmp_path / "in", shards=1, per_shard=4)
    (seen,) = fingerprints([str(shard)])
    check_unchanged(str(shard), seen, {})
    os.utime(shard, ns=(1, 1))
    with pytest.raises(CurateError, match="changed since this run started"):
        check_unchanged(str(shard), seen, {})


@pytest.mark.parametrize("threads", [1, 2])
def test_identical_embeddings_get_identical_distances_whatever_the_batch(threads):
    rng = np.random.default_rng(0)
    centroids = rng.normal(size=(50, 64)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    twin = rng.normal(size=64)
    twin = (twin / np.linalg.norm(twin)).astype(np.float16)
    faiss.omp_set_num_threads(threads)
    found = []
    for batch in (7, 300):
        others = rng.normal(size=(batch, 64)).astype(np.float16)
        embeddings = np.concatenate([others, twin[None]])
        cluster, distance = nearest_centroids(embeddings, centroids)
        found.append((cluster[-1], distance[-1]))
    assert found[0] == found[1]  # bit for bit
    ids = np.array([9, 4], dtype=np.int64)  # the same embedding in two shards
    result = semdedup(np.stack([twin, twin]), np.array([found[0][1], found[1][1]]), ids, 0.07)
    assert result.duplicate.tolist() == [True, False]  # the smaller id survives
