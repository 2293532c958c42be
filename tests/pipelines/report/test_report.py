"""`curate report`: a self-contained page (no network), a sortable cluster table, galleries of
kept and pruned thumbnails; opened in headless Chromium with no console errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from curation.cli import app
from pipelines.data_pruning.cluster_table import MEANINGS
from pipelines.report.build import build_report
from pipelines.report.content import cluster_table
from pipelines.validation.config import SweepPlan, ValidationConfig
from pipelines.validation.runner import sweep, validate
from tests.builders import add_member, image_bytes
from tests.runs import decisions, run_prune, summary

FAST = ValidationConfig(steps=5, batch_size=16)


@pytest.fixture(scope="module")
def report(pruned_run, tmp_path_factory) -> Path:
    """Built once for this module, on a copy of the run with validation and sweep results."""
    run = str(shutil.copytree(pruned_run, tmp_path_factory.mktemp("report") / "run"))
    validate(run, FAST)
    sweep(run, FAST, SweepPlan(rates=[0.5, 0.8]))
    return Path(build_report(run))


def test_page_is_self_contained(report):
    html = report.read_text()
    assert not re.search(r"(src|href)=\"(?!data:|#)", html)
    assert "http://" not in html and "https://" not in html
    for section in ("summary", "validation", "sweep", "plots", "clusters", "gallery"):
        assert f'id="{section}"' in html
    assert "95% interval" in html and "has seen the pruned samples" in html
    assert html.count('src="data:image/jpeg;base64,') >= 8
    assert "photo of thing" in html  # captions shown under thumbnails


def test_counts_are_those_of_the_decisions(report, pruned_run):
    counts = re.search(r'<table id="counts">.*?</table>', report.read_text()).group(0)
    values = dict(
        re.findall(r'<td data-value="([a-z ]+)">[^<]*</td><td data-value="(\d+)"', counts)
    )
    status = pd.read_parquet(Path(pruned_run).parent / "decisions.parquet")["status"]
    expected = status.value_counts().to_dict()
    assert int(values["input samples"]) == len(status) == 120
    for shown, name in (("kept", "kept"), ("pruned", "pruned"), ("failed", "failed"),
                        ("held out", "heldout")):  # fmt: skip
        assert int(values[shown]) == expected.get(name, 0)
    assert int(values["kept"]) > 0 and int(values["pruned"]) > 0 and int(values["held out"]) > 0


def test_summary_shows_kept_and_pruned_per_class(report, pruned_run):
    classes = re.search(r'<table class="sortable" id="class-table">.*?</table>',
                        report.read_text()).group(0)  # fmt: skip
    kept = re.findall(r"<tr><td[^>]*>\d</td><td[^>]*>\d+</td><td data-value=\"(\d+)\"", classes)
    assert (
        len(kept) == 5 and sum(map(int, kept)) == summary(Path(pruned_run).parent)["kept_samples"]
    )


def test_cluster_table_without_and_with_dbp_columns():
    decisions = pd.DataFrame(
        {
            "cluster": [0, 0, 1, 1, 1, -1],
            "kept": [True, False, True, True, False, False],
            "status": ["kept", "pruned", "kept", "kept", "pruned", "failed"],
            "distance": [0.1, 0.3, 0.2, 0.2, 0.5, float("nan")],
        }
    )
    plain = cluster_table(decisions, None, "dbp")
    assert list(plain.columns) == ["cluster", "size", "kept", "pruned", "kept_share", "d_intra"]
    assert plain["size"].tolist() == [2, 3] and plain["kept"].tolist() == [1, 2]
    assert plain["d_intra"].tolist() == pytest.approx([0.2, 0.3])
    dbp = [
        {
            "cluster": c,
            "size": 0,
            "d_intra": 0,
            "d_inter": 0.4,
            "complexity": 0.1 * c,
            "quota": 1,
            "kept": 0,
        }
        for c in (0, 1)
    ]
    with_dbp = cluster_table(decisions, {"clusters": dbp}, "dbp")
    assert list(with_dbp.columns)[-3:] == ["d_inter", "complexity", "quota"]
    assert with_dbp["size"].tolist() == [2, 3]  # counted from decisions, not copied


def test_cli_writes_where_asked(run_copy, tmp_path):
    target = tmp_path / "page" / "r.html"
    result = CliRunner().invoke(
        app, ["report", run_copy, "-o", str(target), "--clusters", "2", "--per-side", "2"]
    )
    assert result.exit_code == 0, result.output
    html = target.read_text()
    galleries = re.findall(r'<div class="cluster" id="cluster-\d+">.*?</div></div></div>', html)
    assert len(galleries) == 2  # --clusters 2
    for gallery in galleries:
        kept, pruned = re.findall(r"<h4>(?:kept|pruned) \(shown (\d+)\)</h4>", gallery)
        assert 1 <= int(kept) <= 2 and 1 <= int(pruned) <= 2  # --per-side 2, both sides shown
    assert html.count('src="data:image/jpeg;base64,') == sum(
        int(n) for g in galleries for n in re.findall(r"shown (\d+)", g))  # fmt: skip
    missing = CliRunner().invoke(app, ["report", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "not a curate run directory" in missing.output


def chromium() -> str | None:
    return (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )


@pytest.mark.skipif(
    chromium() is None,
    reason="Chromium is not installed (apt-get install chromium, or set CHROMIUM to its path)",
)
def test_page_renders_in_headless_chromium(report, tmp_path):
    from playwright.sync_api import sync_playwright

    problems, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium(),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: m.type in ("error", "warning") and problems.append(m.text))
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("request", lambda r: r.url.startswith(("http", "ws")) and requests.append(r.url))
        page.goto(report.as_uri(), wait_until="load")
        images = page.eval_on_selector_all(
            ".thumbs img", "els => els.map(e => e.complete && e.naturalWidth > 0)"
        )
        kept = page.locator(".side.kept .thumbs img").count()
        pruned = page.locator(".side.pruned .thumbs img").count()
        plots = page.eval_on_selector_all(
            "#plots img, #sweep img", "els => els.map(e => e.naturalWidth > 0)"
        )
        header = page.locator("#cluster-table th", has_text="size")
        header.click()
        header.click()
        sizes = [
            float(v)
            for v in page.eval_on_selector_all(
                "#cluster-table tbody tr td:nth-child(2)", "els => els.map(e => e.textContent)"
            )
        ]
        screenshot = tmp_path / "report.png"
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    assert problems == [] and requests == []
    assert images and all(images) and kept > 0 and pruned > 0
    assert len(plots) == 4 and all(plots)  # curve, cluster sizes, complexity, scores
    assert sizes == sorted(sizes, reverse=True)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def dedup_report(tmp_path_factory, tiny_clip) -> dict:
    """A SemDeDup run over shards where every image is there twice (under another key), with
    a classes.json beside them."""
    root = tmp_path_factory.mktemp("dedup-report")
    rng = np.random.default_rng(3)
    shards = []
    for s in range(2):
        path = root / "in" / f"{s:05d}.tar"
        path.parent.mkdir(exist_ok=True)
        with tarfile.open(path, "w") as tar:
            for i in range(8):
                label = i % 2
                image = image_bytes(rng, label)
                for copy in ("a", "b"):
                    add_member(tar, f"{s}{i:02d}{copy}.jpg", image)
                    add_member(tar, f"{s}{i:02d}{copy}.cls", str(label).encode())
        shards.append(path)
    (root / "in" / "classes.json").write_text(json.dumps({"tabby cat": 0, "red fox": 1}))
    out = root / "out"
    run_prune(shards, out, tiny_clip, metric="semdedup", rate=0.25, clusters=2)
    html = Path(build_report(str(out / "_run"), clusters=2, per_side=8)).read_text()
    return {"html": html, "decisions": decisions(out), "summary": summary(out)}


def test_pruned_duplicates_are_shown_beside_what_they_duplicate(dedup_report):
    found = dedup_report["decisions"]
    pruned = found[found["reason"] == "duplicate"]
    assert len(pruned) > 0
    pairs = re.findall(r'<div class="pair">(.*?)</div>', dedup_report["html"])
    assert len(pairs) == len(pruned)  # 8 per side shows every pruned duplicate
    by_key = dict(zip(found["key"], found["detail"], strict=True))
    for pair in pairs:
        first, second = re.findall(r'alt="([^"]+)"', pair)
        assert by_key[first].startswith(f"duplicate of {second} ")
        assert pair.count('src="data:image/jpeg;base64,') == 2


def test_labels_show_their_class_names_and_columns_their_meaning(dedup_report):
    html = dedup_report["html"]
    assert "tabby cat" in html and "red fox" in html
    assert "label 0" not in html and "label 1" not in html
    for column in ("d_intra", "d_inter", "complexity"):
        assert f"<li><b>{column}</b>: {escape(MEANINGS[column])}</li>" in html
    assert escape(MEANINGS["k-means objective"]) in html


def test_the_summary_explanation_and_warnings_are_on_the_page(dedup_report):
    section = re.search(r'<div class="explanation" id="explanation">.*?</div>',
                        dedup_report["html"]).group(0)  # fmt: skip
    lines = dedup_report["summary"]["explanation"] + dedup_report["summary"]["warnings"]
    assert lines and all(escape(line) in section for line in lines)
