"""An independent check of a `curate model structured` member, as a user without curate would
make it: the member and the dense network exported as `torch.export` programs, then loaded in
an isolated interpreter (`python -I`: no PYTHONPATH, no project folder on the path) that must
import neither curate nor torch-pruning, and there its accuracy on the run's test images, its
parameter count and its latency against the dense network (batch 1 and 64, one thread, the
median of alternating repeats) measured with plain torch. MACs are counted by forward hooks on
the convolutions, BN and linear layers, not by torch-pruning's counter that the run used.

    python benchmarks/check_structured_export.py [--run benchmarks/out/structured/l2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

import torch  # noqa: E402
from torch import nn  # noqa: E402

from curation.storage import Folder  # noqa: E402
from pipelines.model_pruning.config import StructuredConfig  # noqa: E402
from pipelines.model_pruning.data import load_data  # noqa: E402
from pipelines.model_pruning.network import dense_network, normalised  # noqa: E402
from pipelines.model_pruning.structured import load_pruned, save_exported  # noqa: E402

ALONE = """
import json, statistics, sys, time
import torch
torch.set_num_threads(1)
folder = sys.argv[1]
dense, pruned = (torch.export.load(f"{folder}/{n}.pt2").module() for n in ("dense", "pruned"))
images, labels = torch.load(f"{folder}/images.pt"), torch.load(f"{folder}/labels.pt")
with torch.no_grad():
    found = {"accuracy": float((torch.cat([pruned(images[i:i + 256]).argmax(1)
             for i in range(0, len(images), 256)]) == labels).float().mean()),
             "params": sum(p.numel() for p in pruned.parameters()),
             "dense_params": sum(p.numel() for p in dense.parameters()), "latency": []}
    for batch in (1, 64):
        x, times = images[:batch], ([], [])
        for model in (dense, pruned):
            for _ in range(5):
                model(x)
        for _ in range(int(sys.argv[2])):
            for model, record in zip((dense, pruned), times):
                start = time.perf_counter(); model(x); record.append(time.perf_counter() - start)
        ms = [1000 * statistics.median(r) for r in times]
        found["latency"].append({"batch": batch, "dense_ms": ms[0], "pruned_ms": ms[1],
                                 "speedup": ms[0] / ms[1]})
mine = [m for m in sys.modules if m.split(".")[0] in ("curation", "pipelines", "torch_pruning")]
assert not mine, mine
print(json.dumps(found))
"""


def hooked_count(model: nn.Module, x: torch.Tensor) -> int:
    """MACs per sample: conv k_h k_w c_in/groups per output element, BN 2 per element, linear
    c_in c_out (biases 1 each)."""
    macs = 0

    def count(module, inputs, output):
        nonlocal macs
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            per_output = module.in_channels // module.groups * kh * kw
            macs += output.numel() * (per_output + (module.bias is not None))
        elif isinstance(module, nn.BatchNorm2d):
            macs += 2 * inputs[0].numel()
        elif isinstance(module, nn.Linear):
            bias = module.out_features if module.bias is not None else 0
            macs += module.in_features * module.out_features + bias

    hooks = [m.register_forward_hook(count) for m in model.modules()]
    with torch.no_grad():
        model.eval()(x)
    for hook in hooks:
        hook.remove()
    return macs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=ROOT / "benchmarks/out/structured/l2")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    summary = json.loads((args.run / "summary.json").read_text())
    record = json.loads((args.run / "_run/config.json").read_text())
    config = StructuredConfig(**record["config"])
    data = load_data(config)
    row = summary["rows"][0]
    dense = dense_network(config, data.classes)
    pruned = load_pruned(args.run / row["model_file"], dense_network(config, data.classes))
    shape = (1, 3, config.image_size, config.image_size)
    with tempfile.TemporaryDirectory() as work:
        folder = Folder(work)
        for name, net in (("dense", dense), ("pruned", pruned)):
            assert not save_exported(normalised(net, config), shape, folder, f"{name}.pt2")
        torch.save(data.eval.images.float() / 255, f"{work}/images.pt")
        torch.save(data.eval.labels, f"{work}/labels.pt")
        alone = subprocess.run([sys.executable, "-I", "-c", ALONE, work, str(args.repeats)],
                               check=True, capture_output=True, text=True, cwd=work)  # fmt: skip
    found = json.loads(alone.stdout)
    x = torch.zeros(shape)
    found["macs"], found["dense_macs"] = hooked_count(pruned, x), hooked_count(dense, x)
    reported = ("member", "accuracy", "params_before", "params_after", "macs_before", "macs_after")
    found["run"] = {key: row[key] for key in reported}
    print(json.dumps(found, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
