"""Unstructured pruning of the pretrained CIFAR-10 ResNet-20: global magnitude, layer-wise,
random and LAMP at 50/80/90% sparsity, one-shot without fine-tuning, then fine-tuned with and
without KD at matched steps; IMP with rewinding and its two controls; the dense network
fine-tuned at the same steps as the reference.

    python benchmarks/model_pruning.py [--depth 20] [--steps 200] [--eval-per-class 300]

Reads ../shared/data/cifar10-jpg/cifar10_jpg_full.tar (the lossy JPEG copy: train 50,000,
test 10,000) and ../shared/data/resnet-cifar10/resnet{depth}-*.th beside the project, and exits
cleanly, doing nothing, when either is absent. Writes webdataset shards (jpg + cls) of the
training split and of a seeded per-class sample of the test split, then runs `curate model
sweep` and `curate model prune` through their runners; a rerun resumes them.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
import time
from pathlib import Path, PurePosixPath

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from pipelines.model_pruning.config import PruneConfig, SweepConfig, model_config  # noqa: E402
from pipelines.model_pruning.runner import prune, sweep  # noqa: E402
from pipelines.model_pruning.summary import prune_markdown, sweep_markdown  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
PER_SHARD = 5000
METHODS = ["global", "layerwise", "random", "lamp"]
SPARSITIES = [0.5, 0.8, 0.9]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA / "cifar10-jpg" / "cifar10_jpg_full.tar")
    parser.add_argument("--checkpoints", type=Path, default=DATA / "resnet-cifar10")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "model")
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--steps", type=int, default=200, help="fine-tuning steps (per level)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--eval-per-class", type=int, default=300, help="test images per class")
    parser.add_argument("--imp-levels", type=int, default=3)
    parser.add_argument("--imp-sparsity", type=float, default=0.8)
    parser.add_argument("--rewind-steps", type=int, default=20)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: the machine is shared)"
    )
    return parser.parse_args()


def write_split(data: Path, folder: Path, split: str, per_class: int | None) -> str:
    """The `split/<class>/*.jpg` members (all, or `per_class` of each drawn with seed 0) as
    shards of jpg + cls in a seeded order; returns their brace pattern."""
    if folder.is_dir() and any(folder.glob("*.tar")):
        return _pattern(folder)
    with tarfile.open(data) as tar:
        by_class: dict[int, list[str]] = {i: [] for i in range(len(CLASSES))}
        for member in tar.getmembers():
            parts = PurePosixPath(member.name).parts
            if member.isfile() and parts[-1].endswith(".jpg") and split in parts[:-2]:
                by_class[CLASSES.index(parts[-2])].append(member.name)
        rng = np.random.default_rng(0)
        chosen = [(name, label) for label, names in by_class.items()
                  for name in (sorted(names) if per_class is None else
                               rng.choice(sorted(names), per_class, replace=False))]  # fmt: skip
        chosen = [chosen[i] for i in rng.permutation(len(chosen))]
        folder.mkdir(parents=True, exist_ok=True)
        for start in range(0, len(chosen), PER_SHARD):
            with tarfile.open(folder / f"{start // PER_SHARD:05d}.tar", "w") as shard:
                for name, label in chosen[start : start + PER_SHARD]:
                    key = f"{CLASSES[label]}_{PurePosixPath(name).stem}"
                    _add(shard, f"{key}.jpg", tar.extractfile(name).read())
                    _add(shard, f"{key}.cls", str(label).encode())
    return _pattern(folder)


def _pattern(folder: Path) -> str:
    count = len(list(folder.glob("*.tar")))
    return str(folder / f"{{00000..{count - 1:05d}}}.tar")


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def main() -> int:
    args = arguments()
    checkpoints = sorted(args.checkpoints.glob(f"resnet{args.depth}-*.th"))
    if not args.data.is_file() or not checkpoints:
        print(f"skipping: need {args.data} and {args.checkpoints}/resnet{args.depth}-*.th")
        return 0
    started = time.time()
    work = args.work.resolve()
    common = {
        "model": f"pipelines.cifar_resnet:resnet{args.depth}",
        "checkpoint": str(checkpoints[0]),
        "train": write_split(args.data, work / "shards" / "train", "train", None),
        "eval": write_split(
            args.data, work / "shards" / f"test-{args.eval_per_class}", "test", args.eval_per_class
        ),
        "batch_size": args.batch_size,
        "threads": args.threads,
    }
    timings = {"shards_seconds": round(time.time() - started, 1)}
    results = {}

    def timed(name, function, config):
        start = time.time()
        results[name] = function(config)
        timings[f"{name}_seconds"] = round(time.time() - start, 1)
        print(f"{name}: {timings[f'{name}_seconds']} s", flush=True)

    for kd in (False, True):
        name = "dense_finetuned" + ("_kd" if kd else "")
        config = model_config(PruneConfig, output=str(work / name), method="global",
                              sparsity=0.0, steps=args.steps, kd=kd, **common)  # fmt: skip
        timed(name, prune, config)
    one_shot = model_config(SweepConfig, output=str(work / "one_shot"), methods=METHODS,
                            sparsities=SPARSITIES, steps=0, **common)  # fmt: skip
    timed("one_shot", sweep, one_shot)
    fine_tuned = model_config(SweepConfig, output=str(work / "fine_tuned"), methods=METHODS,
                              sparsities=SPARSITIES, steps=args.steps, kd="both",
                              **common)  # fmt: skip
    timed("fine_tuned", sweep, fine_tuned)
    imp = model_config(PruneConfig, output=str(work / "imp"), method="global", schedule="imp",
                       levels=args.imp_levels, sparsity=args.imp_sparsity, steps=args.steps,
                       rewind_steps=args.rewind_steps, controls=True, **common)  # fmt: skip
    timed("imp", prune, imp)
    timings["total_seconds"] = round(time.time() - started, 1)
    (work / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    for name in ("dense_finetuned", "dense_finetuned_kd"):
        print(f"{name}: top-1 {100 * results[name]['pruned']['accuracy']:.2f}%")
    print(sweep_markdown(results["one_shot"]))
    print(sweep_markdown(results["fine_tuned"]))
    print(prune_markdown(results["imp"]))
    print(json.dumps(timings, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
