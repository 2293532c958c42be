"""The streamed selection (a plan from passes over shards, then each shard on its own) decides
exactly as the in-memory rules of 0.1.0 (`reference_rules`) on random inputs: many shards of
random sizes, empty shards, ties, NaNs, failed and held-out rows, several clusters, every
criterion, the CLIP-score filter and --per-class."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import metrics.topk
from curation.errors import CurateError
from metrics.quotas import QuotaError
from pipelines.data_pruning.config import PruneConfig
from pipelines.data_pruning.decide import decide, decide_shard
from pipelines.data_pruning.samples import ShardSamples
from pipelines.data_pruning.selection import Selection
from tests.pipelines.data_pruning import reference_rules

DIM = 4


def columns(rng: np.random.Generator, sizes: list[int], clusters: int, labelled: bool):
    """Random columns with many ties: (per-shard samples, the same columns whole)."""
    n = sum(sizes)
    shard = np.repeat(np.arange(len(sizes)), sizes)
    position = np.concatenate([np.arange(s) for s in sizes] + [np.zeros(0, int)])
    ids = (shard.astype(np.int64) << 32) | position
    valid = rng.random(n) > 0.1
    heldout = valid & (rng.random(n) < 0.1)
    candidate = valid & ~heldout
    label = rng.integers(0, 3, n)
    if not labelled:
        label[rng.random(n) < 0.15] = -1

    def tied(values):  # a few distinct values, so that ranks tie often
        return rng.choice(values, n)

    cluster = np.where(valid, rng.integers(0, clusters, n), -1).astype(np.int32)
    distance = np.where(valid, tied([0.1, 0.25, 0.25000001, 0.5, 0.7]), np.nan)
    dbp_cluster = np.where(valid, rng.integers(0, clusters, n), -1).astype(np.int32)
    dbp_distance = np.where(valid, tied([0.2, 0.3, 0.4, 0.6]), np.nan)
    similarity = tied(np.float32([0.5, 0.8, 0.9, 0.95, 0.99, -np.inf])).astype(np.float64)
    similarity[~candidate] = -np.inf
    keys = np.array([f"k{i}" for i in range(n)], dtype=object)
    nearest_key = np.where(np.isfinite(similarity), keys[rng.integers(0, max(n, 1), n)], None)
    el2n = np.where(candidate & (label >= 0), tied([0.1, 0.2, 0.2, 0.9, 1.3]), np.nan)
    clip = np.where(rng.random(n) < 0.2, np.nan, tied([0.1, 0.2, 0.3, 0.35]))
    centroids = rng.standard_normal((clusters, DIM))
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    whole = reference_rules.Columns(
        ids, valid, heldout, label, cluster, distance, centroids, dbp_cluster, dbp_distance,
        centroids[::-1].copy(), similarity, nearest_key, el2n, clip
    )  # fmt: skip
    shards, start = [], 0
    for index, size in enumerate(sizes):
        part = slice(start, start + size)
        start += size
        extra = {"similarity": similarity[part], "nearest_key": nearest_key[part],
                 "dbp_cluster": dbp_cluster[part], "dbp_distance": dbp_distance[part],
                 "el2n": el2n[part], "clip_score": clip[part]}  # fmt: skip
        shards.append(ShardSamples(index, ids[part], valid[part], heldout[part], label[part],
                                   cluster[part], distance[part], extra))  # fmt: skip
    return shards, whole


def streamed(shards, whole, cfg):
    folders = {"cluster": whole.centroids, "dbp_cluster": whole.dbp_centroids}
    plan = decide(Selection(lambda: iter(shards), folders.__getitem__), cfg)
    plan = json.loads(json.dumps(plan))  # as select_plan writes it and select reads it
    return plan, [decide_shard(plan, s, cfg) for s in shards]


def config(metric: str, clusters: int, **options) -> PruneConfig:
    return PruneConfig(shards=["a.tar"], output="/tmp/out", metric=metric, clusters=clusters,
                       neighbors=2, **options)  # fmt: skip


def assert_same(plan, decisions, expected, cfg, whole):
    keep = np.concatenate([d.keep for d in decisions])
    np.testing.assert_array_equal(keep, expected.keep)
    np.testing.assert_array_equal(np.concatenate([d.reason for d in decisions]), expected.reason)
    np.testing.assert_array_equal(np.concatenate([d.score for d in decisions]), expected.score)
    assert np.concatenate([d.detail for d in decisions]).tolist() == expected.detail.tolist()
    if not cfg.per_class:
        assert plan["notes"] == json.loads(json.dumps(expected.notes))
    table = whole.dbp_cluster if cfg.metric == "dbp" else whole.cluster
    kept = np.bincount(table[keep], minlength=cfg.clusters)
    filled = [{**row, "kept": int(kept[row["cluster"]])} for row in plan["clusters"]]
    assert filled == json.loads(json.dumps(expected.clusters))


def check(rng_seed, sizes, clusters, metric, per_class, options, small_passes, monkeypatch):
    if small_passes:  # 1 to 4 bits a pass, and a boundary rarely small enough to gather
        monkeypatch.setattr(metrics.topk, "COUNTERS", 16)
        monkeypatch.setattr(metrics.topk, "GATHER", 2)
    rng = np.random.default_rng(rng_seed)
    shards, whole = columns(rng, sizes, clusters, labelled=per_class)
    cfg = config(metric, clusters, per_class=per_class, **options)
    try:
        expected = reference_rules.decide(whole, cfg)
    except (ValueError, QuotaError):
        with pytest.raises(CurateError):
            streamed(shards, whole, cfg)
        return
    plan, decisions = streamed(shards, whole, cfg)
    assert_same(plan, decisions, expected, cfg, whole)


FILTERS = st.sampled_from([None, "clip-score:0.2", "clip-score-top:0.6", "clip-score-top:1"])
RATES = st.floats(0.05, 0.95)
SIZES = st.lists(st.integers(0, 25), min_size=1, max_size=7)
COMMON = dict(seed=st.integers(0, 10**6), sizes=SIZES, clusters=st.integers(1, 4),
              per_class=st.booleans(), small_passes=st.booleans())  # fmt: skip
OPTIONS = {
    "prototypicality": st.fixed_dictionaries(
        {"rate": RATES, "filter": FILTERS, "keep": st.sampled_from(["hard", "easy"])}),
    "random": st.fixed_dictionaries({"rate": RATES, "filter": FILTERS, "seed": st.integers(0, 9)}),
    "semdedup": st.fixed_dictionaries(
        {"rate": RATES, "filter": FILTERS, "eps": st.sampled_from([None, 0.06, 0.15, 0.6])}),
    "dbp": st.fixed_dictionaries(
        {"rate": RATES, "filter": FILTERS, "eps": st.sampled_from([None, 0.06, 0.15, 0.6]),
         "tau": st.sampled_from([0.1, 0.5]), "balance": st.sampled_from([0.0, 0.5])}),
    "el2n": st.fixed_dictionaries(
        {"rate": RATES, "filter": FILTERS, "el2n_offset": st.sampled_from([0.0, 0.1, 0.3])}),
    "ccs": st.fixed_dictionaries(
        {"rate": RATES, "filter": FILTERS, "seed": st.integers(0, 9),
         "ccs_score": st.sampled_from(["prototypicality", "el2n"]),
         "ccs_cutoff": st.sampled_from([None, 0.0, 0.2, 0.5])}),
}  # fmt: skip
PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip


@pytest.mark.parametrize("metric", list(OPTIONS))
@PROPERTY
@given(data=st.data())
def test_streamed_decisions_equal_the_in_memory_rule(metric, data, monkeypatch):
    drawn = data.draw(st.fixed_dictionaries(COMMON))
    options = data.draw(OPTIONS[metric])
    per_class = drawn["per_class"] and metric != "dbp"
    with monkeypatch.context() as patch:
        check(drawn["seed"], drawn["sizes"], drawn["clusters"], metric, per_class, options,
              drawn["small_passes"], patch)  # fmt: skip


def test_zero_one_and_every_sample_kept(monkeypatch):
    """The edges of the rate: the smallest rate keeps every candidate but one or none."""
    for rate in (0.01, 0.99):
        for metric in OPTIONS:
            check(3, [0, 5, 1, 0, 3], 2, metric, False, {"rate": rate}, False, monkeypatch)


def test_per_class_is_refused_with_unlabelled_candidates_and_for_dbp():
    shards, whole = columns(np.random.default_rng(1), [20, 20], 2, labelled=False)
    unlabelled = int((whole.label[whole.candidates] < 0).sum())
    with pytest.raises(CurateError, match=f"{unlabelled:,} of {len(whole.candidates):,} have"):
        streamed(shards, whole, config("prototypicality", 2, rate=0.5, per_class=True))
    shards, whole = columns(np.random.default_rng(1), [20, 20], 2, labelled=True)
    with pytest.raises(CurateError, match="does not apply to --metric dbp"):
        streamed(shards, whole, config("dbp", 2, rate=0.5, per_class=True))


def test_per_class_keeps_each_class_its_share():
    shards, whole = columns(np.random.default_rng(2), [40, 13, 0, 30], 3, labelled=True)
    plan, decisions = streamed(shards, whole, config("prototypicality", 3, rate=0.7,
                                                     per_class=True))  # fmt: skip
    keep = np.concatenate([d.keep for d in decisions])
    label = whole.label[whole.candidates]
    counts = np.bincount(label, minlength=3)
    kept = np.bincount(whole.label[keep], minlength=3)
    target = round(0.3 * len(label))
    assert kept.sum() == target and plan["classes"] == [0, 1, 2]
    assert (np.abs(kept - target * counts / counts.sum()) < 1).all()


def test_the_new_random_rule_differs_from_the_0_1_0_draw_only_in_which():
    """Same count, different samples: no streamed rule reproduces a global permutation."""
    shards, whole = columns(np.random.default_rng(4), [50, 50], 2, labelled=False)
    cfg = config("random", 2, rate=0.5)
    old = reference_rules.decide(whole, cfg, draw="rng")
    keep = np.concatenate([d.keep for d in streamed(shards, whole, cfg)[1]])
    assert keep.sum() == old.keep.sum() and (keep != old.keep).any()
