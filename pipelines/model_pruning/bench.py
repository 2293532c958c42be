"""`curate model bench RUN`: the measured latency of a run's pruned networks against its dense
one, side by side in this process (`latency.compare_latency`: same inputs, fixed CPU threads,
warm-up, median of repeats), on the CPU and, when there is one, the GPU. Written to
`RUN/latency.json`; unlike every other file of a run it holds times, so it differs between
machines and reruns.

On the GPU an N:M run's pruned network has its 2:4 Linear layers converted to
`torch.sparse.to_sparse_semi_structured` (`semi_structured.py`), and both networks run in
half precision, which those kernels need; everywhere else the pruned network runs as saved:
unstructured and N:M zeros in dense tensors cost what the dense network costs.
"""

from __future__ import annotations

import torch
from torch import nn

from curation import rundir
from curation.errors import CurateError
from curation.storage import Folder
from pipelines.model_pruning import schema
from pipelines.model_pruning.config import BenchConfig, PruneConfig, StructuredConfig, SweepConfig
from pipelines.model_pruning.latency import compare_latency
from pipelines.model_pruning.network import empty_network
from pipelines.model_pruning.pipeline import (
    PRUNE,
    STRUCTURED,
    SWEEP,
    channel_members,
    level_count,
    members,
)
from pipelines.model_pruning.schedules import targets
from pipelines.model_pruning.semi_structured import to_semi_structured

LATENCY = "latency.json"
CONFIGS = {PRUNE: PruneConfig, SWEEP: SweepConfig, STRUCTURED: StructuredConfig}


def _state_network(run: Folder, config, classes: int, *parts: str) -> nn.Module:
    net = empty_network(config, classes)
    net.load_state_dict(schema.load_state(run, *parts, schema.MODEL))
    return net.eval()


def pruned_networks(run: Folder, pipeline: str, config, classes: int) -> dict[str, nn.Module]:
    """Every pruned network of a finished run by name."""
    if pipeline == PRUNE:
        return {"pruned": _state_network(run, config, classes,
                                         *schema.level_parts(level_count(config)))}  # fmt: skip
    if pipeline == SWEEP:
        return {name: _state_network(run, config, classes,
                                     *schema.level_parts(len(targets(config, arm.sparsity)), name))
                for name, arm in members(config).items()}  # fmt: skip
    from pipelines.model_pruning.channels import PRUNED, member_parts
    from pipelines.model_pruning.structured import rebuild

    return {name: rebuild(schema.load_state(run, *member_parts(name), PRUNED),
                          empty_network(config, classes), name)
            for name in channel_members(config)}  # fmt: skip


def devices(choice: str) -> list[str]:
    if choice == "auto":
        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    if choice == "cuda" and not torch.cuda.is_available():
        raise CurateError("--device cuda: CUDA is not available on this machine")
    return [choice]


def bench(run_dir: str, settings: BenchConfig) -> dict:
    """Time every pruned network of the run against the dense one; write RUN/latency.json."""
    run = rundir.resolve(run_dir)
    record = rundir.read_config(run)
    pipeline = record["pipeline"]
    if pipeline not in CONFIGS:
        raise CurateError(f"{run.url} is a {pipeline} run, not a curate model run")
    config = CONFIGS[pipeline](**record["config"])
    if not rundir.is_complete(run, "summary"):
        raise CurateError(f"run {run.url} has not finished: run it to the end first")
    classes = schema.read_metrics(run, schema.level_parts(0))["classes"]
    dense = _state_network(run, config, classes, *schema.level_parts(0))
    shape = (3, config.image_size, config.image_size)
    semi = pipeline == PRUNE and config.method == "nm"
    found: dict = {"settings": settings.model_dump(), "devices": {}}
    for device in devices(settings.device):
        found["devices"][device] = {
            name: _compare(dense, pruned, shape, settings, device, semi)
            for name, pruned in pruned_networks(run, pipeline, config, classes).items()
        }
    run.write_json(found, LATENCY)
    return found


def _compare(dense: nn.Module, pruned: nn.Module, shape, settings: BenchConfig, device: str,
             semi: bool) -> dict:  # fmt: skip
    """CPU: float32 as saved. CUDA: float16, an N:M network's 2:4 Linear layers sparse."""
    timing = (shape, settings.batch_sizes, settings.threads, settings.warmup, settings.repeats)
    if device == "cpu":
        return compare_latency(dense, pruned, *timing, device)
    converted: list[str] = []

    def sparse(model: nn.Module) -> None:
        converted.extend(to_semi_structured(model))

    result = compare_latency(dense, pruned, *timing, device, torch.float16,
                             sparse if semi else None)  # fmt: skip
    return {**result, "semi_structured_layers": converted}


def latency_markdown(found: dict) -> str:
    """Median milliseconds per batch, dense and pruned, and the speed-up, per device."""
    lines = []
    for device, networks in found["devices"].items():
        settings = found["settings"]
        lines += [f"{device}, {settings['threads']} thread(s), median of {settings['repeats']}:",
                  "", "| network | batch | dense ms | pruned ms | speed-up |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for name, result in networks.items():
            lines += [f"| {name} | {row['batch_size']} | {row['dense_ms']:.3f} | "
                      f"{row['pruned_ms']:.3f} | {row['speedup']:.2f}x |"
                      for row in result["batches"]]  # fmt: skip
        lines.append("")
    return "\n".join(lines)
