"""What the report shows, read from the run directory: decisions, clusters, validation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from curation import rundir
from curation.storage import Folder
from pipelines.data_pruning import schema
from pipelines.data_pruning.classes import class_names as input_class_names
from pipelines.data_pruning.classes import folder_class_names
from pipelines.data_pruning.cluster_table import CLUSTER_COLUMNS
from pipelines.data_pruning.criteria import CRITERIA
from pipelines.data_pruning.criteria.semdedup import load_dedup
from pipelines.data_pruning.finished import FinishedRun


@dataclass
class ReportContent:
    run: FinishedRun
    decisions: pd.DataFrame  # one row per sample, with its label and the member it duplicates
    class_names: dict[int, str]  # label -> name, from classes.json
    counts: dict  # input, kept, pruned, failed, reasons
    summary: dict | None  # the output folder's summary.json
    clusters: pd.DataFrame
    clustering: dict | None
    validation: dict | None
    sweep: dict | None
    curve_png: bytes | None


def decided(decisions: pd.DataFrame) -> pd.DataFrame:
    """The rows selection decided about (kept or pruned; not failed, not held out)."""
    return decisions[decisions["status"].isin([schema.KEPT, schema.PRUNED])]


def load_decisions(run: FinishedRun) -> pd.DataFrame:
    decisions = run.decisions().to_pandas()
    rows = run.rows(["shard", "label"]).to_pandas()
    decisions["shard_index"] = rows["shard"].to_numpy()
    decisions["label"] = rows["label"].to_numpy()
    decisions["distance"] = run.samples().clusters.distance
    decisions["nearest"] = _nearest(run, len(decisions))
    return decisions


def _nearest(run: FinishedRun, rows: int) -> np.ndarray:
    """Each row's most similar earlier member of its cluster (SemDeDup's `dedup` stage, which
    DBP runs too): the sample a pruned duplicate duplicates; -1 without one."""
    if not rundir.is_complete(run.run, "dedup"):
        return np.full(rows, -1, np.int64)
    return np.concatenate([load_dedup(run.run, u)["nearest"] for u in run.units])


def class_names(run: FinishedRun) -> dict[int, str]:
    """The names of classes.json in the output (copied there by the run), else beside the
    inputs."""
    options = run.config.storage_options
    output = Folder(run.config.output, options)
    return folder_class_names(output) or input_class_names(run.config.shards, options)


def cluster_table(decisions: pd.DataFrame, summary: dict | None, metric: str) -> pd.DataFrame:
    """Per cluster: size, kept, pruned, kept share and d_intra (mean cosine distance of the
    members to the centroid); d_inter, complexity and the criterion's own columns (dbp's
    quota) as summary.json recorded them."""
    valid = decided(decisions)
    grouped = valid.groupby("cluster")
    table = pd.DataFrame(
        {
            "size": grouped.size(),
            "kept": grouped["kept"].sum().astype(int),
            "d_intra": grouped["distance"].mean(),
        }
    )
    table["pruned"] = table["size"] - table["kept"]
    table["kept_share"] = table["kept"] / table["size"]
    table = table.reset_index()
    shown = (*CLUSTER_COLUMNS, *CRITERIA[metric].cluster_columns)
    recorded = (summary or {}).get("clusters")
    if isinstance(recorded, list) and recorded:
        extra = pd.DataFrame(recorded)
        columns = ["cluster", *[c for c in shown if c in extra.columns]]
        table = table.merge(extra[columns], on="cluster", how="left")
    order = ["cluster", "size", "kept", "pruned", "kept_share", "d_intra",
             *[c for c in shown if c in table.columns]]  # fmt: skip
    return table[order].sort_values("cluster").reset_index(drop=True)


def _json_or_none(folder: Folder, *parts: str) -> dict | None:
    return folder.read_json(*parts) if folder.exists(*parts) else None


def gather(run: FinishedRun) -> ReportContent:
    output = Folder(run.config.output, run.config.storage_options)
    summary = _json_or_none(output, schema.SUMMARY)
    decisions = load_decisions(run)
    curve = (
        run.run.read_bytes("sweep", "curve.png") if run.run.exists("sweep", "curve.png") else None
    )
    return ReportContent(
        run=run,
        decisions=decisions,
        class_names=class_names(run),
        counts=run.counts(),
        summary=summary,
        clusters=cluster_table(decisions, summary, run.config.metric),
        clustering=schema.read_clustering_record(run.run),
        validation=_json_or_none(run.run, "validate", "results.json"),
        sweep=_json_or_none(run.run, "sweep", "sweep.json"),
        curve_png=curve,
    )
