"""The CIFAR-10 ResNets of He et al. 2016 (section 4.2) as in akamaster/pytorch_resnet_cifar10:
16/32/64 channels, 6n+2 layers, option-A shortcuts, so its pretrained checkpoints load as they are.

The option-A shortcut is a module holding which input channel lands on which output channel
(rather than akamaster's lambda), so that the model pickles and so that structured pruning can
remove channels on either side of it and stay exact.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from curation.errors import CurateError
from pipelines.networks import load_weights


class DownsampleShortcut(nn.Module):
    """Option A: `F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))`.

    Input channel `source[k]` lands on output channel `target[k]`; every other output channel is
    zero. The indices are non-persistent buffers, so state_dicts match akamaster's checkpoints;
    a pruned model gets them back by replaying its pruning history."""

    def __init__(self, in_planes: int, planes: int):
        super().__init__()
        pad = planes // 4
        self.in_channels = in_planes
        self.out_channels = planes
        self.register_buffer("source", torch.arange(in_planes), persistent=False)
        self.register_buffer("target", torch.arange(in_planes) + pad, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept = x[:, :, ::2, ::2][:, self.source]
        out = kept.new_zeros(kept.shape[0], self.out_channels, *kept.shape[2:])
        return out.index_copy(1, self.target, kept)

    def remove_inputs(self, idxs: Sequence[int]) -> None:
        """Drop input channels `idxs`; the outputs they fed become zero."""
        keep, remap = _survivors(self.in_channels, idxs, self.source.device)
        fed = keep[self.source]
        self.source, self.target = remap[self.source[fed]], self.target[fed]
        self.in_channels = int(keep.sum())

    def remove_outputs(self, idxs: Sequence[int]) -> None:
        """Drop output channels `idxs`; the inputs that fed them are no longer copied."""
        keep, remap = _survivors(self.out_channels, idxs, self.target.device)
        fed = keep[self.target]
        self.source, self.target = self.source[fed], remap[self.target[fed]]
        self.out_channels = int(keep.sum())

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}"


def _survivors(
    size: int, idxs: Sequence[int], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which of `size` channels stay once `idxs` go, and each survivor's new position."""
    keep = torch.ones(size, dtype=torch.bool, device=device)
    keep[torch.as_tensor(list(idxs), dtype=torch.long, device=device)] = False
    return keep, torch.cumsum(keep, 0) - 1


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and the shortcut, added before the last ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = DownsampleShortcut(in_planes, planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """A 3x3 stem, three stages of `blocks` basic blocks (16, 32, 64 channels; the last two
    halve the resolution), global average pooling and a linear classifier."""

    def __init__(self, blocks: int, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = _stage(16, 16, blocks, stride=1)
        self.layer2 = _stage(16, 32, blocks, stride=2)
        self.layer3 = _stage(32, 64, blocks, stride=2)
        self.linear = nn.Linear(64, num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def _stage(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [BasicBlock(in_planes, planes, stride)]
    layers += [BasicBlock(planes, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def resnet8(num_classes: int = 10) -> CifarResNet:
    """One block per stage: the smallest of the family, a student that trains in minutes on
    CPU (no pretrained checkpoint)."""
    return CifarResNet(1, num_classes)


def resnet20(num_classes: int = 10) -> CifarResNet:
    return CifarResNet(3, num_classes)


def resnet32(num_classes: int = 10) -> CifarResNet:
    return CifarResNet(5, num_classes)


def resnet44(num_classes: int = 10) -> CifarResNet:
    return CifarResNet(7, num_classes)


def resnet56(num_classes: int = 10) -> CifarResNet:
    return CifarResNet(9, num_classes)


DEPTHS = {20: resnet20, 32: resnet32, 44: resnet44, 56: resnet56}


def load_pretrained(depth: int, path: str | os.PathLike) -> CifarResNet:
    """An akamaster checkpoint (`{"best_prec1", "state_dict"}`, keys prefixed `module.`) in
    eval mode; read with `weights_only=True`, so the file cannot run code."""
    if depth not in DEPTHS:
        raise CurateError(f"no CIFAR ResNet of depth {depth}: choose one of {sorted(DEPTHS)}")
    model = DEPTHS[depth]()
    load_weights(model, path)
    return model.eval()
