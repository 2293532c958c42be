"""The pipeline's use of the pruning rules: exact counts per method, LAMP and MT against the
hand-computed cases of tests/metrics, and masks that are what the files say."""

import pytest
import torch

from pipelines.model_pruning.schema import load_masks
from tests.pipelines.model_pruning.nets import tiny_cnn
from tests.pipelines.model_pruning.runs import run_prune

LAYERS = {"0": 8 * 3 * 9, "3": 16 * 8 * 9, "8": 5 * 16}  # tiny_cnn's prunable weights
TOTAL = sum(LAYERS.values())


def _masks(out, level=1):
    from curation.storage import Folder

    return load_masks(Folder(str(out / "_run")), f"level_{level}", "mask.pt")


def _kept(masks):
    return {name: mask.reshape(-1).tolist() for name, mask in masks.items()}


@pytest.mark.parametrize("method", ["global", "layerwise", "random", "random-erk", "lamp"])
def test_every_method_prunes_exactly_the_count_it_defines(data, tmp_path, method):
    summary = run_prune(data, tmp_path / "out", method=method, sparsity=0.8)
    if method == "layerwise":
        pruned = sum(round(0.8 * n) for n in LAYERS.values())  # each layer rounds on its own
        for row in summary["layers"]:
            assert row["total"] - row["unpruned"] == round(0.8 * LAYERS[row["layer"]])
    else:
        pruned = round(0.8 * TOTAL)
    assert summary["pruned"]["prunable_parameters"] == TOTAL
    assert summary["pruned"]["prunable_parameters"] - summary["pruned"]["prunable_nonzero"] == (
        pruned
    )
    assert summary["pruned"]["sparsity"] == pruned / TOTAL
    masks = _masks(tmp_path / "out")
    assert sum(int((~m).sum()) for m in masks.values()) == pruned
    # The saved network loads into the plain class and is zero exactly where the mask prunes.
    net = tiny_cnn(5)
    net.load_state_dict(torch.load(tmp_path / "out" / "model.pt", weights_only=True))
    for name, mask in masks.items():
        weight = dict(net.named_modules())[name].weight
        assert (weight[~mask] == 0).all() and (weight[mask] != 0).all()


def test_lamp_and_global_masks_are_the_hand_computed_ones(data, tmp_path):
    # tests/metrics/test_lamp.py: 2 of 6 pruned; LAMP prunes a's 1 and 8, magnitude a's 1 and
    # b's 2. The head is excluded, so the 6 weights are all there is.
    common = {"model": "tests.pipelines.model_pruning.nets:lamp_case", "exclude": ["head"],
              "sparsity": 0.34, "steps": 0}  # fmt: skip
    run_prune(data, tmp_path / "lamp", method="lamp", **common)
    assert _kept(_masks(tmp_path / "lamp")) == {"a": [False, False, True, True], "b": [True, True]}
    run_prune(data, tmp_path / "global", method="global", **common)
    assert _kept(_masks(tmp_path / "global")) == {
        "a": [True, False, True, True],
        "b": [True, False],
    }


def test_minimum_threshold_moves_the_deficit_as_by_hand(data, tmp_path):
    # tests/metrics/test_magnitude.py: at 5 of 10 plain global keeps only a's 0.6; with every
    # layer keeping ceil(0.5 n), a keeps 3 and b 2.
    common = {"model": "tests.pipelines.model_pruning.nets:mt_case", "exclude": ["head"],
              "sparsity": 0.5, "steps": 0}  # fmt: skip
    run_prune(data, tmp_path / "plain", **common)
    assert _kept(_masks(tmp_path / "plain")) == {"a": [False] * 5 + [True], "b": [True] * 4}
    run_prune(data, tmp_path / "mt", min_kept=0.5, **common)
    assert _kept(_masks(tmp_path / "mt")) == {
        "a": [False, False, False, True, True, True],
        "b": [False, False, True, True],
    }
