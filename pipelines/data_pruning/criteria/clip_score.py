"""DataComp's CLIP-score filter (Gadre et al. 2023), applied before the criterion: the cosine
similarity of a sample's image and caption embeddings (same open_clip model); keep those at or
above a threshold (`clip-score:T`) or the top fraction (`clip-score-top:F`: the highest scores
of all candidates, ties by id)."""

from __future__ import annotations

import math

import numpy as np

from metrics.topk import Cutoff, order_key
from pipelines.data_pruning import schema
from pipelines.data_pruning.criteria.base import Filter
from pipelines.data_pruning.samples import column_loader

THRESHOLD, TOP = "clip-score", "clip-score-top"


def _read(run, unit) -> np.ndarray:
    return schema.read_rows(run, unit, ["clip_score"])["clip_score"].to_numpy()


def columns(config) -> dict:
    return {"clip_score": column_loader("clip_score", _read)}


def check(kind: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    if kind == TOP and not 0 < value <= 1:
        raise ValueError("the kept fraction must be in (0, 1]")


def _scores(view) -> np.ndarray:
    return view.samples["clip_score"][view.rows]


def _captioned_first(view) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every candidate in one group, the highest score first; no caption ranks last."""
    scores = _scores(view)
    key = order_key(np.where(np.isnan(scores), -np.inf, scores), descending=True)
    return view.rows, np.zeros(len(view.rows), np.int64), key


def plan(selection, cfg, candidates: int, notes: dict) -> tuple[dict, int]:
    kind, value = cfg.filter.split(":")
    threshold = float(value)
    record: dict = {"kind": kind, "threshold": threshold}
    if kind == TOP:
        top = round(threshold * candidates)
        cutoff = selection.top_k(_captioned_first, np.array([top]))
        captioned = selection.total(lambda view: int((~np.isnan(_scores(view))).sum()))
        passed = min(top, captioned)
        if passed == 0:
            threshold = math.inf
        elif top <= captioned:  # the last one kept is the lowest that passed
            threshold = cutoff.last(0, descending=True)
        else:
            threshold = selection.extreme(lambda view: _scores(view)[~np.isnan(_scores(view))],
                                          largest=False)  # fmt: skip
        record.update(threshold=threshold, cutoff=cutoff.to_json())
    else:
        passed = selection.total(lambda view: int(np.count_nonzero(_scores(view) >= threshold)))
    notes["filter"] = {"filter": cfg.filter, "threshold": threshold, "passed": passed,
                       "candidates": candidates}  # fmt: skip
    return record, passed


def passes(record: dict, view, cfg) -> np.ndarray:
    scores = _scores(view)
    captioned = ~np.isnan(scores)
    if record["kind"] == TOP:
        return view.cut(Cutoff.from_json(record["cutoff"]), _captioned_first)[1] & captioned
    return captioned & (scores >= record["threshold"])


def mark(record: dict, view, cfg, d, passed: np.ndarray) -> None:
    scores = _scores(view)
    captioned = ~np.isnan(scores)
    below = captioned & ~passed
    d.mark(view.rows[~captioned], "no_caption")
    d.mark(view.rows[below], "below_clip_threshold")
    threshold = record["threshold"]
    d.explain(view.rows[below], [f"clip score {s:.4f} < {threshold:.4f}" for s in scores[below]])


FILTER = Filter(
    names=(THRESHOLD, TOP),
    meaning="CLIP score, the cosine similarity of image and caption embeddings: "
    "clip-score:T keeps those >= T, clip-score-top:F the top fraction F",
    plan=plan,
    passes=passes,
    mark=mark,
    reasons=("no_caption", "below_clip_threshold"),
    check=check,
    columns=columns,
    needs_captions=True,
)
