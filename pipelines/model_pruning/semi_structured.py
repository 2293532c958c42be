"""N:M networks on sparse tensor cores, and the 2-D views in which their N:M pattern holds.

`torch.sparse.to_sparse_semi_structured` takes a 2-D half-precision CUDA tensor whose rows hold
2 nonzeros in every 4 consecutive entries, and `F.linear` then runs on sparse tensor cores
(Ampere or later). An `nn.Linear` weight pruned 2:4 by `--method nm` is that tensor as it is.
PyTorch has no semi-structured convolution: a Conv2d weight is 2:4 only in its GEMM view,
`(out, kh * kw * in)` for the channels-last layout (what NVIDIA's implicit-GEMM convolutions
in NHWC multiply, and the grouping of `--nm-layout channels-last`), or `(out, in * kh * kw)`
for the row-major layout; `gemm_view` gives it, for kernels outside PyTorch (cuSPARSELt).
On the CPU no kernel uses the pattern: an N:M network costs what the dense one costs.
"""

from __future__ import annotations

import torch
from torch import nn


def gemm_view(weight: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    """The 2-D matrix whose rows the N:M groups run along: a Linear weight as it is, a Conv2d
    weight as `(out, kh * kw * in)` (channels-last) or `(out, in * kh * kw)` (rows)."""
    if weight.dim() == 4 and channels_last:
        return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)
    return weight.reshape(weight.shape[0], -1)


def group_nonzeros(matrix: torch.Tensor, m: int) -> torch.Tensor:
    """Nonzeros in every group of `m` consecutive entries of each row: (rows, cols / m)."""
    return (matrix != 0).reshape(matrix.shape[0], -1, m).sum(-1)


def to_semi_structured(net: nn.Module) -> list[str]:
    """Give every `nn.Linear` whose weight is 2:4 along its input a semi-structured sparse
    weight, in place (the network on CUDA in float16 or bfloat16, as the kernels need);
    returns the names converted. Layers the kernels refuse (too small, not 2:4) stay dense."""
    from torch.sparse import to_sparse_semi_structured

    converted = []
    for name, layer in net.named_modules():
        weight = layer.weight if isinstance(layer, nn.Linear) else None
        if weight is None or weight.shape[1] % 4 or not (group_nonzeros(weight, 4) <= 2).all():
            continue
        try:
            sparse = to_sparse_semi_structured(weight.detach())
        except (RuntimeError, ValueError):  # shape or dtype the kernels do not support
            continue
        layer.weight = nn.Parameter(sparse, requires_grad=False)
        converted.append(name)
    return converted
