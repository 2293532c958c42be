"""The engine knows no pipeline, and declaring a pipeline imports no model library: the arrows
of the import graph run from the pipelines to the engine, never back."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.runs import REPO

ENGINE = REPO / "curation"
FORBIDDEN = {"torch", "faiss", "open_clip", "timm", "torchvision", "shards", "pipelines",
             "metrics", "typer"}  # fmt: skip


def _imported(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


TOP = {"api.py"}  # with cli/, the top of the house: the user's ways in, importing pipelines


def test_the_engine_imports_no_pipeline_model_or_shard_format():
    engine = [p for p in ENGINE.glob("*.py") if p.name not in TOP]
    assert len(engine) >= 8
    for path in engine:
        assert not (_imported(path) & FORBIDDEN), path.name


def test_only_the_cli_package_imports_the_pipelines():
    cli = {p.name: _imported(p) for p in (ENGINE / "cli").glob("*.py")}
    assert any("pipelines" in names for names in cli.values())


def test_declaring_every_pipeline_and_selecting_import_neither_torch_nor_faiss():
    """Nor the checks made before a run (the runner and its preflight): a run that embeds
    nothing (`--keep-list`, a refused request) never loads a model library for them."""
    code = """
import sys
import curation.cli
import pipelines.data_pruning.runner
from pipelines.data_pruning.config import PruneConfig
from pipelines.data_pruning.criteria import ranked
from pipelines.data_pruning.pipeline import stages
import pipelines.data_pruning.select
configs = [PruneConfig(shards=["a.tar"], output="/tmp/out", rate=0.5, metric=metric,
                       pretrained="random", ccs_score="el2n", filter="clip-score:0.2")
           for metric in ranked()]
configs.append(PruneConfig(shards=["a.tar"], output="/tmp/out", keep_list="k.npy",
                           pretrained="random"))
for config in configs:
    assert [s.name for s in stages(config)][-3:] == ["select", "reshard", "summary"]
heavy = sorted(m for m in ("torch", "torchvision", "faiss", "open_clip", "timm")
               if m in sys.modules)
print(",".join(heavy))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
