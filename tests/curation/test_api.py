"""The Python API and the command line's own options, as a new user meets them."""

from __future__ import annotations

import json
import subprocess
import sys

from curation import __version__
from tests.builders import TINY_CLIP, write_shards
from tests.runs import REPO, curate


def test_prune_from_a_fresh_interpreter_with_a_brace_pattern(tmp_path):
    write_shards(tmp_path / "in", shards=3, per_shard=12)
    model = tmp_path / "tiny.json"
    model.write_text(json.dumps(TINY_CLIP))
    code = f"""
from curation import prune, status
summary = prune("{tmp_path}/in/{{00000..00002}}.tar", "{tmp_path}/out", rate=0.5,
                model="{model}", pretrained="random", clusters=3)
print(summary["input_samples"], summary["kept_samples"])
print(sorted(s["state"] for s in status("{tmp_path}/out")))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    counts, states = result.stdout.strip().splitlines()
    assert counts == "36 18"
    assert set(eval(states)) == {"done"}
    assert (tmp_path / "out" / "_run" / "config.json").exists()  # the CLI's default run dir


def test_version_and_short_help():
    assert curate("--version").strip() == f"curate {__version__}"
    assert "Usage: curate prune" in curate("prune", "-h")
    assert "Usage" in subprocess.run([sys.executable, "-m", "curation", "-h"], cwd=REPO,
                                     capture_output=True, text=True).stdout  # fmt: skip
