"""Exact top-k per group over sharded columns, ties by id, in memory independent of the rows.

Rows arrive shard by shard as `(group, key)` arrays: `key` is a uint64 rank key (smaller ranks
first; `order_key` maps float scores onto it as numpy sorts them) and each shard's rows come in
id order, so that "ties by id" is shard order, then order within the shard. `top_k` finds,
for every group, the `k[g]`-th row of that order by radix select: each pass streams the shards
once and histograms the next digit of the key among the rows still in the boundary bucket of
their group (16 bits a pass, fewer when many groups), until the rows left in the boundary
buckets are few enough to gather and sort, or the key is known to the last bit and the tied
rows are counted shard by shard. Memory: at most `COUNTERS` counters and `GATHER` gathered rows,
whatever the number of rows.

The result, a `Cutoff`, decides each shard on its own: a row is among the first `k[g]` of its
group when its key is below the `k[g]`-th key, or equal to it and its shard comes first, or it
is one of the first `take[g]` rows with that key in the cutoff's own shard.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

SIGN = np.uint64(1 << 63)
TOP = np.uint64((1 << 64) - 1)  # the key of NaN: after everything
COUNTERS = 1 << 22  # histogram counters per pass (all groups together)
GATHER = 1 << 20  # rows gathered at most to resolve the boundary in memory
DIGIT_BITS = 16

# A fresh pass over the shards: each item is one shard's (group int64, key uint64) rows.
Shards = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]


def order_key(values: np.ndarray, descending: bool = False) -> np.ndarray:
    """The uint64 image of float64 `values` in numpy's sort order, ascending (or descending):
    NaN last either way, -0.0 equal to 0.0, every other value its own key."""
    x = np.asarray(values, dtype=np.float64)
    x = (-x if descending else x) + 0.0  # + 0.0 turns -0.0 into 0.0
    bits = x.view(np.uint64)
    key = np.where(bits & SIGN, ~bits, bits | SIGN)
    key[np.isnan(x)] = TOP
    return key


def key_value(key: int, descending: bool = False) -> float:
    """The float64 whose `order_key` is `key` (NaN for the NaN key)."""
    if key == int(TOP):
        return float("nan")
    bits = np.uint64(key)
    raw = bits ^ SIGN if bits & SIGN else ~bits
    value = float(np.array([raw], dtype=np.uint64).view(np.float64)[0])
    return 0.0 - value if descending else value


_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijection of uint64 that scatters every input bit."""
    z = (z ^ (z >> np.uint64(30))) * _MIX[0]
    z = (z ^ (z >> np.uint64(27))) * _MIX[1]
    return z ^ (z >> np.uint64(31))


def hash_rank(ids: np.ndarray, seed: int) -> np.ndarray:
    """A uniform uint64 per (seed, id): a counter-based hash, so the same sample gets the same
    rank however the data are sharded. Keeping the `k` smallest is a uniform draw of `k`
    (`rank / 2**64` is its uniform variate in [0, 1))."""
    ids = np.asarray(ids, dtype=np.int64).view(np.uint64)
    salt = _mix64(np.array([seed], dtype=np.uint64) + _GOLDEN)
    return _mix64(ids ^ salt)


@dataclass(frozen=True)
class Cutoff:
    """Per group: `bound`, the key of the last row kept (0 when none); `shard`, that row's shard
    (-1 when none); `take`, how many rows with key `bound` that shard keeps; `kept`, the rows
    kept (`min(k, rows of the group)`)."""

    bound: np.ndarray  # uint64 (g,)
    shard: np.ndarray  # int64 (g,)
    take: np.ndarray  # int64 (g,)
    kept: np.ndarray  # int64 (g,)

    def mask(self, shard: int, group: np.ndarray, key: np.ndarray) -> np.ndarray:
        """Which of one shard's rows (in id order) are among the first `k` of their group."""
        bound, last = self.bound[group], self.shard[group]
        inside = (key < bound) | ((key == bound) & (shard < last))
        tied = np.flatnonzero((key == bound) & (last == shard))
        if len(tied):
            inside[tied[_rank_in_group(group[tied]) < self.take[group[tied]]]] = True
        return inside

    def last(self, group: int, descending: bool = False) -> float | None:
        """The score of a group's last kept row, for keys made by `order_key`."""
        return None if self.kept[group] == 0 else key_value(int(self.bound[group]), descending)

    def to_json(self) -> dict:
        return {"bound": self.bound.tolist(), "shard": self.shard.tolist(),
                "take": self.take.tolist(), "kept": self.kept.tolist()}  # fmt: skip

    @classmethod
    def from_json(cls, record: dict) -> Cutoff:
        counts = (np.array(record[name], dtype=np.int64) for name in ("shard", "take", "kept"))
        return cls(np.array(record["bound"], dtype=np.uint64), *counts)


def _rank_in_group(group: np.ndarray) -> np.ndarray:
    """Each row's index among the rows of its group, in the given order."""
    order = np.argsort(group, kind="stable")
    ranked = group[order]
    rank = np.empty(len(group), dtype=np.int64)
    rank[order] = np.arange(len(group)) - np.searchsorted(ranked, ranked, side="left")
    return rank


