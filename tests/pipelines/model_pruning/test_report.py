"""The report's model-pruning page: self-contained, the curve and the per-layer bars, and a
link to it from the main page of the prune run whose shards it trained on."""

import re
from pathlib import Path

from typer.testing import CliRunner

from curation.cli import app
from pipelines.report.build import build_report
from tests.pipelines.model_pruning.runs import run_prune, run_sweep


def _self_contained(html: str) -> None:
    assert not re.search(r"src=\"(?!data:)", html)
    assert "http://" not in html and "https://" not in html


def test_prune_and_sweep_pages_show_the_curve_and_the_layers(data, tmp_path):
    run_prune(data, tmp_path / "imp", schedule="imp", sparsity=0.5, controls=True)
    run_sweep(data, tmp_path / "sweep", methods=["global", "lamp"], sparsities=[0.5, 0.9])
    for name, table in (("imp", "levels"), ("sweep", "results")):
        page = Path(build_report(str(tmp_path / name)))  # the output folder is accepted
        assert page == tmp_path / name / "_run" / "report.html"
        html = page.read_text()
        _self_contained(html)
        for section in ("curve", "layers", "model-summary-section"):
            assert f'id="{section}"' in html
        assert html.count('src="data:image/png;base64,') == 2
        assert f'id="{table}"' in html
    assert "reinit accuracy" in (tmp_path / "imp/_run/report.html").read_text()


def test_main_page_links_the_model_runs_trained_on_its_shards(run_copy, data, tmp_path):
    run_prune(data, tmp_path / "model")
    main = tmp_path / "pages" / "main.html"
    result = CliRunner().invoke(app, ["report", run_copy, "-o", str(main), "--clusters", "1",
                                      "--model-run", str(tmp_path / "model")])  # fmt: skip
    assert result.exit_code == 0, result.output
    html = main.read_text()
    assert 'id="models"' in html
    assert 'href="../model/_run/report.html"' in html
    assert (tmp_path / "model/_run/report.html").is_file()
    wrong = CliRunner().invoke(app, ["report", run_copy, "--model-run", run_copy])
    assert wrong.exit_code == 2 and "is not a curate model prune or sweep run" in wrong.output
