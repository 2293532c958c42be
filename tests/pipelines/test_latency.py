import pytest
import torch
from torch import nn

from curation.errors import CurateError
from pipelines.model_pruning.latency import compare_latency


class Recorder(nn.Module):
    """A 1x1 conv that notes the thread count and the inputs it was run with."""

    def __init__(self, width: int):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 1)
        self.seen: list[tuple[int, torch.Tensor, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((torch.get_num_threads(), x.clone(), torch.is_inference_mode_enabled()))
        return self.conv(x)


def _models():
    return Recorder(64), Recorder(4)


def test_both_models_run_on_the_same_inputs_with_fixed_threads(monkeypatch):
    dense, pruned = _models()
    # time the models themselves rather than copies, so that what they saw can be read back
    monkeypatch.setattr("pipelines.model_pruning.latency.copy.deepcopy", lambda model: model)
    before = torch.get_num_threads()
    result = compare_latency(dense, pruned, (3, 8, 8), (1, 4), threads=1, warmup=2, repeats=3)
    assert torch.get_num_threads() == before
    assert [row["batch_size"] for row in result["batches"]] == [1, 4]
    assert len(dense.seen) == len(pruned.seen) == 2 * (2 + 3)
    for (threads, x, inference), (_, y, _) in zip(dense.seen, pruned.seen, strict=True):
        assert threads == 1 and inference
        assert torch.equal(x, y)
    assert {tuple(x.shape) for _, x, _ in dense.seen} == {(1, 3, 8, 8), (4, 3, 8, 8)}


def test_result_is_a_small_dict_with_the_ratio():
    result = compare_latency(*_models(), (3, 16, 16), threads=1, warmup=1, repeats=3)
    assert {k: result[k] for k in ("device", "threads", "warmup", "repeats")} == {
        "device": "cpu",
        "threads": 1,
        "warmup": 1,
        "repeats": 3,
    }
    for row in result["batches"]:
        assert row["dense_ms"] > 0 and row["pruned_ms"] > 0
        assert row["speedup"] == pytest.approx(row["dense_ms"] / row["pruned_ms"], rel=1e-2)


def test_caller_models_are_left_as_they_were():
    dense, pruned = _models()
    dense.train()
    compare_latency(dense, pruned, (3, 4, 4), (1,), warmup=0, repeats=1)
    assert dense.training and not dense.seen and not pruned.seen


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"device": "cuda"}, "CUDA is not available"),
        ({"threads": 0}, "threads >= 1"),
        ({"repeats": 0}, "repeats >= 1"),
    ],
)
def test_bad_requests_are_one_clear_error(arguments, message, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(CurateError, match=message):
        compare_latency(*_models(), (3, 4, 4), **arguments)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_timing_runs_on_the_device():
    result = compare_latency(*_models(), (3, 32, 32), warmup=2, repeats=5, device="cuda")
    assert result["device"] == "cuda"
    assert all(row["dense_ms"] > 0 and row["pruned_ms"] > 0 for row in result["batches"])
