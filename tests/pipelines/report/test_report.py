"""`curate report`: a self-contained page (no network), a sortable cluster table, galleries of
kept and pruned thumbnails; opened in headless Chromium with no console errors."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from curation.cli import app
from pipelines.report.build import build_report
from pipelines.report.content import cluster_table
from pipelines.validation.config import SweepPlan, ValidationConfig
from pipelines.validation.runner import sweep, validate

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


def test_counts_always_add_up(report):
    counts = re.search(r'<table id="counts">.*?</table>', report.read_text()).group(0)
    values = dict(
        re.findall(r'<td data-value="([a-z ]+)">[^<]*</td><td data-value="(\d+)"', counts)
    )
    assert int(values["input samples"]) == 120
    parts = ("kept", "pruned", "failed", "held out")
    assert sum(int(values[p]) for p in parts) == 120 and int(values["held out"]) > 0


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
    assert target.read_text().count('src="data:image/jpeg;base64,') <= 8
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
