"""Top-1 of the pretrained CIFAR ResNets on the 10,000 CIFAR-10 test JPEGs: checks that
`pipelines.cifar_resnet` rebuilds akamaster's networks exactly (the data README measured
resnet20 81.0%, resnet56 83.2% on this lossy JPEG copy; 91.8% and 93.6% on the original).

    python benchmarks/cifar_resnet_accuracy.py [--depths 20 56] [--data TAR] [--checkpoints DIR]

Reads ../shared/data/cifar10-jpg/cifar10_jpg_full.tar as a tar stream and the checkpoints
../shared/data/resnet-cifar10/resnet{depth}-*.th (beside the project); exits cleanly, doing
nothing, when either is absent.
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
import time
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from pipelines.cifar_resnet import load_pretrained  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
PUBLISHED = {20: 81.0, 56: 83.2}  # measured on this JPEG copy (data README)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA / "cifar10-jpg" / "cifar10_jpg_full.tar")
    parser.add_argument("--checkpoints", type=Path, default=DATA / "resnet-cifar10")
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 56])
    parser.add_argument("--batch-size", type=int, default=500)
    return parser.parse_args()


def read_test_set(tar_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The `test/<class>/*.jpg` members as normalised float images (N, 3, 32, 32) and their
    labels in CLASSES order; read as one pass over the tar stream."""
    images, labels = [], []
    with tarfile.open(tar_path, "r|*") as tar:
        for member in tar:
            parts = PurePosixPath(member.name).parts
            if not member.isfile() or len(parts) != 3 or parts[0] != "test":
                continue
            if parts[1] not in CLASSES or not parts[2].endswith(".jpg"):
                continue
            with Image.open(io.BytesIO(tar.extractfile(member).read())) as image:
                images.append(np.asarray(image.convert("RGB")))
            labels.append(CLASSES.index(parts[1]))
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return (pixels - mean) / std, torch.tensor(labels)


def top1(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int) -> float:
    """Percentage of images whose highest logit is their label."""
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            logits = model(images[start : start + batch])
            correct += int((logits.argmax(1) == labels[start : start + batch]).sum())
    return 100.0 * correct / len(images)


def checkpoint(folder: Path, depth: int) -> Path | None:
    found = sorted(folder.glob(f"resnet{depth}-*.th"))
    return found[0] if found else None


def main() -> int:
    args = arguments()
    if not args.data.is_file():
        print(f"skipping: CIFAR-10 JPEG tar not found at {args.data}")
        return 0
    paths = {depth: checkpoint(args.checkpoints, depth) for depth in args.depths}
    if not all(paths.values()):
        missing = [str(depth) for depth, path in paths.items() if path is None]
        print(f"skipping: no resnet{'/'.join(missing)} checkpoint in {args.checkpoints}")
        return 0
    started = time.time()
    images, labels = read_test_set(args.data)
    print(f"{len(images)} test images read in {time.time() - started:.1f} s")
    for depth, path in paths.items():
        accuracy = top1(load_pretrained(depth, path), images, labels, args.batch_size)
        expected = PUBLISHED.get(depth)
        note = f" (data README: {expected:.1f}%)" if expected else ""
        print(f"resnet{depth} ({path.name}): top-1 {accuracy:.2f}%{note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
