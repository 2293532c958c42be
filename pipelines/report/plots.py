"""The report's plots, as PNG bytes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.plotting import new_figure, png_bytes
from pipelines.report.content import decided

KEPT_COLOUR, PRUNED_COLOUR = "#2a9d8f", "#e76f51"


def cluster_sizes(clusters: pd.DataFrame) -> bytes:
    """Clusters by size, largest first, split into kept and pruned."""
    ordered = clusters.sort_values("size", ascending=False)
    x = np.arange(len(ordered))
    figure, axes = new_figure(7.0, 3.2)
    axes.bar(x, ordered["kept"], color=KEPT_COLOUR, width=1.0, label="kept")
    axes.bar(
        x, ordered["pruned"], bottom=ordered["kept"], color=PRUNED_COLOUR, width=1.0, label="pruned"
    )
    axes.set_xlabel(f"cluster, by size ({len(ordered)} clusters)")
    axes.set_ylabel("samples")
    axes.set_xticks([])
    axes.legend()
    return png_bytes(figure)


def complexity(clusters: pd.DataFrame) -> bytes:
    """DBP complexity against the kept share when recorded; d_intra otherwise."""
    column = "complexity" if "complexity" in clusters.columns else "d_intra"
    figure, axes = new_figure(5.0, 3.2)
    axes.scatter(
        clusters[column],
        clusters["kept_share"],
        s=12 + 60 * clusters["size"] / max(1, clusters["size"].max()),
        color="#264653",
        alpha=0.7,
    )
    axes.set_xlabel(column if column == "complexity" else "d_intra (mean distance to the centroid)")
    axes.set_ylabel("kept share of the cluster")
    axes.locator_params(axis="x", nbins=5)
    axes.grid(alpha=0.3)
    return png_bytes(figure)


def score_distribution(decisions: pd.DataFrame) -> bytes:
    """The score the selection ranked by, for kept and pruned samples."""
    valid = decided(decisions)
    score = valid["score"].to_numpy(dtype=np.float64)
    name = "selection score"
    if np.isnan(score).all():
        score, name = valid["distance"].to_numpy(dtype=np.float64), "distance to centroid"
    finite = np.isfinite(score)
    figure, axes = new_figure(5.0, 3.2)
    if finite.any():
        bins = np.histogram_bin_edges(score[finite], bins=40)
        kept = valid["kept"].to_numpy(dtype=bool)
        axes.hist(score[finite & kept], bins=bins, color=KEPT_COLOUR, alpha=0.7, label="kept")
        axes.hist(score[finite & ~kept], bins=bins, color=PRUNED_COLOUR, alpha=0.7, label="pruned")
        axes.legend()
    axes.set_xlabel(name)
    axes.set_ylabel("samples")
    return png_bytes(figure)
