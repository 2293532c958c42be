import io

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from metrics.apply_masks import apply_masks, bake_masks, installed_masks
from metrics.magnitude import global_magnitude
from metrics.prunable import PruningError, prunable_weights
from metrics.sparsity_report import model_sparsity_report, sparsity_report


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3)
        self.norm = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.norm(self.conv(x))).flatten(1))


def pruned_small(sparsity=0.8):
    torch.manual_seed(0)
    model = Small().eval()
    masks = global_magnitude(prunable_weights(model), sparsity)
    return model, masks


def test_installed_masks_zero_the_weights_and_survive_training():
    model, masks = pruned_small()
    apply_masks(model, masks)
    assert torch.equal(installed_masks(model)["fc"], masks["fc"])
    assert (model.fc.weight[~masks["fc"]] == 0).all()
    assert model_sparsity_report(model) == sparsity_report(masks)
    model.train()
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.randn(2, 3, 6, 6)).sum().backward()
    optimiser.step()
    model(torch.randn(2, 3, 6, 6))  # the masked weight is recomputed before each forward
    assert (model.conv.weight[~masks["conv"]] == 0).all()
    assert (model.conv.weight[masks["conv"]] != 0).all()


def test_baked_model_saves_a_plain_state_dict_for_the_unpruned_class():
    model, masks = pruned_small()
    x = torch.randn(4, 3, 6, 6)
    apply_masks(model, masks)
    expected = model(x)
    assert bake_masks(model) == ["conv", "fc"]
    assert not prune.is_pruned(model)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = Small().eval()
    assert set(model.state_dict()) == set(fresh.state_dict())
    fresh.load_state_dict(torch.load(buffer))  # strict
    assert torch.equal(fresh(x), expected)
    assert model_sparsity_report(fresh) == sparsity_report(masks)
    assert torch.equal(fresh.conv.weight != 0, masks["conv"])
    # With the masks baked in nothing is installed, but the zeros remain.
    assert installed_masks(fresh)["conv"].all()


def test_masks_on_a_masked_model_compose():
    model, first = pruned_small(0.5)
    apply_masks(model, first)
    second = global_magnitude(prunable_weights(model), 0.8, masks=installed_masks(model))
    apply_masks(model, second)
    assert torch.equal(installed_masks(model)["fc"], second["fc"])
    assert model_sparsity_report(model)["unpruned"] == sparsity_report(second)["unpruned"]
    bake_masks(model)
    assert model_sparsity_report(model) == sparsity_report(second)


@pytest.mark.parametrize(
    ("masks", "match"),
    [
        ({"norm": torch.ones(6, dtype=torch.bool)}, "no prunable layer named 'norm'"),
        ({"fc": torch.ones(5, 95, dtype=torch.bool)}, r"layer fc: mask shape \(5, 95\)"),
    ],
)
def test_bad_masks_install_nothing(masks, match):
    model = Small()
    masks = {"conv": torch.zeros(6, 3, 3, 3, dtype=torch.bool), **masks}
    with pytest.raises(PruningError, match=match):
        apply_masks(model, masks)
    assert not prune.is_pruned(model)
