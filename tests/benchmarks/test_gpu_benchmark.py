"""The GPU benchmark's code runs on the CPU too (its CPU fallback path): every part of it is
tested here; the GPU figures themselves need a GPU."""

from __future__ import annotations

import argparse
import json
import os
import subprocess

import pytest

from benchmarks import gpu
from tests.runs import REPO


def _args(tmp_path, tiny_clip) -> list[str]:
    return ["--device", "cpu", "--images", "16", "--batch-size", "8", "--model", tiny_clip,
            "--points", "2000", "--clusters", "8", "--iterations", "3",
            "--workdir", str(tmp_path)]  # fmt: skip


def test_embed_and_kmeans_figures_on_the_cpu(tmp_path, tiny_clip):
    args = argparse.Namespace(device="cpu", images=16, batch_size=8, model=tiny_clip,
                              points=2000, clusters=8, iterations=3)  # fmt: skip
    embed = gpu.embed_rates(tmp_path / "embed", args)
    assert embed["embed_images_per_s"] > 0 and embed["decode_threads"] == 2
    kmeans = gpu.kmeans_figures(tmp_path, args)
    assert kmeans["kmeans_device"] == "cpu" and kmeans["training_points"] == 2000
    assert 0.2 < kmeans["objective"] < 1
    text = gpu.markdown({"machine": gpu.machine("cpu"), "embed": embed, "kmeans": kmeans})
    assert "images/s" in text and "on cpu" in text


@pytest.mark.slow
def test_gpu_sh_writes_its_results_unattended(tmp_path, tiny_clip):
    out = tmp_path / "results.md"
    env = {**os.environ, "CURATE_GPU_INSTALL": "0", "PYTHON": os.sys.executable,
           "CURATE_GPU_ARGS": " ".join(_args(tmp_path, tiny_clip))}  # fmt: skip
    result = subprocess.run(["bash", "benchmarks/gpu.sh", str(out)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "k-means is measured on the CPU" in result.stdout  # faiss-cpu here
    assert "images/s" in out.read_text()
    assert json.loads(out.with_suffix(".json").read_text())["kmeans"]["points"] == 2000
    assert "done" in out.with_suffix(".log").read_text()
