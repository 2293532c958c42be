"""Channel (filter) pruning that physically removes channels, through torch-pruning's dependency
graph (DepGraph, Fang et al. CVPR 2023): layers that share channels (a conv's filters, its BN,
the next conv's inputs, both sides of a residual add) form a group and lose the same channels,
ranked by the group's importance (the mean over its members, normalised by the group mean).

Saving a pruned model. There are four ways; `save_pruned` writes the third, `save_exported`
the fourth:
- `torch.save(model)`: pickles the module classes; loading needs them importable and
  `torch.load(..., weights_only=False)`, which runs whatever code the file names.
- torch-pruning 1.6.1's `tp.state_dict(model)` / `tp.load_state_dict(model, saved)`: every
  module's `__dict__`, submodules included, so loading it needs `weights_only=False` as well,
  and a dense instance.
- `{"input_shape", "pruning_history", "state_dict"}`: tensors, lists and strings only, read with
  `weights_only=True`. Loading needs torch, torch-pruning and the dense network, not curate:

      import torch, torch_pruning as tp
      saved = torch.load(path, map_location="cpu", weights_only=True)
      model = dense_network()  # e.g. timm.create_model(NAME, num_classes=N)
      graph = tp.DependencyGraph().build_dependency(model, torch.zeros(saved["input_shape"]))
      graph.load_pruning_history(saved["pruning_history"])
      model.load_state_dict(saved["state_dict"])

  A network with modules that prune themselves (methods `remove_inputs` / `remove_outputs`, like
  the CIFAR ResNets' option-A shortcut) also passes `customized_pruners=` for them, as
  `load_pruned` does.
- `torch.export` (an `ExportedProgram`, `.pt2`): the traced graph and its weights, any batch
  size. Loading needs torch alone, neither the network's class nor torch-pruning nor curate:
  `torch.export.load(path).module()`, for inference (eval mode is baked in).
"""

from __future__ import annotations

import copy
import functools
import io
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from curation.errors import CurateError
from curation.storage import Folder
from pipelines.model_pruning.config import IMPORTANCES
from pipelines.networks import apply_state_dict

MISSING_EXTRA = "structured pruning needs the structured extra: pip install 'curate[structured]'"
SCOPES = ("layer", "global")
UNITS = ("channels", "macs")
FORMAT = "curate-structured-1"


@dataclass(frozen=True)
class ChannelPruning:
    """How channels are chosen.

    importance: group L1 or L2 magnitude, random (seeded), or BN scale (Liu et al. 2017).
    scope: `layer` removes the same fraction from every group; `global` ranks all groups'
    channels together, so layers end at different widths.
    round_to: leave channel counts at multiples of this (hardware-friendly widths).
    ignored: names of modules whose outputs are kept; default the last `nn.Linear`.
    layer_ratios: final channel ratio of named modules, instead of the target (channels only).
    max_layer_ratio: no group is pruned further once it has lost this fraction.
    resolution: a MACs target is approached in channel-ratio increments of 1/resolution."""

    importance: str = "l2"
    scope: str = "layer"
    round_to: int | None = None
    ignored: tuple[str, ...] | None = None
    layer_ratios: Mapping[str, float] = field(default_factory=dict)
    max_layer_ratio: float = 0.9
    resolution: int = 200
    seed: int = 0

    def __post_init__(self):
        if self.importance not in IMPORTANCES:
            raise CurateError(
                f"unknown importance {self.importance!r}: choose one of {', '.join(IMPORTANCES)}"
            )
        if self.scope not in SCOPES:
            raise CurateError(f"unknown scope {self.scope!r}: choose one of {', '.join(SCOPES)}")
        if self.round_to is not None and self.round_to < 1:
            raise CurateError(f"round_to must be a positive channel count, not {self.round_to}")
        if not 0 < self.max_layer_ratio < 1:
            raise CurateError(f"max_layer_ratio must be in (0, 1), not {self.max_layer_ratio}")
        if self.resolution < 1:
            raise CurateError(f"resolution must be at least 1, not {self.resolution}")
        for name, ratio in self.layer_ratios.items():
            if not 0 <= ratio < 1:
                raise CurateError(f"channel ratio of {name} must be in [0, 1), not {ratio}")


@dataclass(frozen=True)
class Size:
    """Parameters, MACs per sample (torch-pruning's count, at the example input's size) and the
    bytes of the saved state_dict."""

    params: int
    macs: int
    file_bytes: int


@dataclass
class Pruned:
    """The physically smaller model, how it was pruned from the dense one, and its size before
    and after each step."""

    model: nn.Module
    history: list
    input_shape: tuple[int, ...]
    before: Size
    steps: list[Size]

    @property
    def after(self) -> Size:
        return self.steps[-1] if self.steps else self.before


