"""Assemble the report page from the run directory and write it as one HTML file."""

from __future__ import annotations

import os
from html import escape

import pandas as pd

from curation.storage import Folder
from pipelines.data_pruning.finished import open_run
from pipelines.report import plots
from pipelines.report.content import ReportContent, gather
from pipelines.report.gallery import choose_samples, thumbnails
from pipelines.report.page import figure, gallery, page, table
from pipelines.validation.results import cell, format_accuracy, format_difference

REPORT_FILE = "report.html"


def _summary(content: ReportContent) -> str:
    c = content.counts
    valid = c["kept"] + c["pruned"]
    cfg = content.run.config
    rows = [
        ("input samples", c["input"]),
        ("kept", c["kept"]),
        ("pruned", c["pruned"]),
        ("failed", c["failed"]),
        ("held out", c["heldout"]),
        ("rate requested", cfg.rate),
        ("rate achieved", round(c["pruned"] / valid, 6) if valid else 0.0),
    ]
    rows += [(f"reason: {reason}", n) for reason, n in sorted(c["reasons"].items())]
    settings = [
        ("metric", cfg.metric),
        ("keep", cfg.keep),
        ("embedder", cfg.model),
        ("weights", cfg.pretrained),
        ("clusters", cfg.clusters),
        ("seed", cfg.seed),
    ]
    if content.clustering:
        objective = content.clustering.get("objective") or [float("nan")]
        settings += [
            ("k-means training samples", content.clustering["training_samples"]),
            ("k-means final objective", f"{objective[-1]:.6g}"),
            ("empty clusters in training", content.clustering["empty_clusters_in_training"]),
        ]
    as_text = [(name, str(value)) for name, value in rows]  # no float column for the counts
    return table(pd.DataFrame(as_text, columns=["count", "value"]), html_id="counts") + table(
        pd.DataFrame(settings, columns=["setting", "value"])
    )


def _validation(results: dict) -> str:
    rows = [
        (
            a["arm"],
            a["train_size"],
            a["teacher"] or "",
            f"{results['alpha']:.3f}" if a["kd"] else "",
            format_accuracy(a["accuracy"]),
        )
        for a in results["arms"]
    ]
    columns = ["arm", "samples", "teacher", "KD alpha", "test top-1 [95% interval]"]
    differences = pd.DataFrame(
        [(f"{c['arm']} - {c['against']}", format_difference(c)) for c in results["comparisons"]],
        columns=["difference (points)", "95% interval (* established)"],
    )
    teachers = "".join(
        f"<li>{escape(name)}: {escape(t['source'])}; {format_accuracy(t['accuracy'])}</li>"
        for name, t in results["teachers"].items()
    )
    note = (
        f"{escape(results['model'])} on {escape(results['on'])}; "
        f"{escape(results['matched_compute'])} (matched compute); test: "
        f"{results['test_size']} samples, {escape(results['test_source'])}; seeds "
        f"{results['seeds']}; T = {results['temperature']}. {escape(results['uncertainty'])}"
    )
    return (f"<p>{note}</p>{table(pd.DataFrame(rows, columns=columns))}{table(differences)}"
            f"<ul>{teachers}</ul>")  # fmt: skip


def _sweep(content: ReportContent) -> str:
    rows = content.sweep["rows"]
    shown = pd.DataFrame(
        [(r["label"], r["rate"], round(r["kept_fraction"], 4), r["kd"], r["train_size"], cell(r),
          format_difference(r["vs_random"]) if r["vs_random"] else "") for r in rows],
        columns=["selection", "rate", "kept_fraction", "kd", "train_size",
                 "accuracy [95%] (^ v: vs random)", "vs random (points)"],
    )  # fmt: skip
    image = figure("pruning curve", content.curve_png) if content.curve_png else ""
    note = f"<p>{escape(content.sweep['uncertainty'])}</p>"
    return image + note + table(shown, sortable=True, html_id="sweep-table")


def _plots(content: ReportContent) -> str:
    dbp = "complexity" in content.clusters.columns
    parts = [
        figure("cluster sizes, kept and pruned", plots.cluster_sizes(content.clusters)),
        figure(
            "cluster complexity against kept share"
            if dbp
            else "cluster d_intra against kept share",
            plots.complexity(content.clusters),
        ),
        figure("score distribution", plots.score_distribution(content.decisions)),
    ]
    return f'<div class="plots">{"".join(parts)}</div>'


def _galleries(content: ReportContent, clusters: int, per_side: int, seed: int) -> str:
    chosen = choose_samples(content.decisions, clusters, per_side, seed)
    found = thumbnails(chosen, content.run.config.shards)
    sizes = content.clusters.set_index("cluster")["size"]
    return "".join(gallery(c, int(sizes.get(c, 0)), items) for c, items in found.items())


def render(content: ReportContent, clusters: int = 8, per_side: int = 6, seed: int = 0) -> str:
    cfg = content.run.config
    sections = [("summary", "Summary", _summary(content))]
    if content.validation:
        sections.append(("validation", "Validation", _validation(content.validation)))
    if content.sweep:
        sections.append(("sweep", "Pruning curve", _sweep(content)))
    sections += [
        ("plots", "Plots", _plots(content)),
        (
            "clusters",
            "Clusters (click a column to sort)",
            f'<div class="scroll">{table(content.clusters, sortable=True, html_id="cluster-table")}'
            "</div>",
        ),
        (
            "gallery",
            "Kept and pruned samples, side by side",
            _galleries(content, clusters, per_side, seed),
        ),
    ]
    meta = (
        f"run {escape(content.run.run.url)} · {len(cfg.shards)} input shards · "
        f"output {escape(cfg.output)}"
    )
    return page("curate report", meta, sections)


def build_report(
    run_dir: str, output: str | None = None, clusters: int = 8, per_side: int = 6, seed: int = 0
) -> str:
    """Write the report (default `RUN/report.html`); returns where it went."""
    run = open_run(run_dir)
    html = render(gather(run), clusters, per_side, seed)
    if output is None:
        run.run.write_bytes(html.encode(), REPORT_FILE)
        return run.run.url_of(REPORT_FILE)
    folder, name = os.path.split(os.path.abspath(output))
    Folder(folder).write_bytes(html.encode(), name)
    return os.path.abspath(output)
