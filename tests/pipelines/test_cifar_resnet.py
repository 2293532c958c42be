import io

import pytest
import torch
import torch.nn.functional as F

from curation.errors import CurateError
from pipelines.cifar_resnet import (
    DownsampleShortcut,
    load_pretrained,
    resnet8,
    resnet20,
    resnet32,
    resnet44,
    resnet56,
)


def _akamaster_params(blocks: int) -> int:
    """He et al.'s CIFAR ResNet counted by hand: stem, 3 stages of 2-conv blocks, classifier."""
    stem = 3 * 16 * 9 + 2 * 16
    total = stem
    for in_planes, planes in ((16, 16), (16, 32), (32, 64)):
        first = in_planes * planes * 9 + planes * planes * 9 + 4 * planes
        rest = 2 * planes * planes * 9 + 4 * planes
        total += first + (blocks - 1) * rest
    return total + 64 * 10 + 10


@pytest.mark.parametrize(
    ("build", "blocks"),
    [(resnet8, 1), (resnet20, 3), (resnet32, 5), (resnet44, 7), (resnet56, 9)],
)
def test_depths_have_the_published_layout(build, blocks):
    model = build()
    assert sum(p.numel() for p in model.parameters()) == _akamaster_params(blocks)
    assert len(model.layer1) == len(model.layer2) == len(model.layer3) == blocks
    state = model.state_dict()
    assert state["conv1.weight"].shape == (16, 3, 3, 3)
    assert state["linear.weight"].shape == (10, 64)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("size", [8, 7])
def test_shortcut_is_option_a(size):
    shortcut = DownsampleShortcut(16, 32)
    x = torch.randn(2, 16, size, size)
    reference = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 8, 8), "constant", 0)
    assert torch.equal(shortcut(x), reference)


def test_shortcut_removals_match_removing_the_channels_from_the_dense_output():
    shortcut = DownsampleShortcut(16, 32)
    x = torch.randn(2, 16, 8, 8)
    zeroed = x.clone()
    zeroed[:, [1, 3]] = 0  # a removed input channel contributes nothing
    dense = shortcut(zeroed)
    shortcut.remove_inputs([1, 3])
    shortcut.remove_outputs([0, 9, 20])
    kept_outputs = [c for c in range(32) if c not in (0, 9, 20)]
    kept_inputs = [c for c in range(16) if c not in (1, 3)]
    assert (shortcut.in_channels, shortcut.out_channels) == (14, 29)
    assert torch.equal(shortcut(x[:, kept_inputs]), dense[:, kept_outputs])


def test_model_pickles_whole():
    model = resnet20().eval()
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(torch.load(buffer, weights_only=False)(x), model(x))


def _akamaster_checkpoint(model, path):
    """As akamaster's trainer wrote them: DataParallel keys, no num_batches_tracked."""
    state = {
        f"module.{key}": tensor
        for key, tensor in model.state_dict().items()
        if not key.endswith("num_batches_tracked")
    }
    torch.save({"best_prec1": 91.7, "state_dict": state}, path)


def test_pretrained_checkpoint_loads_in_eval_mode(tmp_path):
    torch.manual_seed(3)
    reference = resnet20().eval()
    for module in reference.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    path = tmp_path / "resnet20-test.th"
    _akamaster_checkpoint(reference, path)
    model = load_pretrained(20, path)
    assert not model.training
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(model(x), reference(x))


def test_checkpoint_of_another_depth_is_refused(tmp_path):
    path = tmp_path / "resnet20-test.th"
    _akamaster_checkpoint(resnet20(), path)
    with pytest.raises(CurateError, match=r"does not fit CifarResNet: .*missing keys"):
        load_pretrained(32, path)


def test_unknown_depth_is_refused(tmp_path):
    with pytest.raises(CurateError, match="no CIFAR ResNet of depth 18"):
        load_pretrained(18, tmp_path / "x.th")
