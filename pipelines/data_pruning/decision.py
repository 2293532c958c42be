"""What a selection decides for one shard's samples: kept or not, why, and the words that
explain it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FAILED, HELDOUT = "failed", "heldout"  # the reasons every decision can give


@dataclass
class Decision:
    """Row-aligned with a shard's samples: `keep`, each row's reason (`codes` into `table`),
    the score the metric ranked by and the detail of the rows that have one."""

    keep: np.ndarray  # bool
    codes: np.ndarray  # uint8: index in `table`
    score: np.ndarray  # float64: the score the metric ranked by
    detail: np.ndarray  # object: str or None
    table: tuple[str, ...]  # every reason a decision can give, FAILED first

    @classmethod
    def empty(cls, n: int, table: tuple[str, ...]) -> Decision:
        """Nothing kept, every row failed until a rule says otherwise."""
        return cls(np.zeros(n, dtype=bool), np.zeros(n, dtype=np.uint8), np.full(n, np.nan),
                   np.full(n, None, dtype=object), table)  # fmt: skip

    @property
    def reason(self) -> np.ndarray:
        """Every row's reason (object array of str)."""
        return np.array(self.table, dtype=object)[self.codes]

    def mark(self, rows: np.ndarray, reason: str) -> None:
        self.codes[rows] = self.table.index(reason)

    def settle(self, rows: np.ndarray, keep: np.ndarray, kept: str, pruned: str) -> None:
        """Record a keep/prune outcome with its reasons for `rows`."""
        self.keep[rows[keep]] = True
        self.mark(rows[keep], kept)
        self.mark(rows[~keep], pruned)

    def explain(self, rows: np.ndarray, texts: str | list[str] | np.ndarray) -> None:
        """The detail of `rows`: one text for all, or one per row."""
        self.detail[rows] = texts if isinstance(texts, str) else np.asarray(texts, dtype=object)
