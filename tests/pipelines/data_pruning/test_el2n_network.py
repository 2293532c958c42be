"""`--el2n-source network`: EL2N from networks trained on the images (Paul et al.), a scoring
stage of its own that EL2N's and CCS's rules read; declaring it imports no torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from pipelines.data_pruning.config import PruneConfig
from pipelines.data_pruning.el2n_network import ensemble_el2n
from pipelines.data_pruning.pipeline import stages
from tests.builders import write_shards
from tests.runs import REPO, decisions, run_prune

NETWORK = dict(el2n_source="network", el2n_network="pipelines.cifar_resnet:resnet20",
               el2n_models=2, el2n_epochs=1, el2n_image_size=8)  # fmt: skip


def test_network_scores_feed_the_el2n_rule_and_skip_held_out_samples(tmp_path, tiny_clip):
    shards = write_shards(tmp_path / "in", shards=2, per_shard=20)
    out = tmp_path / "out"
    summary = run_prune(shards, out, tiny_clip, metric="el2n", holdout=0.25, **NETWORK)
    run = out / "_run"
    assert not (run / "el2n").exists()  # the probe stage did not run
    units = ("00000", "00001")
    scores = np.concatenate([np.load(run / "el2n_network" / f"{u}.npy") for u in units])
    table = decisions(out)
    heldout = table["status"].to_numpy() == "heldout"
    assert np.isnan(scores[heldout]).all() and np.isfinite(scores[~heldout]).all()
    assert (scores[~heldout] >= 0).all() and (scores[~heldout] <= np.sqrt(2) + 1e-9).all()
    kept = table["kept"].to_numpy()
    assert scores[kept].min() >= scores[~heldout & ~kept].max()  # the hardest are kept
    assert summary["parameters"]["el2n_source"] == "network"


def test_ccs_over_network_scores_uses_the_same_stage():
    base = dict(shards=["a.tar"], output="/tmp/out", rate=0.5, **NETWORK)
    el2n = [s.name for s in stages(PruneConfig(metric="el2n", **base))]
    ccs = [s.name for s in stages(PruneConfig(metric="ccs", ccs_score="el2n", **base))]
    assert "el2n_network" in el2n and "el2n_network" in ccs and "el2n" not in ccs


def test_the_ensemble_is_seeded():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 24)
    pixels = rng.integers(0, 60, (24, 3, 8, 8)) + 60 * labels[:, None, None, None]
    images = torch.from_numpy(pixels.astype(np.uint8))
    config = PruneConfig(shards=["a.tar"], output="/tmp/out", rate=0.5, **NETWORK)
    first = ensemble_el2n(images, labels, 3, config)
    again = ensemble_el2n(images, labels, 3, config)
    other = ensemble_el2n(images, labels, 3, config.model_copy(update={"seed": 1}))
    assert np.array_equal(first, again) and not np.array_equal(first, other)


@pytest.mark.parametrize("metric", ["el2n", "ccs"])
def test_declaring_the_network_stage_imports_no_torch(metric):
    code = f"""
import sys
from pipelines.data_pruning.config import PruneConfig
from pipelines.data_pruning.pipeline import stages
config = PruneConfig(shards=["a.tar"], output="/tmp/out", rate=0.5, metric={metric!r},
                     ccs_score="el2n", pretrained="random", **{json.dumps(NETWORK)})
print([s.name for s in stages(config)], "torch" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("False") and "el2n_network" in result.stdout
