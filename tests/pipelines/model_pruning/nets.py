"""Networks small enough to prune and train in a test: `module:function` names for `--model`."""

from __future__ import annotations

import torch
from torch import nn


def tiny_cnn(num_classes: int = 5) -> nn.Module:
    """Two 3x3 conv-BN-ReLU layers (8, 16 channels), global pooling, a linear classifier."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, stride=2, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, num_classes),
    )


def no_prunable(num_classes: int = 5) -> nn.Module:
    """Only a norm layer: nothing to prune."""
    return nn.Sequential(nn.Flatten(), nn.LayerNorm(3 * 16 * 16))


class HandSet(nn.Module):
    """Bias-free Linear layers with weights given by hand, chained, then a `head`: each image
    is reduced to its channel means, repeated to the first layer's input size."""

    def __init__(self, values: dict[str, list], num_classes: int):
        super().__init__()
        width = 0
        for name, value in values.items():
            weight = torch.tensor(value, dtype=torch.float32)
            layer = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
            layer.weight.data.copy_(weight)
            self.add_module(name, layer)
            width = width or weight.shape[1]
        self.width = width
        self.chain = list(values)
        self.head = nn.Linear(weight.shape[0], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean(dim=(2, 3)).repeat(1, -(-self.width // 3))[:, : self.width]
        for name in self.chain:
            x = getattr(self, name)(x)
        return self.head(x)


def lamp_case(num_classes: int = 5) -> nn.Module:
    """tests/metrics/test_lamp.py's layers: a sorted 1, 8, 9, 10; b 2, 3."""
    return HandSet({"a": [[8.0, -1.0], [10.0, 9.0]], "b": [[3.0, -2.0]]}, num_classes)


def mt_case(num_classes: int = 5) -> nn.Module:
    """tests/metrics/test_magnitude.py's layers: a 0.1 .. 0.6, b 1 .. 4."""
    return HandSet({"a": [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]], "b": [[1.0], [2.0], [3.0], [4.0]]},
                   num_classes)  # fmt: skip
