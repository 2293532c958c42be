"""Latency of a dense and a pruned model, measured side by side so that they see the same
process, thread count, inputs and machine load: only then is their ratio the speed-up."""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from curation.errors import CurateError


def compare_latency(
    dense: nn.Module,
    pruned: nn.Module,
    input_shape: Sequence[int],
    batch_sizes: Sequence[int] = (1, 64),
    threads: int = 1,
    warmup: int = 10,
    repeats: int = 50,
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    convert: Callable[[nn.Module], object] | None = None,
) -> dict:
    """Median milliseconds per forward pass of each model, and dense / pruned, per batch size.

    `input_shape` is one sample's (e.g. (3, 32, 32)). Both models run on copies in eval mode,
    moved to `device` and `dtype`, under `torch.inference_mode`, alternating repeat by repeat
    so that drifting load hits both alike; `convert` then changes the pruned copy in place
    (sparse weights for sparse kernels). CPU threads are fixed to `threads` and restored
    afterwards; on CUDA each pass is synchronised before the clock is read."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CurateError(f"latency on {device} was asked for, but CUDA is not available")
    if threads < 1 or warmup < 0 or repeats < 1:
        raise CurateError(
            f"latency needs threads >= 1, warmup >= 0, repeats >= 1 "
            f"(got {threads}, {warmup}, {repeats})"
        )
    models = [copy.deepcopy(m).to(device, dtype).eval() for m in (dense, pruned)]
    if convert is not None:
        convert(models[1])
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rows = [_time_batch(models, input_shape, b, warmup, repeats, device, dtype)
                for b in batch_sizes]  # fmt: skip
    finally:
        torch.set_num_threads(saved_threads)
    return {
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
        "threads": threads,
        "warmup": warmup,
        "repeats": repeats,
        "batches": rows,
    }


def _time_batch(models, input_shape, batch_size, warmup, repeats, device, dtype) -> dict:
    generator = torch.Generator().manual_seed(batch_size)
    inputs = torch.randn((batch_size, *input_shape), generator=generator).to(device, dtype)
    times: list[list[float]] = [[], []]
    with torch.inference_mode():
        for model in models:
            for _ in range(warmup):
                model(inputs)
        for _ in range(repeats):
            for model, record in zip(models, times, strict=True):
                record.append(_seconds(model, inputs, device))
    dense_ms, pruned_ms = (1000 * statistics.median(record) for record in times)
    return {
        "batch_size": batch_size,
        "dense_ms": round(dense_ms, 4),
        "pruned_ms": round(pruned_ms, 4),
        "speedup": round(dense_ms / pruned_ms, 3),
    }


def _seconds(model: nn.Module, inputs: torch.Tensor, device: str) -> float:
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    model(inputs)
    if cuda:
        torch.cuda.synchronize(device)
    return time.perf_counter() - start
