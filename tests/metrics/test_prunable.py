import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from metrics.prunable import PruningError, prunable_layers, prunable_weights


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3)
        self.norm = nn.BatchNorm2d(4)
        self.body = nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU(), nn.Conv2d(4, 2, 1))
        self.attn = nn.MultiheadAttention(8, 2)
        self.head = nn.Sequential(nn.Linear(8, 6), nn.Linear(6, 5))
        self.shared = self.stem  # registered twice: one prunable layer


def test_conv_and_linear_weights_in_module_order():
    weights = prunable_weights(Net())
    # Biases, BatchNorm and attention's in_proj_weight (no Linear) are not prunable; the
    # attention's out_proj (a Linear subclass) is.
    assert list(weights) == ["stem", "body.0", "body.2", "attn.out_proj", "head.0", "head.1"]
    assert weights["stem"].shape == (4, 3, 3, 3)
    assert weights["head.1"].shape == (5, 6)
    assert not weights["stem"].requires_grad


def test_weights_are_views_of_the_parameters():
    net = Net()
    weights = prunable_weights(net)
    with torch.no_grad():
        net.head[1].weight.zero_()
    assert (weights["head.1"] == 0).all()


def test_exclude_a_layer_or_everything_inside_a_name():
    assert list(prunable_layers(Net(), exclude=["head.1"]))[-1] == "head.0"
    assert list(prunable_layers(Net(), exclude=["head", "attn"])) == ["stem", "body.0", "body.2"]
    # A name excludes its children, not names that merely start with it: "1" keeps "10".
    eleven = nn.Sequential(*[nn.Linear(2, 2) for _ in range(11)])
    assert list(prunable_layers(eleven, exclude=["1"])) == ["0", *map(str, range(2, 11))]


def test_exclude_must_name_a_prunable_layer():
    with pytest.raises(PruningError, match=r"exclude names no prunable layer: fc, norm \(prunable"):
        prunable_layers(Net(), exclude=["fc", "norm", "head"])


def test_masked_layer_reads_the_masked_weight():
    layer = nn.Linear(2, 2)
    prune.custom_from_mask(layer, "weight", torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    weight = prunable_weights(nn.Sequential(layer))["0"]
    assert weight[0, 1] == 0 and weight[1, 0] == 0
    assert weight[0, 0] == layer.weight_orig[0, 0]


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_empty_weight_is_not_prunable():
    assert list(prunable_weights(nn.Sequential(nn.Linear(0, 3), nn.Linear(3, 2)))) == ["1"]


def test_pruning_error_is_value_error():
    assert issubclass(PruningError, ValueError)