def require_torch_pruning():
    """The torch_pruning module, or the one-line error that says which extra to install."""
    try:
        import torch_pruning as tp
    except ImportError:
        raise CurateError(MISSING_EXTRA) from None
    return tp


def measure(model: nn.Module, example_inputs: torch.Tensor) -> Size:
    """Parameters, MACs per sample and state_dict bytes of `model` on `example_inputs`."""
    macs, params = require_torch_pruning().utils.count_ops_and_params(model, example_inputs)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return Size(int(params), int(macs), buffer.tell())


def prune_channels(
    model: nn.Module,
    example_inputs: torch.Tensor,
    targets: Sequence[float],
    unit: str = "channels",
    config: ChannelPruning | None = None,
    between_steps: Callable[[nn.Module, int], None] | None = None,
) -> Pruned:
    """Prune a copy of `model` in `len(targets)` steps (the dense model is left as it was).

    `targets` are cumulative: channel ratios removed (unit `channels`, in (0, 1)) or MACs
    reduction factors (unit `macs`, e.g. 2.0 for 2x fewer MACs, reached by stepping
    torch-pruning in small increments until the count falls below). A schedule such as the
    cubic one gives the list. `between_steps(model, step)` runs after each step (fine-tuning)."""
    tp = require_torch_pruning()
    config = config or ChannelPruning()
    _check_targets(targets, unit, config)
    pruned = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        expected = _output_shape(pruned, example_inputs)
        before = measure(pruned, example_inputs)
        pruner = _pruner(tp, pruned, example_inputs, targets, unit, config)
        steps = []
        for step, target in enumerate(targets):
            if unit == "channels":
                pruner.step()
            else:
                _step_to_macs(tp, pruner, pruned, example_inputs, before.macs, target)
            if _output_shape(pruned, example_inputs) != expected:
                raise CurateError(
                    f"pruning changed the output shape {list(expected)}: "
                    "name the output layer in the ignored layers"
                )
            steps.append(measure(pruned, example_inputs))
            if between_steps is not None:
                between_steps(pruned, step)
    pruned.train(model.training)
    history = [
        [name, bool(out), [int(i) for i in idxs]] for name, out, idxs in pruner.pruning_history()
    ]
    return Pruned(pruned, history, tuple(example_inputs.shape), before, steps)


def _check_targets(targets: Sequence[float], unit: str, config: ChannelPruning) -> None:
    if unit not in UNITS:
        raise CurateError(f"unknown target unit {unit!r}: choose one of {', '.join(UNITS)}")
    if not targets:
        raise CurateError("structured pruning needs at least one target")
    if list(targets) != sorted(targets):
        raise CurateError(f"pruning targets must not decrease from step to step: {list(targets)}")
    if unit == "channels" and not 0 < targets[0] <= targets[-1] < 1:
        raise CurateError(f"channel ratios must be in (0, 1): {list(targets)}")
    if unit == "channels" and targets[-1] > config.max_layer_ratio:
        raise CurateError(
            f"channel ratio {targets[-1]} is above max_layer_ratio {config.max_layer_ratio}"
        )
    if unit == "macs" and targets[0] < 1:
        raise CurateError(f"MACs reduction factors must be at least 1: {list(targets)}")
    if unit == "macs" and config.layer_ratios:
        raise CurateError("per-layer channel ratios need channel-ratio targets, not MACs")


def _output_shape(model: nn.Module, example_inputs: torch.Tensor) -> torch.Size:
    """In eval mode, whatever mode fine-tuning left the model in: BN statistics stay put."""
    training = model.training
    try:
        with torch.no_grad():
            return model.eval()(example_inputs).shape
    finally:
        model.train(training)


def _pruner(tp, model, example_inputs, targets, unit, config: ChannelPruning):
    modules = dict(model.named_modules())
    if unit == "channels":
        final = targets[-1]
        steps = len(targets)

        def schedule(ratio: float, _: int) -> list[float]:
            return [0.0, *(ratio * t / final for t in targets)]
    else:
        final, steps = config.max_layer_ratio, config.resolution

        def schedule(ratio: float, steps: int) -> list[float]:
            return [ratio * i / steps for i in range(steps + 1)]

    return tp.pruner.BasePruner(
        model,
        example_inputs,
        importance=_importance(tp, config.importance),
        global_pruning=config.scope == "global",
        pruning_ratio=final,
        pruning_ratio_dict={
            _module(modules, name): ratio for name, ratio in config.layer_ratios.items()
        },
        max_pruning_ratio=config.max_layer_ratio,
        iterative_steps=steps,
        iterative_pruning_ratio_scheduler=schedule,
        ignored_layers=_ignored(model, modules, config.ignored),
        round_to=config.round_to,
        customized_pruners=customized_pruners(model),
    )


