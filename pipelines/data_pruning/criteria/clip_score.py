"""DataComp's CLIP-score filter (Gadre et al. 2023), applied before the criterion: the cosine
similarity of a sample's image and caption embeddings (same open_clip model); keep those at or
above a threshold (`clip-score:T`) or the top fraction (`clip-score-top:F`)."""

from __future__ import annotations

import math

import numpy as np

from metrics.selection import rank_keep
from pipelines.data_pruning import schema
from pipelines.data_pruning.criteria.base import Filter
from pipelines.data_pruning.decision import Detail
from pipelines.data_pruning.samples import shard_array

THRESHOLD, TOP = "clip-score", "clip-score-top"


def _read(run, unit) -> np.ndarray:
    return schema.read_rows(run, unit, ["clip_score"])["clip_score"].to_numpy()


def load_clip_score(run, units, rows) -> np.ndarray:
    return shard_array(run, units, rows, _read, np.float64)


def columns(config) -> dict:
    return {"clip_score": load_clip_score}


def check(kind: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    if kind == TOP and not 0 < value <= 1:
        raise ValueError("the kept fraction must be in (0, 1]")


def keep_captioned(samples, cfg, d, rows) -> np.ndarray:
    kind, value = cfg.filter.split(":")
    threshold = float(value)
    scores = samples["clip_score"][rows]
    captioned = ~np.isnan(scores)
    if kind == TOP:
        top = rank_keep(np.where(captioned, scores, -np.inf), samples.ids[rows],
                        round(threshold * len(rows)), highest=True)  # fmt: skip
        passed = top & captioned
        threshold = float(scores[passed].min()) if passed.any() else math.inf
    else:
        passed = captioned & (scores >= threshold)
    below = rows[captioned & ~passed]
    d.mark(rows[~captioned], "no_caption")
    d.mark(below, "below_clip_threshold")
    d.details.append(Detail(below, f"clip score {{:.4f}} < {threshold:.4f}",
                            samples["clip_score"][below]))  # fmt: skip
    d.notes["filter"] = {"filter": cfg.filter, "threshold": threshold,
                         "passed": int(passed.sum()), "candidates": len(rows)}  # fmt: skip
    return rows[passed]


FILTER = Filter(
    names=(THRESHOLD, TOP),
    meaning="CLIP score, the cosine similarity of image and caption embeddings: "
    "clip-score:T keeps those >= T, clip-score-top:F the top fraction F",
    rule=keep_captioned,
    reasons=("no_caption", "below_clip_threshold"),
    check=check,
    columns=columns,
    needs_captions=True,
)
