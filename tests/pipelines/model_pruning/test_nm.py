"""`curate model prune --method nm`: exactly N of every M along the chosen layout, the export a
plain state_dict in that pattern, and no speed-up on the CPU (measured, not assumed)."""

import json

import pytest
import torch

from curation.storage import Folder
from pipelines.model_pruning.schema import load_masks
from pipelines.model_pruning.semi_structured import gemm_view, group_nonzeros, to_semi_structured
from tests.pipelines.model_pruning.nets import tiny_cnn
from tests.pipelines.model_pruning.runs import run_prune


@pytest.mark.parametrize(("nm", "layout"), [("2:4", "channels-last"), ("1:4", "rows")])
def test_every_group_keeps_exactly_n(data, tmp_path, nm, layout):
    n, m = map(int, nm.split(":"))
    summary = run_prune(data, tmp_path / "out", method="nm", sparsity=None, nm=nm,
                        nm_layout=layout)  # fmt: skip
    assert summary["sparsity_requested"] == 1 - n / m
    masks = load_masks(Folder(str(tmp_path / "out/_run")), "level_1", "mask.pt")
    channels_last = layout == "channels-last"
    net = tiny_cnn(5)
    net.load_state_dict(torch.load(tmp_path / "out/model.pt", weights_only=True))
    for name, layer in net.named_modules():
        if name not in masks:
            continue
        view = gemm_view(layer.weight, channels_last)
        if view.shape[1] % m:  # the first conv: 3 input channels, 27 inputs; left dense
            assert masks[name].all()
            continue
        assert (group_nonzeros(gemm_view(masks[name].float(), channels_last), m) == n).all()
        assert (group_nonzeros(view, m) == n).all()  # the exported weights keep the pattern


def test_nm_with_a_sparsity_or_another_schedule_is_refused(data, tmp_path):
    with pytest.raises(Exception, match="the sparsity is 1 - N/M"):
        run_prune(data, tmp_path / "a", method="nm", sparsity=0.3)
    with pytest.raises(Exception, match="prunes one-shot"):
        run_prune(data, tmp_path / "b", method="nm", sparsity=None, schedule="gradual")
    with pytest.raises(Exception, match="--nm takes N:M"):
        run_prune(data, tmp_path / "c", method="nm", sparsity=None, nm="4:2")


def test_cpu_latency_is_measured_and_reported(data, tmp_path):
    from pipelines.model_pruning.bench import bench
    from pipelines.model_pruning.config import BenchConfig

    run_prune(data, tmp_path / "out", method="nm", sparsity=None)
    found = bench(str(tmp_path / "out"), BenchConfig(repeats=3, warmup=1, device="cpu"))
    rows = found["devices"]["cpu"]["pruned"]["batches"]
    assert [r["batch_size"] for r in rows] == [1, 64]
    assert json.loads((tmp_path / "out/_run/latency.json").read_text()) == found


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_2_4_linear_runs_semi_structured_on_the_gpu():
    from metrics.nm_sparsity import nm_masks

    layer = torch.nn.Linear(128, 128).half().cuda()
    with torch.no_grad():
        layer.weight.mul_(nm_masks({"w": layer.weight.float().cpu()}).masks["w"].cuda())
    x = torch.randn(64, 128, device="cuda", dtype=torch.float16)
    dense = layer(x)
    net = torch.nn.Sequential(layer)
    assert to_semi_structured(net) == ["0"]
    assert torch.allclose(net(x), dense, atol=1e-2, rtol=1e-2)
