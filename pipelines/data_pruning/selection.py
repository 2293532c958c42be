"""The plan of a selection: passes over the shards that turn per-shard counts, sums and
histograms into global thresholds and quotas, in memory that does not grow with the samples.

A `Source` yields every shard's `ShardSamples` in shard order, afresh on each call (the run's
per-shard files, or shards held in memory for a sweep). A `ShardView` is one shard with the
rows the current step decides about: the candidates, then those the filter let through, in
groups (the class with --per-class, times the criterion's own groups). A criterion ranks with
`Selection.top_k` (exact top-k per group, ties by id: `metrics.topk`) and decides each shard by
applying the cutoff to that shard's view with the same ranking function, so that the plan and
the per-shard decisions cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from metrics.topk import Cutoff, top_k
from pipelines.data_pruning.samples import ShardSamples

Source = Callable[[], Iterable[ShardSamples]]
# A view's ranked rows (ascending), each row's group and its rank key (smaller first)
Ranking = Callable[["ShardView"], tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass
class ShardView:
    """One shard's samples and the rows the current step decides about (ascending);
    `classes`: the labels of the class groups, in group order (None: one group)."""

    samples: ShardSamples
    rows: np.ndarray
    classes: np.ndarray | None = None

    @property
    def index(self) -> int:
        return self.samples.index

    def groups(self, rows: np.ndarray, sub: np.ndarray | None = None,
               subgroups: int = 1) -> np.ndarray:  # fmt: skip
        """Each row's group: its class slot (with --per-class) times `subgroups`, plus its
        group `sub` within the class (0 by default)."""
        base = np.zeros(len(rows), np.int64) if sub is None else sub.astype(np.int64)
        if self.classes is None:
            return base
        return np.searchsorted(self.classes, self.samples.label[rows]) * subgroups + base

    def cut(self, cutoff: Cutoff, ranking: Ranking) -> tuple[np.ndarray, np.ndarray]:
        """The ranked rows, and which of them are within the cutoff."""
        rows, group, key = ranking(self)
        return rows, cutoff.mask(self.index, group, key)


class Selection:
    """The planning side: every call streams the shards again. `narrowing`, once set, keeps
    in each view the rows the filter let through."""

    def __init__(self, source: Source, centroids: Callable[[str], np.ndarray],
                 classes: np.ndarray | None = None):  # fmt: skip
        self.source = source
        self.centroids = centroids  # a clustering's centroids, by the folder they are in
        self.classes = classes
        self.narrowing: Callable[[ShardView], np.ndarray] | None = None

    @property
    def groups(self) -> int:
        """Class groups: one per class with --per-class, else one."""
        return 1 if self.classes is None else len(self.classes)

    def views(self) -> Iterator[ShardView]:
        for samples in self.source():
            view = ShardView(samples, samples.candidates, self.classes)
            if self.narrowing is not None:
                view.rows = self.narrowing(view)
            yield view

    def total(self, count: Callable[[ShardView], Any]) -> Any:
        """The sum over shards of `count(view)` (a number or an array)."""
        return sum((count(view) for view in self.views()), start=0)

    def extreme(self, values: Callable[[ShardView], np.ndarray],
                largest: bool) -> float | None:  # fmt: skip
        """The largest (or smallest) of `values(view)` over all shards; None when empty."""
        found = [float(part.max() if largest else part.min())
                 for part in map(values, self.views()) if len(part)]  # fmt: skip
        if not found:
            return None
        return max(found) if largest else min(found)

    def top_k(self, ranking: Ranking, k: np.ndarray) -> Cutoff:
        """The first `k[g]` ranked rows of every group, ties by id."""

        def passes():
            for view in self.views():
                _, group, key = ranking(view)
                yield group, key

        return top_k(passes, np.asarray(k, dtype=np.int64))


def add_counts(total: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The sum of two count arrays (index: a label), the shorter padded with zeros."""
    total = np.pad(total, (0, max(0, len(counts) - len(total))))
    total[: len(counts)] += counts
    return total
