"""What the report shows, read from the run directory: decisions, clusters, validation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from curation.storage import Folder
from pipelines.data_pruning.layout import read_table
from pipelines.run_dir import FinishedRun

DBP_COLUMNS = ("d_inter", "complexity", "quota")


@dataclass
class ReportContent:
    run: FinishedRun
    decisions: pd.DataFrame  # one row per sample, with label and caption
    summary: dict | None  # the output folder's summary.json
    clusters: pd.DataFrame
    clustering: dict | None
    validation: dict | None
    sweep: dict | None
    curve_png: bytes | None


def load_decisions(run: FinishedRun) -> pd.DataFrame:
    decisions = pa.concat_tables(
        read_table(run.run, "select", "decisions", f"{u}.parquet") for u in run.units
    ).to_pandas()
    rows = run.rows(["shard", "label", "caption"]).to_pandas()
    decisions["shard_index"] = rows["shard"].to_numpy()
    decisions["label"] = rows["label"].to_numpy()
    decisions["caption"] = rows["caption"].to_numpy()
    decisions["distance"] = run.samples().clusters.distance
    return decisions


def cluster_table(decisions: pd.DataFrame, summary: dict | None) -> pd.DataFrame:
    """Per cluster: size, kept, pruned, kept share and d_intra (mean cosine distance of the
    members to the centroid); d_inter, complexity and quota when the metric (dbp) wrote
    them into summary.json."""
    valid = decisions[decisions["status"] != "failed"]
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
    recorded = (summary or {}).get("clusters")
    if isinstance(recorded, list) and recorded:
        extra = pd.DataFrame(recorded)
        columns = ["cluster", *[c for c in DBP_COLUMNS if c in extra.columns]]
        table = table.merge(extra[columns], on="cluster", how="left")
    order = [
        "cluster",
        "size",
        "kept",
        "pruned",
        "kept_share",
        "d_intra",
        *[c for c in DBP_COLUMNS if c in table.columns],
    ]
    return table[order].sort_values("cluster").reset_index(drop=True)


def _json_or_none(folder: Folder, *parts: str) -> dict | None:
    return folder.read_json(*parts) if folder.exists(*parts) else None


def gather(run: FinishedRun) -> ReportContent:
    output = Folder(run.config.output)
    summary = _json_or_none(output, "summary.json")
    decisions = load_decisions(run)
    curve = (
        run.run.read_bytes("sweep", "curve.png") if run.run.exists("sweep", "curve.png") else None
    )
    return ReportContent(
        run=run,
        decisions=decisions,
        summary=summary,
        clusters=cluster_table(decisions, summary),
        clustering=_json_or_none(run.run, "cluster", "clustering.json"),
        validation=_json_or_none(run.run, "validate", "results.json"),
        sweep=_json_or_none(run.run, "sweep", "sweep.json"),
        curve_png=curve,
    )


def counts(decisions: pd.DataFrame) -> dict[str, int]:
    """input = kept + pruned + failed, always."""
    status = decisions["status"].to_numpy()
    return {
        "input": len(status),
        "kept": int(np.sum(status == "kept")),
        "pruned": int(np.sum(status == "pruned")),
        "failed": int(np.sum(status == "failed")),
    }