def top_k(shards: Shards, k: np.ndarray, counters: int | None = None,
          gather: int | None = None) -> Cutoff:  # fmt: skip
    """The cutoff of the first `k[g]` rows of every group g (see the module docstring);
    `counters` and `gather` default to `COUNTERS` and `GATHER`."""
    counters = COUNTERS if counters is None else counters
    gather = GATHER if gather is None else gather
    search = _Search(np.asarray(k, dtype=np.int64), counters)
    search.histogram(shards, first=True)
    while search.active.any():
        if int(search.count[search.active].sum()) <= gather:
            search.gather(shards)
        elif search.known == 64:
            search.count_ties(shards)
        else:
            search.histogram(shards)
    return Cutoff(search.bound, search.shard, search.take, search.kept)


class _Search:
    """The state of a radix select: per group, the key bits known so far (`prefix`, the top
    `known` bits), the rows in that bucket (`count`) and how many of them are still to keep
    (`need`). A group is active until its last kept row is found."""

    def __init__(self, k: np.ndarray, counters: int):
        groups = len(k)
        self.k, self.counters = k, counters
        self.prefix = np.zeros(groups, dtype=np.uint64)
        self.known = 0
        self.need = k.copy()
        self.count = np.zeros(groups, dtype=np.int64)
        self.active = k > 0
        self.bound = np.zeros(groups, dtype=np.uint64)
        self.shard = np.full(groups, -1, dtype=np.int64)
        self.take = np.zeros(groups, dtype=np.int64)
        self.kept = np.zeros(groups, dtype=np.int64)

    def _slots(self) -> tuple[np.ndarray, np.ndarray]:
        """Active groups, and each group's index among them (-1: not active)."""
        active = np.flatnonzero(self.active)
        slot = np.full(len(self.k), -1, dtype=np.int64)
        slot[active] = np.arange(len(active))
        return active, slot

    def _in_bucket(self, slot: np.ndarray, group: np.ndarray, key: np.ndarray) -> np.ndarray:
        """Rows of active groups whose key starts with their group's prefix."""
        rows = np.flatnonzero(slot[group] >= 0)
        if self.known:
            high = np.uint64(((1 << 64) - 1) ^ ((1 << (64 - self.known)) - 1))
            rows = rows[(key[rows] & high) == self.prefix[group[rows]]]
        return rows

    def histogram(self, shards: Shards, first: bool = False) -> None:
        """One pass: count the next digit of the key per active group, then narrow every
        group to the digit holding its `need`-th row."""
        active, slot = self._slots()
        bits = min(DIGIT_BITS, 64 - self.known,
                   max(1, (self.counters // max(1, len(active))).bit_length() - 1))  # fmt: skip
        shift = np.uint64(64 - self.known - bits)
        digits = 1 << bits
        hist = np.zeros(len(active) * digits, dtype=np.int64)
        for group, key in shards():
            rows = self._in_bucket(slot, group, key)
            digit = ((key[rows] >> shift) & np.uint64(digits - 1)).astype(np.int64)
            np.add.at(hist, slot[group[rows]] * digits + digit, 1)
        hist = hist.reshape(len(active), digits)
        if first:
            self.need[active] = np.minimum(self.k[active], hist.sum(axis=1))
            self.kept[active] = self.need[active]
            self.active &= self.need > 0
            keep = self.need[active] > 0
            active, hist = active[keep], hist[keep]
        cumulative = np.cumsum(hist, axis=1)
        digit = np.argmax(cumulative >= self.need[active, None], axis=1)
        picked = np.arange(len(active))
        self.need[active] -= cumulative[picked, digit] - hist[picked, digit]
        self.count[active] = hist[picked, digit]
        self.prefix[active] |= digit.astype(np.uint64) << shift
        self.known += bits

    def gather(self, shards: Shards) -> None:
        """The last pass: collect the rows of every boundary bucket and pick each group's
        `need`-th among them by (key, shard, order in the shard)."""
        active, slot = self._slots()
        parts = []
        for index, (group, key) in enumerate(shards()):
            rows = self._in_bucket(slot, group, key)
            parts.append((slot[group[rows]], key[rows], np.full(len(rows), index)))
        slots, keys, shard = (np.concatenate(p) for p in zip(*parts, strict=True))
        order = np.lexsort((keys, slots))  # stable: shard order, then order within the shard
        slots, keys, shard = slots[order], keys[order], shard[order]
        pick = np.searchsorted(slots, np.arange(len(active))) + self.need[active] - 1
        run = np.ones(len(slots), dtype=bool)
        run[1:] = (slots[1:] != slots[:-1]) | (keys[1:] != keys[:-1]) | (shard[1:] != shard[:-1])
        run_start = np.maximum.accumulate(np.where(run, np.arange(len(slots)), 0))
        self._resolve(active, keys[pick], shard[pick], pick - run_start[pick] + 1)

    def count_ties(self, shards: Shards) -> None:
        """The key is known to the last bit: count the tied rows shard by shard until each
        group's `need`-th is reached."""
        active, slot = self._slots()
        need = self.need[active].copy()
        shard = np.full(len(active), -1, dtype=np.int64)
        take = np.zeros(len(active), dtype=np.int64)
        for index, (group, key) in enumerate(shards()):
            rows = self._in_bucket(slot, group, key)
            tied = np.bincount(slot[group[rows]], minlength=len(active))
            reached = (shard < 0) & (tied >= need)
            shard[reached], take[reached] = index, need[reached]
            need[shard < 0] -= tied[shard < 0]
        self._resolve(active, self.prefix[active], shard, take)

    def _resolve(self, groups: np.ndarray, bound: np.ndarray, shard: np.ndarray,
                 take: np.ndarray) -> None:  # fmt: skip
        self.bound[groups], self.shard[groups], self.take[groups] = bound, shard, take
        self.active[groups] = False
