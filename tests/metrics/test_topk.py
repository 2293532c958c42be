"""Exact top-k per group over sharded columns, against numpy's sort of all rows at once."""

import math
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics.topk import Cutoff, hash_rank, key_value, order_key, top_k


def shards_of(groups, keys, sizes):
    """A pass over the rows split into consecutive shards of `sizes`."""
    bounds = np.cumsum([0, *sizes])

    def passes():
        for start, end in pairwise(bounds):
            yield groups[start:end], keys[start:end]

    return passes


def expected_mask(groups, scores, k, descending=False):
    """The first k[g] rows of every group by numpy's lexsort: score, then row (= id) order."""
    mask = np.zeros(len(scores), dtype=bool)
    for g in range(len(k)):
        rows = np.flatnonzero(groups == g)
        ranked = -scores[rows] if descending else scores[rows]
        mask[rows[np.lexsort((rows, ranked))[: k[g]]]] = True
    return mask


def decided(cutoff: Cutoff, groups, keys, sizes):
    bounds = np.cumsum([0, *sizes])
    parts = [cutoff.mask(i, groups[a:b], keys[a:b]) for i, (a, b) in enumerate(pairwise(bounds))]
    return np.concatenate([*parts, np.zeros(0, bool)])


values = st.sampled_from([0.0, -0.0, 1.5, -2.25, 0.1, math.nan, math.inf, -math.inf, 3.0])


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    groups=st.integers(1, 5),
    descending=st.booleans(),
    counters=st.sampled_from([2, 64, 1 << 22]),
    gather=st.sampled_from([0, 3, 1 << 20]),
)
def test_matches_a_sort_of_all_rows(data, groups, descending, counters, gather):
    sizes = data.draw(st.lists(st.integers(0, 12), min_size=1, max_size=8))
    n = sum(sizes)
    score = st.one_of(values, st.floats(-4, 4, width=32))
    scores = np.array(data.draw(st.lists(score, min_size=n, max_size=n)), dtype=float)
    group = np.array(data.draw(st.lists(st.integers(0, groups - 1), min_size=n, max_size=n)),
                     dtype=np.int64)  # fmt: skip
    k = np.array(data.draw(st.lists(st.integers(0, n + 2), min_size=groups, max_size=groups)))
    keys = order_key(scores, descending)
    cutoff = top_k(shards_of(group, keys, sizes), k, counters=counters, gather=gather)
    expected = expected_mask(group, scores, k, descending)
    np.testing.assert_array_equal(decided(cutoff, group, keys, sizes), expected)
    sizes_of = np.bincount(group, minlength=groups)
    np.testing.assert_array_equal(cutoff.kept, np.minimum(k, sizes_of))
    for g in range(groups):  # the last kept score, exactly
        kept = scores[expected & (group == g)]
        last = cutoff.last(g, descending)
        if len(kept) == 0:
            assert last is None
        else:
            worst = np.sort(-kept if descending else kept)[-1]
            assert np.isnan(last) if np.isnan(worst) else last == (-worst if descending else worst)


def test_ties_beyond_every_bit_are_counted_shard_by_shard():
    """Equal keys in many shards, with no gathering: the tie pass picks shard and count."""
    sizes = [3, 0, 4, 5]
    keys = order_key(np.ones(12))
    group = np.zeros(12, dtype=np.int64)
    cutoff = top_k(shards_of(group, keys, sizes), np.array([6]), gather=0)
    assert cutoff.shard.tolist() == [2] and cutoff.take.tolist() == [3]
    np.testing.assert_array_equal(decided(cutoff, group, keys, sizes), np.arange(12) < 6)


def test_many_passes_with_few_counters():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal(5000)
    group = rng.integers(0, 7, 5000)
    k = np.array([0, 1, 100, 700, 5000, 3, 711])
    sizes = rng.multinomial(5000, np.ones(13) / 13)
    keys = order_key(scores, descending=True)
    passes = []

    def counting():
        passes.append(1)
        return shards_of(group, keys, sizes)()

    cutoff = top_k(counting, k, counters=8, gather=10)
    assert len(passes) > 10  # 1 or 2 bits a pass
    np.testing.assert_array_equal(decided(cutoff, group, keys, sizes),
                                  expected_mask(group, scores, k, descending=True))  # fmt: skip


def test_cutoff_round_trips_through_json():
    keys = order_key(np.array([0.5, 0.25, 0.75, 0.25]))
    cutoff = top_k(shards_of(np.zeros(4, np.int64), keys, [2, 2]), np.array([2]))
    again = Cutoff.from_json(cutoff.to_json())
    assert again.to_json() == cutoff.to_json() and again.bound.dtype == np.uint64
    assert again.last(0) == 0.25 and again.take.tolist() == [1] and again.shard.tolist() == [1]


@pytest.mark.parametrize("value", [0.0, -1e-300, 1e300, -math.inf, math.inf, 0.7, -0.7])
def test_key_value_inverts_order_key(value):
    for descending in (False, True):
        assert key_value(int(order_key(np.array([value]), descending)[0]), descending) == value


def test_hash_rank_is_uniform_seeded_and_shard_independent():
    ids = np.arange(200_000, dtype=np.int64)
    ranks = hash_rank(ids, seed=3)
    assert len(np.unique(ranks)) == len(ids)
    uniform = ranks / 2.0**64
    counts = np.histogram(uniform, bins=10, range=(0, 1))[0]
    assert (np.abs(counts - 20_000) < 600).all()  # about 4.5 standard deviations
    np.testing.assert_array_equal(hash_rank(ids[::7], seed=3), ranks[::7])
    assert not np.array_equal(hash_rank(ids, seed=4), ranks)
    assert np.corrcoef(ranks[:-1] / 2.0**64, ranks[1:] / 2.0**64)[0, 1] < 0.01
