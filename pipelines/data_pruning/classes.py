"""Kept and pruned per class, with the class names, and a warning for a class left with much
less than its share: what summary.json, the console and the report show, with --per-class or
without it (a global ranking can empty a class)."""

from __future__ import annotations

import posixpath

from curation.errors import CurateError
from curation.storage import Folder
from shards.folder import CLASS_INDEX

LOW_SHARE = 0.5  # a class keeping less than this fraction of its proportional share is flagged
UNLABELLED = -1


def class_names(shards: list[str], storage_options: dict | None = None) -> dict[int, str]:
    """Label -> name from `classes.json` (name -> index, as `curate shards` writes it) beside
    the first input shard; empty when there is none."""
    return folder_class_names(Folder(posixpath.dirname(shards[0]) or ".", storage_options))


def folder_class_names(folder: Folder) -> dict[int, str]:
    """Label -> name from the `classes.json` in `folder` (an input's, or the output's copy);
    empty when there is none or it is not one."""
    try:
        if not folder.exists(CLASS_INDEX):
            return {}
        return {int(index): str(name) for name, index in folder.read_json(CLASS_INDEX).items()}
    except (CurateError, OSError, ValueError, AttributeError, TypeError):
        return {}


def class_table(tallies: list[dict], names: dict[int, str]) -> list[dict]:
    """Per label (unlabelled candidates as label -1) over the shards' tallies: candidates,
    kept, pruned, the class's proportional share of the kept total and the fraction of that
    share it kept."""
    totals: dict[int, list[int]] = {}
    for shard in tallies:
        for label, kept, pruned in zip(*(shard[k].tolist() for k in ("labels", "kept", "pruned")),
                                       strict=True):  # fmt: skip
            total = totals.setdefault(label, [0, 0])
            total[0] += kept
            total[1] += pruned
    candidates = sum(k + p for k, p in totals.values())
    kept_all = sum(k for k, _ in totals.values())
    rows = []
    for label in sorted(totals):
        kept, pruned = totals[label]
        share = kept_all * (kept + pruned) / candidates
        rows.append({"label": label, "name": _name(label, names), "candidates": kept + pruned,
                     "kept": kept, "pruned": pruned, "share": round(share, 3),
                     "kept_of_share": round(kept / share, 4) if share else None})  # fmt: skip
    return rows


def _name(label: int, names: dict[int, str]) -> str:
    return "(no label)" if label == UNLABELLED else names.get(label, str(label))


def class_warnings(table: list[dict]) -> list[str]:
    """A line for every labelled class that kept nothing, or under `LOW_SHARE` of its share."""
    return [
        f"class {row['name']} (label {row['label']}) kept {row['kept']} of {row['candidates']}: "
        f"{row['kept_of_share']:.2f} of its proportional share ({row['share']:.1f})"
        for row in table
        if row["label"] != UNLABELLED and row["share"]
        and (row["kept"] == 0 or row["kept"] < LOW_SHARE * row["share"])
    ]  # fmt: skip
