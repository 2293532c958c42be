"""A DataComp uid keep-list as the selection (`--keep-list FILE`): a sample whose json `uid` is
in the list is kept, every other one pruned, so a filter computed elsewhere (DataComp's
baselines, a notebook) reshards with the decode-free writer.

No model, no embeddings, no clusters: the shards' rows (key, uid, label) are read without
decoding an image, every sample is in cluster 0, and the `keep_list` stage matches each
shard's uids to the list (redone when the list is replaced at its path). `--rate` does not
apply (the list fixes what is kept), nor do the options that need embeddings (`--filter`,
`--embeddings`, `--holdout`) or class quotas (`--per-class`). A sample without a uid is
pruned (`no_uid`), as DataComp's resharder skips it; a first shard whose first samples carry
none is refused before the run starts."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from curation.fields import CLI
from curation.stage import Context, Lazy, Stage
from pipelines.data_pruning import schema
from pipelines.data_pruning.criteria.base import Criterion
from pipelines.data_pruning.keeplist import listed, read_keep_list, uid_pairs

NAME = "keep-list"
# Options a keep-list run refuses: it reads no embeddings and sets no rate
NOT_WITH_KEEP_LIST = ("rate", "filter", "embeddings", "holdout", "per_class")


_LISTS: dict[tuple, np.ndarray] = {}  # the list a worker read, by path and identity


def _keep_list(cfg) -> np.ndarray:
    """The list, read once per worker process (its shards share it)."""
    key = (cfg.keep_list, cfg.keep_list_identity)
    if key not in _LISTS:
        _LISTS.clear()
        _LISTS[key] = read_keep_list(cfg.keep_list, cfg.storage_options)
    return _LISTS[key]


def _match_params(config) -> dict:
    """The list's path and identity: a list replaced at its path is matched again."""
    return {"file": config.keep_list, "identity": config.keep_list_identity}


def scoring(config) -> list[Stage]:
    return [
        Stage(
            "keep_list",
            schema.shard_units,
            Lazy("pipelines.data_pruning.criteria.keep_list:match_shard"),
            _match_params,
        )
    ]


def match_shard(ctx: Context, unit: str) -> dict:
    """Whether each row of the shard has a uid, and whether the list holds it."""
    uids = schema.read_rows(ctx.run, unit, ["uid"])["uid"].to_pylist()
    has_uid = np.array([u is not None for u in uids], bool)
    found = np.zeros(len(uids), bool)
    found[has_uid] = listed(_keep_list(ctx.config), uid_pairs([u for u in uids if u]))
    schema.write_keep_list_match(ctx.run, unit, has_uid, found)
    return {"samples": len(uids), "listed": int(found.sum())}


def columns(config) -> dict:
    return {"keep_list": schema.read_keep_list_match}


def plan(selection, cfg, targets, notes: dict) -> dict:
    def counts(view):
        listed_rows, has_uid = (view.samples[c][view.rows] for c in ("listed", "has_uid"))
        return np.array([listed_rows.sum(), (~has_uid).sum()])

    kept, no_uid = (int(n) for n in selection.total(counts))
    notes["keep_list"] = {"file": cfg.keep_list, "uids": len(_keep_list(cfg)), "kept": kept,
                          "no_uid": no_uid}  # fmt: skip
    return {"clusters": []}


def apply(record: dict, view, cfg, d) -> None:
    rows = view.rows
    d.settle(rows, view.samples["listed"][rows], "in_keep_list", "not_in_keep_list")
    d.mark(rows[~view.samples["has_uid"][rows]], "no_uid")


CRITERION = Criterion(
    name=NAME,
    meaning="membership of the sample's json uid in the --keep-list file (DataComp's u8,u8 "
    "format): listed samples are kept, the others pruned, samples without a uid pruned as "
    "no_uid; no score",
    plan=plan,
    apply=apply,
    reasons=("in_keep_list", "not_in_keep_list", "no_uid"),
    options={
        "keep_list": (
            str | None,
            Field(
                None,
                description="A DataComp uid keep-list (.npy of u8,u8 or hex uids) as the "
                "selection: listed samples are kept; no model, no embeddings, no --rate.",
            ),
        ),
        "keep_list_identity": (
            str | None,
            Field(
                None,
                description="The keep-list's identity when the run started (size and mtime, "
                "or ETag).",
                json_schema_extra={CLI: False},
            ),
        ),
    },
    scoring=scoring,
    columns=columns,
    parameters=("keep_list",),
    embeds=False,
    per_class=False,
)
