"""Networks by name, shared by model pruning (`--model`) and validation teachers (`--teacher`):
`timm:NAME`, `torchvision:NAME` or `module:function` (an importable function that takes
`num_classes` and returns an `nn.Module`, e.g. `pipelines.cifar_resnet:resnet56`), with weights
from a checkpoint file read with `weights_only=True` (a file cannot run code when loaded).
"""

from __future__ import annotations

import importlib
import os
import pickle
import re
from collections.abc import Mapping

import torch
from torch import nn

from curation.errors import CurateError

TIMM = "timm:"
TORCHVISION = "torchvision:"
STATE_KEYS = ("state_dict", "model")  # where training scripts usually nest the weights
PARALLEL_PREFIX = "module."  # added by nn.DataParallel / DistributedDataParallel


def build_network(name: str, num_classes: int, seed: int = 0) -> nn.Module:
    """The untrained network `name` with a `num_classes` head, initialised from `seed` so that
    every process builds the same weights (another seed: another initialisation)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name.startswith(TIMM):
            return _timm(name[len(TIMM) :], num_classes)
        if name.startswith(TORCHVISION):
            return _torchvision(name[len(TORCHVISION) :], num_classes)
        return _from_function(name, num_classes)


def load_network(name: str, num_classes: int, checkpoint: str | None = None) -> nn.Module:
    """`build_network`, then the weights of `checkpoint` if given; in eval mode."""
    model = build_network(name, num_classes)
    if checkpoint is not None:
        load_weights(model, checkpoint, name)
    return model.eval()


def _timm(name: str, num_classes: int) -> nn.Module:
    import timm

    if not timm.is_model(name):
        raise CurateError(f"unknown timm model {name!r} (see timm.list_models())")
    return timm.create_model(name, pretrained=False, num_classes=num_classes)


def _torchvision(name: str, num_classes: int) -> nn.Module:
    import torchvision

    if name not in torchvision.models.list_models():
        raise CurateError(
            f"unknown torchvision model {name!r} (see torchvision.models.list_models())"
        )
    return torchvision.models.get_model(name, weights=None, num_classes=num_classes)


def _from_function(name: str, num_classes: int) -> nn.Module:
    module_name, _, function_name = name.partition(":")
    if not module_name or not function_name:
        raise CurateError(
            f"network {name!r}: give timm:NAME, torchvision:NAME or module:function "
            "(e.g. pipelines.cifar_resnet:resnet56)"
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise CurateError(f"network {name!r}: cannot import {module_name} ({_why(exc)})") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise CurateError(f"network {name!r}: {module_name} has no function {function_name}")
    try:
        model = function(num_classes=num_classes)
    except Exception as exc:
        raise CurateError(
            f"network {name!r}: {function_name}(num_classes={num_classes}) failed ({_why(exc)})"
        ) from None
    if not isinstance(model, nn.Module):
        raise CurateError(
            f"network {name!r}: {function_name} returned {type(model).__name__}, "
            "not a torch.nn.Module"
        )
    return model


def load_weights(model: nn.Module, path: str | os.PathLike, name: str | None = None) -> None:
    """Load a checkpoint file into `model`: a raw state_dict, or one under `state_dict` or
    `model`, keys optionally prefixed `module.`."""
    apply_state_dict(model, _state_dict(path), str(path), name or type(model).__name__)


def apply_state_dict(
    model: nn.Module, state: Mapping[str, torch.Tensor], source: str, target: str
) -> None:
    """Load `state` (read from `source`) into `model` (called `target` in errors); refuses,
    naming the first problem and the counts, unless every key and shape fits."""
    expected = model.state_dict()
    mismatched = [
        key
        for key, tensor in state.items()
        if key in expected and tuple(tensor.shape) != tuple(expected[key].shape)
    ]
    if mismatched:
        key = mismatched[0]
        raise CurateError(
            f"checkpoint {source} does not fit {target}: {len(mismatched)} shape mismatches, "
            f"first {key} {tuple(state[key].shape)} in the file, "
            f"{tuple(expected[key].shape)} in the network"
        )
    result = model.load_state_dict(state, strict=False)
    problems = [
        f"{len(keys)} {kind} keys (first {keys[0]})"
        for kind, keys in (("missing", result.missing_keys), ("unexpected", result.unexpected_keys))
        if keys
    ]
    if problems:
        raise CurateError(f"checkpoint {source} does not fit {target}: {', '.join(problems)}")


def _state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    if not os.path.isfile(path):
        raise CurateError(f"checkpoint file not found: {path}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise _unreadable(path, exc) from None
    if isinstance(saved, Mapping):
        for key in STATE_KEYS:
            if isinstance(saved.get(key), Mapping):
                saved = saved[key]
                break
    if not isinstance(saved, Mapping) or not saved:
        raise CurateError(f"{path} holds no state_dict ({type(saved).__name__})")
    if not all(isinstance(value, torch.Tensor) for value in saved.values()):
        keys = ", ".join(list(map(str, saved))[:5])
        raise CurateError(
            f"{path} holds no state_dict: its entries ({keys}) are not all tensors and none "
            f"is called {' or '.join(STATE_KEYS)}"
        )
    if all(str(key).startswith(PARALLEL_PREFIX) for key in saved):
        return {key[len(PARALLEL_PREFIX) :]: value for key, value in saved.items()}
    return dict(saved)


def _unreadable(path: str | os.PathLike, exc: Exception) -> CurateError:
    """torch.load's weights-only refusal of a pickled object, or a file torch cannot read."""
    pickled = re.search(r"GLOBAL (\S+)", str(exc))
    if isinstance(exc, pickle.UnpicklingError) and pickled:
        return CurateError(
            f"{path} holds pickled Python objects ({pickled.group(1)}), not only tensors; "
            "curate reads checkpoints with weights_only=True: save model.state_dict() instead"
        )
    return CurateError(f"{path} is not a torch checkpoint ({type(exc).__name__})")


def _why(exc: Exception) -> str:
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
