"""Channel pruning of the pretrained CIFAR-10 ResNet-56 to about 2x fewer MACs: group-L2
importance fine-tuned with KD, against the same architecture trained from scratch (Liu et al.
2019) and against random channels; accuracy, parameters, MACs, file size and measured CPU
latency for each; beside them N:M 2:4 one-shot in both Conv2d layouts (its CPU latency
measured: no speed-up), and the dense network fine-tuned with KD at the same steps (the
reference for every drop).

    python benchmarks/structured_pruning.py [--steps 300] [--eval-per-class 300]

Reads the CIFAR-10 JPEG tar and resnet56-*.th from ../shared/data (beside the project) and
exits cleanly, doing nothing, when either is absent; writes the shards as
benchmarks/model_pruning.py does, then runs `curate model structured`, `curate model prune
--method nm` and `curate model bench` through their Python entry points (a rerun resumes).
Needs the structured extra (torch-pruning).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from benchmarks.model_pruning import DATA, write_split  # noqa: E402
from pipelines.model_pruning.bench import bench, latency_markdown  # noqa: E402
from pipelines.model_pruning.config import (  # noqa: E402
    BenchConfig,
    PruneConfig,
    StructuredConfig,
    model_config,
)
from pipelines.model_pruning.runner import prune, structured  # noqa: E402
from pipelines.model_pruning.summary import prune_markdown, structured_markdown  # noqa: E402

NM = "nm_channels-last_one_shot"


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA / "cifar10-jpg" / "cifar10_jpg_full.tar")
    parser.add_argument("--checkpoints", type=Path, default=DATA / "resnet-cifar10")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "structured")
    parser.add_argument("--depth", type=int, default=56)
    parser.add_argument("--macs", type=float, default=2.0, help="MACs reduction factor")
    parser.add_argument("--steps", type=int, default=300, help="fine-tuning steps in all")
    parser.add_argument("--levels", type=int, default=2, help="pruning steps (cubic)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20, help="timed passes per network")
    parser.add_argument("--eval-per-class", type=int, default=300, help="test images per class")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (the machine is shared)"
    )
    return parser.parse_args()


def main() -> int:
    args = arguments()
    checkpoints = sorted(args.checkpoints.glob(f"resnet{args.depth}-*.th"))
    if not args.data.is_file() or not checkpoints:
        print(f"skipping: need {args.data} and {args.checkpoints}/resnet{args.depth}-*.th")
        return 0
    started = time.time()
    work = args.work.resolve()
    shards = work.parent / "model" / "shards"  # shared with benchmarks/model_pruning.py
    common = {
        "model": f"pipelines.cifar_resnet:resnet{args.depth}",
        "checkpoint": str(checkpoints[0]),
        "train": write_split(args.data, shards / "train", "train", None),
        "eval": write_split(
            args.data, shards / f"test-{args.eval_per_class}", "test", args.eval_per_class
        ),
        "batch_size": args.batch_size,
        "threads": args.threads,
        "steps": args.steps,
    }
    timings: dict[str, float] = {}
    results: dict[str, dict] = {}

    def timed(name: str, run, schema, **options) -> None:
        start = time.time()
        config = model_config(schema, output=str(work / name), **{**common, **options})
        results[name] = run(config)
        timings[f"{name}_seconds"] = round(time.time() - start, 1)
        print(f"{name}: {timings[f'{name}_seconds']} s", flush=True)

    timed("dense_kd", prune, PruneConfig, method="global", sparsity=0.0, kd=True)  # reference
    channels = {"macs": [args.macs], "schedule": "gradual", "levels": args.levels, "kd": "on"}
    timed("l2", structured, StructuredConfig, importances=["l2"], scratch=True, **channels)
    timed("random", structured, StructuredConfig, importances=["random"], **channels)
    for layout in ("channels-last", "rows"):
        timed(f"nm_{layout}_one_shot", prune, PruneConfig, method="nm", nm_layout=layout,
              steps=0)  # fmt: skip
    start = time.time()
    settings = BenchConfig(threads=args.threads, warmup=5, repeats=args.repeats)
    latency = {name: bench(str(work / name), settings) for name in ("l2", "random", NM)}
    timings["bench_seconds"] = round(time.time() - start, 1)
    timings["total_seconds"] = round(time.time() - started, 1)
    (work / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    print(f"dense fine-tuned with KD: {100 * results['dense_kd']['pruned']['accuracy']:.2f}%")
    for name in ("l2", "random"):
        print(structured_markdown(results[name]))
    for name in (NM, "nm_rows_one_shot"):
        print(f"{name}:\n{prune_markdown(results[name])}")
    for name, found in latency.items():
        print(f"{name}:\n{latency_markdown(found)}")
    print(json.dumps(timings, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
