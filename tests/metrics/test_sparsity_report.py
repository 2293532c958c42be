import json

import torch
from torch import nn

from metrics.sparsity_report import model_sparsity_report, sparsity_report


def test_report_of_masks_by_hand():
    masks = {
        "conv": torch.tensor([[True, False], [False, False]]),
        "fc": torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 1.0]),  # a torch float buffer
    }
    assert sparsity_report(masks) == {
        "total": 10,
        "unpruned": 6,
        "sparsity": 0.4,
        "layers": {
            "conv": {"total": 4, "unpruned": 1, "sparsity": 0.75},
            "fc": {"total": 6, "unpruned": 5, "sparsity": 1 / 6},
        },
    }


def test_report_of_a_model_counts_nonzero_prunable_weights():
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight[0].zero_()
        model[0].bias.zero_()  # biases are not prunable: not counted
        model[1].weight.zero_()  # nor are norm layers
    report = model_sparsity_report(model)
    assert (report["total"], report["unpruned"]) == (18, 14)
    assert report["layers"]["0"] == {"total": 12, "unpruned": 8, "sparsity": 4 / 12}
    assert list(report["layers"]) == ["0", "2"]
    assert list(model_sparsity_report(model, exclude=["2"])["layers"]) == ["0"]
    assert json.loads(json.dumps(report)) == report


def test_report_of_no_layers():
    assert sparsity_report({}) == {"total": 0, "unpruned": 0, "sparsity": 0.0, "layers": {}}
