import sys
import textwrap

import pytest
import torch
from torch import nn

from curation.errors import CurateError
from pipelines.networks import build_network, load_network, load_weights

CIFAR = "pipelines.cifar_resnet:resnet20"


def test_module_function_builds_the_same_weights_every_time():
    first, second = build_network(CIFAR, 7), build_network(CIFAR, 7)
    assert first.linear.out_features == 7
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    seeded = build_network(CIFAR, 7, seed=1)
    assert torch.equal(seeded.conv1.weight, build_network(CIFAR, 7, seed=1).conv1.weight)
    assert not torch.equal(seeded.conv1.weight, first.conv1.weight)  # another seed, other init


def test_timm_and_torchvision_names_build_with_num_classes():
    timm_model = build_network("timm:test_resnet", 5).eval()
    assert timm_model(torch.randn(1, 3, 32, 32)).shape == (1, 5)
    torchvision_model = build_network("torchvision:resnet18", 3)
    assert torchvision_model.fc.out_features == 3


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """An importable module with functions that misbehave in the ways users' functions do."""
    (tmp_path / "user_nets.py").write_text(
        textwrap.dedent(
            """
            import torch

            def not_a_module(num_classes):
                return "resnet"

            def no_classes():
                return torch.nn.Linear(2, 2)

            def broken(num_classes):
                raise RuntimeError("layer sizes do not add up")

            CONSTANT = 3
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "user_nets"
    sys.modules.pop("user_nets", None)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("timm:no_such_net", "unknown timm model 'no_such_net'"),
        ("torchvision:no_such_net", "unknown torchvision model 'no_such_net'"),
        ("resnet56", "give timm:NAME, torchvision:NAME or module:function"),
        ("no_such_package.nets:resnet", "cannot import no_such_package.nets"),
        ("pipelines.cifar_resnet:resnet99", "pipelines.cifar_resnet has no function resnet99"),
        ("user_nets:CONSTANT", "user_nets has no function CONSTANT"),
        ("user_nets:not_a_module", "not_a_module returned str, not a torch.nn.Module"),
        ("user_nets:no_classes", r"no_classes\(num_classes=10\) failed \(TypeError"),
        ("user_nets:broken", "failed .RuntimeError: layer sizes do not add up"),
    ],
)
def test_bad_names_are_one_clear_error(name, message, user_module):
    with pytest.raises(CurateError, match=message):
        build_network(name, 10)


def _weights_equal(model: nn.Module, reference: nn.Module) -> bool:
    return all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), reference.state_dict().values(), strict=True)
    )


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: s,
        lambda s: {"state_dict": s, "epoch": 3},
        lambda s: {"model": s, "optimizer": {"lr": 0.1}},
        lambda s: {"state_dict": {f"module.{k}": v for k, v in s.items()}},
    ],
    ids=["raw", "state_dict", "model", "module-prefix"],
)
def test_checkpoint_layouts_load(wrap, tmp_path):
    torch.manual_seed(5)
    reference = build_network(CIFAR, 10)
    for p in reference.parameters():
        p.data.normal_()
    path = tmp_path / "weights.pt"
    torch.save(wrap(reference.state_dict()), path)
    model = load_network(CIFAR, 10, str(path))
    assert not model.training
    assert _weights_equal(model, reference)


def test_whole_pickled_module_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(build_network(CIFAR, 10), path)
    with pytest.raises(
        CurateError,
        match=r"pickled Python objects \(pipelines\.cifar_resnet\.CifarResNet\), not only tensors",
    ):
        load_network(CIFAR, 10, str(path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "checkpoint file not found"),
        (b"not a checkpoint at all", "is not a torch checkpoint"),
        ({"epoch": 3, "lr": 0.1}, r"holds no state_dict: its entries \(epoch, lr\)"),
        ([1, 2, 3], "holds no state_dict .list."),
    ],
)
def test_files_that_hold_no_weights_are_refused(content, message, tmp_path):
    path = tmp_path / "weights.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(CurateError, match=message):
        load_weights(build_network(CIFAR, 10), path)


def test_mismatches_name_the_first_key_and_the_counts(tmp_path):
    model = build_network(CIFAR, 10)
    state = dict(model.state_dict())
    path = tmp_path / "weights.pt"

    torch.save({**state, "linear.weight": torch.zeros(3, 64), "linear.bias": torch.zeros(3)}, path)
    with pytest.raises(
        CurateError,
        match=r"does not fit net: 2 shape mismatches, first linear.weight \(3, 64\) in the file, "
        r"\(10, 64\) in the network",
    ):
        load_weights(model, path, "net")

    del state["linear.weight"], state["linear.bias"]
    torch.save({**state, "fc.weight": torch.zeros(10, 64)}, path)
    with pytest.raises(
        CurateError,
        match=r"2 missing keys \(first linear.weight\), 1 unexpected keys \(first fc.weight\)",
    ):
        load_weights(model, path, "net")
