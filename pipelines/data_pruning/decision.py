"""What a selection decides for every sample: kept or not, why, and the words that explain it.

Compact, so that deciding over 10M samples fits in memory: a reason is stored as its index in
the reason table (`codes`), and a detail only for the rows that have one, with one text shared
by many rows where it can be (`details`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FAILED, HELDOUT = "failed", "heldout"  # the reasons every decision can give


@dataclass(frozen=True)
class Detail:
    """Words for some rows (ascending, so that a shard's share is a slice): `text`, one for
    all or one per row, in which "{}" stands for the row's entry of `values`; `related`, the
    id of the sample each row refers to (the earlier member a duplicate repeats)."""

    rows: np.ndarray
    text: str | np.ndarray
    values: np.ndarray | None = None
    related: np.ndarray | None = None

    def texts(self, first: int, last: int) -> list[str]:
        """The texts of `rows[first:last]`."""
        if isinstance(self.text, str):
            texts = [self.text] * (last - first)
        else:
            texts = self.text[first:last].tolist()
        if self.values is None:
            return texts
        values = self.values[first:last].tolist()
        return [text.format(value) for text, value in zip(texts, values, strict=True)]


@dataclass
class Decision:
    """Row-aligned with `Samples`: `keep`, each row's reason (`codes` into `table`) and the
    score the metric ranked by; `details` the words for the rows that have some; `clusters`
    the per-cluster table; `notes` what the report should state (effective eps, budgets...)."""

    keep: np.ndarray  # bool
    codes: np.ndarray  # uint8: index in `table`
    score: np.ndarray  # float64: the score the metric ranked by
    table: tuple[str, ...]  # every reason a decision can give, FAILED first
    details: list[Detail] = field(default_factory=list)
    clusters: list[dict] = field(default_factory=list)
    notes: dict = field(default_factory=dict)

    @classmethod
    def empty(cls, n: int, table: tuple[str, ...]) -> Decision:
        """Nothing kept, every row failed until a rule says otherwise."""
        return cls(np.zeros(n, dtype=bool), np.zeros(n, dtype=np.uint8), np.full(n, np.nan),
                   table)  # fmt: skip

    @property
    def reason(self) -> np.ndarray:
        """Every row's reason (object array of str), decoded on each access."""
        return self.reasons(slice(None))

    def reasons(self, rows: slice | np.ndarray) -> np.ndarray:
        return np.array(self.table, dtype=object)[self.codes[rows]]

    def mark(self, rows: np.ndarray, reason: str) -> None:
        self.codes[rows] = self.table.index(reason)

    def settle(self, rows: np.ndarray, keep: np.ndarray, kept: str, pruned: str) -> None:
        """Record a keep/prune outcome with its reasons for `rows`."""
        self.keep[rows[keep]] = True
        self.mark(rows[keep], kept)
        self.mark(rows[~keep], pruned)
