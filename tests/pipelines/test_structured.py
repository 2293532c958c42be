import sys

import pytest
import torch
from torch import nn

from curation.errors import CurateError
from curation.storage import Folder
from pipelines.cifar_resnet import resnet20, resnet32
from pipelines.model_pruning.structured import (
    MISSING_EXTRA,
    ChannelPruning,
    load_pruned,
    prune_channels,
    save_pruned,
)
from pipelines.networks import build_network

EXAMPLE = torch.zeros(1, 3, 32, 32)


@pytest.fixture
def dense() -> nn.Module:
    return build_network("pipelines.cifar_resnet:resnet20", 10)


def _independent_count(model: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """Parameters from each layer's declared sizes and MACs from its output size (batch 1):
    conv k_h k_w c_in/groups per output element (+1 with bias), BN 2 per input element (scale
    and shift), linear c_in c_out (+ c_out with bias). The CIFAR ResNet's ReLU, pooling and
    shortcut are functional or copies, and cost nothing."""
    params, macs = 0, 0

    def count(module, inputs, output):
        nonlocal params, macs
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            per_output = module.in_channels // module.groups * kh * kw
            bias = module.bias is not None
            params += module.out_channels * per_output + (module.out_channels if bias else 0)
            macs += output.numel() * (per_output + bias)
        elif isinstance(module, nn.BatchNorm2d):
            params += 2 * module.num_features
            macs += 2 * inputs[0].numel()
        elif isinstance(module, nn.Linear):
            bias = module.out_features if module.bias is not None else 0
            params += module.in_features * module.out_features + bias
            macs += module.in_features * module.out_features + bias

    hooks = [m.register_forward_hook(count) for m in model.modules()]
    with torch.no_grad():
        model.eval()(x)
    for hook in hooks:
        hook.remove()
    return params, macs


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_pruned_resnet_is_smaller_runs_and_counts_match(dense, scope):
    pruned = prune_channels(dense, EXAMPLE, [0.5], config=ChannelPruning(scope=scope))
    model = pruned.model
    assert model(torch.randn(3, 3, 32, 32)).shape == (3, 10)
    assert model.linear.out_features == 10
    params, macs = _independent_count(model, EXAMPLE)
    assert (pruned.after.params, pruned.after.macs) == (params, macs)
    assert params == sum(p.numel() for p in model.parameters())
    assert (pruned.before.params, pruned.before.macs) == _independent_count(dense, EXAMPLE)
    assert pruned.after.params < 0.5 * pruned.before.params
    assert pruned.after.file_bytes < pruned.before.file_bytes
    assert dense.conv1.out_channels == 16  # the dense model is left as it was


def test_layer_scope_halves_every_group(dense):
    model = prune_channels(dense, EXAMPLE, [0.5]).model
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    dense_convs = [m for m in dense.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [c.out_channels // 2 for c in dense_convs]


def test_macs_target_is_reached_in_small_steps(dense):
    pruned = prune_channels(dense, EXAMPLE, [2.0], "macs", ChannelPruning(resolution=60))
    factor = pruned.before.macs / pruned.after.macs
    assert 2.0 <= factor < 2.1
    assert pruned.after.macs == _independent_count(pruned.model, EXAMPLE)[1]


def test_iterative_targets_step_in_order_with_a_hook_between(dense):
    """The hook leaves the model training, as fine-tuning would; the shape checks between
    steps must still not move BN statistics."""
    seen = []

    def fine_tune(model, step):
        seen.append((step, model.conv1.out_channels))
        model.train()

    for module in dense.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.fill_(0.5)
    dense.train()
    pruned = prune_channels(dense, EXAMPLE, [0.25, 0.5], between_steps=fine_tune)
    assert seen == [(0, 12), (1, 8)]
    assert [s.params for s in pruned.steps] == sorted(
        (s.params for s in pruned.steps), reverse=True
    )
    assert pruned.after == pruned.steps[-1]
    assert pruned.model.training
    for module in pruned.model.modules():
        if isinstance(module, nn.BatchNorm2d):
            assert torch.all(module.running_mean == 0.5)


def test_round_to_keeps_widths_at_multiples(dense):
    model = prune_channels(dense, EXAMPLE, [0.3], config=ChannelPruning(round_to=4)).model
    widths = {m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)}
    assert widths and all(w % 4 == 0 for w in widths)
    assert widths != {16, 32, 64}


def test_ignored_layers_and_layer_ratios(dense):
    config = ChannelPruning(ignored=("linear", "layer1.0.conv1"), layer_ratios={"layer3.1": 0.0})
    model = prune_channels(dense, EXAMPLE, [0.5], config=config).model
    assert model.layer1[0].conv1.out_channels == 16
    assert model.layer3[1].conv1.out_channels == 64
    assert model.layer3[0].conv1.out_channels == 32


def _pruned_indices(history, root: str) -> set[int]:
    return {i for name, out, idxs in history if name == root and out for i in idxs}


@pytest.mark.parametrize("importance", ["l1", "l2", "bn_scale"])
def test_the_important_channel_is_kept(dense, importance):
    """Channel 5 of layer1.0.conv1 gets the largest filter and BN scale; every magnitude
    criterion must keep it."""
    block = dense.layer1[0]
    with torch.no_grad():
        block.conv1.weight.mul_(0.01)
        block.conv1.weight[5].fill_(1.0)
        block.bn1.weight.fill_(0.01)
        block.bn1.weight[5] = 1.0
    pruned = prune_channels(dense, EXAMPLE, [0.75], config=ChannelPruning(importance=importance))
    removed = _pruned_indices(pruned.history, "layer1.0.conv1")
    assert len(removed) == 12 and 5 not in removed


def test_random_importance_is_seeded(dense):
    def removed(seed):
        config = ChannelPruning(importance="random", seed=seed)
        return _pruned_indices(
            prune_channels(dense, EXAMPLE, [0.5], config=config).history, "layer1.0.conv1"
        )

    assert removed(1) == removed(1) != removed(2)


def test_save_and_load_give_the_same_model(dense, tmp_path):
    config = ChannelPruning(round_to=8, resolution=20)
    pruned = prune_channels(dense, EXAMPLE, [2.0], unit="macs", config=config)
    with torch.no_grad():
        for p in pruned.model.parameters():
            p.normal_()  # as if fine-tuned after pruning
    save_pruned(pruned, Folder(str(tmp_path)), "models", "pruned.pt")
    path = tmp_path / "models" / "pruned.pt"
    saved = torch.load(path, weights_only=True)
    assert saved["input_shape"] == [1, 3, 32, 32]
    model = load_pruned(path, resnet20())
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(model(x), pruned.model.eval()(x))


def test_loading_into_another_network_is_refused(dense, tmp_path):
    save_pruned(prune_channels(dense, EXAMPLE, [0.5]), Folder(str(tmp_path)), "p.pt")
    with pytest.raises(CurateError, match="does not fit CifarResNet"):
        load_pruned(tmp_path / "p.pt", resnet32())
    torch.save({"state_dict": dense.state_dict()}, tmp_path / "plain.pt")
    with pytest.raises(CurateError, match="is not a pruned model written by curate"):
        load_pruned(tmp_path / "plain.pt", resnet20())
    with pytest.raises(CurateError, match="pruned model file not found"):
        load_pruned(tmp_path / "missing.pt", resnet20())


def test_missing_extra_is_one_clear_error(dense, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_pruning", None)  # makes `import` raise ImportError
    with pytest.raises(CurateError) as raised:
        prune_channels(dense, EXAMPLE, [0.5])
    assert str(raised.value) == MISSING_EXTRA
    assert MISSING_EXTRA == (
        "structured pruning needs the structured extra: pip install 'curate[structured]'"
    )


@pytest.mark.parametrize(
    ("targets", "unit", "config", "message"),
    [
        ([0.5], "flops", {}, "unknown target unit 'flops'"),
        ([], "channels", {}, "at least one target"),
        ([0.5, 0.3], "channels", {}, "must not decrease"),
        ([1.0], "channels", {}, r"channel ratios must be in \(0, 1\)"),
        ([0.95], "channels", {}, "channel ratio 0.95 is above max_layer_ratio 0.9"),
        ([0.5], "macs", {}, "MACs reduction factors must be at least 1"),
        ([2.0], "macs", {"layer_ratios": {"layer1": 0.2}}, "need channel-ratio targets"),
        ([0.5], "channels", {"ignored": ("head",)}, "no layer named 'head'"),
        ([0.5], "channels", {"layer_ratios": {"layer9": 0.2}}, "no layer named 'layer9'"),
        (
            [50.0],
            "macs",
            {"max_layer_ratio": 0.5, "resolution": 5},
            "could not reach 50x fewer MACs",
        ),
    ],
)
def test_bad_requests_are_one_clear_error(dense, targets, unit, config, message):
    with pytest.raises(CurateError, match=message):
        prune_channels(dense, EXAMPLE, targets, unit, ChannelPruning(**config))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"importance": "taylor"}, "unknown importance 'taylor'"),
        ({"scope": "network"}, "unknown scope 'network'"),
        ({"round_to": 0}, "round_to must be a positive"),
        ({"max_layer_ratio": 1.0}, r"max_layer_ratio must be in \(0, 1\)"),
        ({"resolution": 0}, "resolution must be at least 1"),
        ({"layer_ratios": {"layer1": 1.0}}, r"channel ratio of layer1 must be in \[0, 1\)"),
    ],
)
def test_bad_settings_are_refused(fields, message):
    with pytest.raises(CurateError, match=message):
        ChannelPruning(**fields)


def test_a_network_whose_output_would_shrink_is_refused():
    convs = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3))
    with pytest.raises(CurateError, match=r"no nn\.Linear classifier to keep"):
        prune_channels(convs, EXAMPLE, [0.5])
    with pytest.raises(CurateError, match=r"changed the output shape \[1, 8, 28, 28\]"):
        prune_channels(convs, EXAMPLE, [0.5], config=ChannelPruning(ignored=()))
