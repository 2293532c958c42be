"""Assemble the report page from the run directory and write it as one HTML file."""

from __future__ import annotations

import os
from html import escape

import pandas as pd

from curation import rundir
from curation.errors import CurateError
from curation.storage import Folder
from pipelines.data_pruning.cluster_table import MEANINGS
from pipelines.data_pruning.finished import open_run
from pipelines.report import model_page, plots
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
    as_text = [(name, str(value)) for name, value in rows
               if value is not None]  # no float column; no rate with --keep-list  # fmt: skip
    meaning = _meanings(["k-means objective"]) if content.clustering else ""
    return (
        _audit(content.summary or {})
        + table(pd.DataFrame(as_text, columns=["count", "value"]), html_id="counts")
        + table(pd.DataFrame(settings, columns=["setting", "value"]))
        + meaning
        + _classes(content.summary or {})
    )


def _audit(summary: dict) -> str:
    """summary.json's explanation (what the score means, what was applied) and warnings."""
    lines = "".join(f"<p>{escape(line)}</p>" for line in summary.get("explanation", []))
    warnings = "".join(f'<p class="warning">warning: {escape(line)}</p>'
                       for line in summary.get("warnings", []))  # fmt: skip
    return f'<div class="explanation" id="explanation">{lines}{warnings}</div>'


def _meanings(columns) -> str:
    """One line for each of `columns` that has a declared meaning."""
    items = "".join(f"<li><b>{escape(c)}</b>: {escape(MEANINGS[c])}</li>"
                    for c in columns if c in MEANINGS)  # fmt: skip
    return f'<ul class="meanings">{items}</ul>' if items else ""


def _classes(summary: dict) -> str:
    """Kept and pruned per class, with the warnings of the classes left below their share."""
    rows = summary.get("classes") or []
    if not rows:
        return ""
    columns = ["name", "candidates", "kept", "pruned", "share", "kept_of_share"]
    frame = pd.DataFrame(rows)[columns].rename(columns={"name": "class"})
    warnings = "".join(f"<p>warning: {escape(w)}</p>" for w in summary.get("class_warnings", []))
    return table(frame, sortable=True, html_id="class-table") + warnings


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
    config = content.run.config
    found = thumbnails(chosen, content.decisions, config.shards, content.class_names,
                       config.storage_options)  # fmt: skip
    sizes = content.clusters.set_index("cluster")["size"]
    return "".join(gallery(c, int(sizes.get(c, 0)), items) for c, items in found.items())


def _model_links(links: list[tuple[str, str]]) -> str:
    items = "".join(f'<li><a href="{escape(href)}">{escape(name)}</a></li>' for name, href in links)
    return f"<ul>{items}</ul>"


def render(content: ReportContent, clusters: int = 8, per_side: int = 6, seed: int = 0,
           model_links: list[tuple[str, str]] = ()) -> str:  # fmt: skip
    """The main page; `model_links` (name, href) point to model-pruning pages."""
    cfg = content.run.config
    sections = [("summary", "Summary", _summary(content))]
    if model_links:
        sections.append(("models", "Model pruning", _model_links(model_links)))
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
            f"</div>{_meanings(content.clusters.columns)}",
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


def _write(html: str, run: Folder, output: str | None) -> str:
    if output is None:
        run.write_bytes(html.encode(), REPORT_FILE)
        return run.url_of(REPORT_FILE)
    folder, name = os.path.split(os.path.abspath(output))
    Folder(folder).write_bytes(html.encode(), name)
    return os.path.abspath(output)


def _href(target: str, page: str) -> str:
    """A link from the page at `page` to `target`: relative when both are local files."""
    if "://" in target or "://" in page:
        return target
    return os.path.relpath(target, os.path.dirname(page))


def build_report(
    run_dir: str,
    output: str | None = None,
    clusters: int = 8,
    per_side: int = 6,
    seed: int = 0,
    storage_options: dict | None = None,
    model_runs: tuple[str, ...] = (),
) -> str:
    """Write the report (default `RUN/report.html`); returns where it went. A model-pruning
    run gets its own page; a prune run's page links to the pages of `model_runs`, written
    beside them. A remote run is read with `storage_options`."""
    folder = rundir.resolve(run_dir, storage_options)
    if model_page.is_model_run(folder):
        return _write(model_page.render(folder), folder, output)
    run = open_run(run_dir, storage_options=storage_options)
    where = os.path.abspath(output) if output else run.run.url_of(REPORT_FILE)
    links = []
    for path in model_runs:
        model_run = rundir.resolve(path)
        if not model_page.is_model_run(model_run):
            raise CurateError(f"--model-run {path} is not a curate model prune or sweep run")
        target = _write(model_page.render(model_run), model_run, None)
        links.append((model_page.title(model_run), _href(target, where)))
    return _write(render(gather(run), clusters, per_side, seed, links), run.run, output)