def _step_to_macs(tp, pruner, model, example_inputs, dense_macs: int, factor: float) -> None:
    macs, _ = tp.utils.count_ops_and_params(model, example_inputs)
    while dense_macs / macs < factor:
        if pruner.current_step == pruner.iterative_steps:
            raise CurateError(
                f"could not reach {factor:g}x fewer MACs: {dense_macs / macs:.2f}x once every "
                f"group lost its maximum fraction of channels"
            )
        pruner.step()
        macs, _ = tp.utils.count_ops_and_params(model, example_inputs)


def _importance(tp, name: str):
    if name == "random":
        return tp.importance.RandomImportance()
    if name == "bn_scale":
        return tp.importance.BNScaleImportance()
    return tp.importance.GroupMagnitudeImportance(p=1 if name == "l1" else 2)


def _module(modules: dict[str, nn.Module], name: str) -> nn.Module:
    if name not in modules or not name:
        raise CurateError(f"the network has no layer named {name!r}")
    return modules[name]


def _ignored(model, modules, names: tuple[str, ...] | None) -> list[nn.Module]:
    if names is not None:
        return [_module(modules, name) for name in names]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise CurateError(
            "the network has no nn.Linear classifier to keep: name the layers whose outputs "
            "must stay as they are (ignored layers)"
        )
    return linears[-1:]


def customized_pruners(model: nn.Module) -> dict[type, object]:
    """torch-pruning pruners for the module types in `model` that prune themselves."""
    self_pruning = {
        type(m)
        for m in model.modules()
        if callable(getattr(m, "remove_inputs", None))
        and callable(getattr(m, "remove_outputs", None))
    }
    return {kind: _self_pruning_func() for kind in self_pruning}


@functools.cache
def _self_pruning_func():
    """One torch-pruning function for modules that keep their own channel bookkeeping:
    `in_channels`, `out_channels`, `remove_inputs(idxs)`, `remove_outputs(idxs)`."""
    tp = require_torch_pruning()

    class SelfPruning(tp.pruner.BasePruningFunc):
        def prune_out_channels(self, layer, idxs):
            layer.remove_outputs(idxs)
            return layer

        def prune_in_channels(self, layer, idxs):
            layer.remove_inputs(idxs)
            return layer

        def get_out_channels(self, layer):
            return layer.out_channels

        def get_in_channels(self, layer):
            return layer.in_channels

    return SelfPruning()


def pruned_checkpoint(pruned: Pruned) -> dict:
    """What `save_pruned` writes: see the module docstring for loading it without curate."""
    return {
        "format": FORMAT,
        "input_shape": list(pruned.input_shape),
        "pruning_history": pruned.history,
        "state_dict": pruned.model.state_dict(),
    }


def save_pruned(pruned: Pruned, folder: Folder, *parts: str) -> None:
    """Write the pruned model atomically (a reader never sees half a file)."""
    folder.write_buffer(lambda buffer: torch.save(pruned_checkpoint(pruned), buffer), *parts)


def save_exported(model: nn.Module, input_shape: Sequence[int], folder: Folder, *parts: str) -> str:
    """Write `model` in eval mode as a `torch.export` program whose batch size is free, so
    that it loads with torch alone; returns "" or, when the network cannot be exported (code
    torch.export does not trace), the reason in one line, and writes nothing."""
    model = copy.deepcopy(model).eval()
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    example = torch.zeros(2, *input_shape[1:])  # 2: a batch of 1 would be specialised
    try:
        program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    except Exception as exc:  # torch.export raises many kinds; the .pt file still holds it
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"[:300]
    folder.write_buffer(lambda buffer: torch.export.save(program, buffer), *parts)
    return ""


def load_pruned(path: str | os.PathLike, dense: nn.Module) -> nn.Module:
    """Prune `dense` (a freshly built network of the same kind) as the file records, then
    load its weights; read with `weights_only=True`."""
    return rebuild(_read_pruned(path), dense, str(path))


def rebuild(saved: dict, dense: nn.Module, path: str) -> nn.Module:
    """`dense` pruned as `saved` (what `pruned_checkpoint` gives, read from `path`) records,
    with its weights."""
    tp = require_torch_pruning()
    graph = tp.DependencyGraph().build_dependency(
        dense,
        torch.zeros(saved["input_shape"]),
        customized_pruners=customized_pruners(dense),
    )
    try:
        graph.load_pruning_history(saved["pruning_history"])
    except (AttributeError, IndexError, AssertionError) as exc:
        raise CurateError(
            f"{path} was pruned from a different network ({type(exc).__name__}: {exc})"
        ) from None
    apply_state_dict(dense, saved["state_dict"], path, type(dense).__name__)
    return dense.eval()


def _read_pruned(path: str | os.PathLike) -> dict:
    if not os.path.isfile(path):
        raise CurateError(f"pruned model file not found: {path}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CurateError(
            f"{path} is not a pruned model written by curate ({type(exc).__name__})"
        ) from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise CurateError(f"{path} is not a pruned model written by curate (no {FORMAT} format)")
    return saved
