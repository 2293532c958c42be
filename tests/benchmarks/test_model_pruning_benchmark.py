"""The model-pruning benchmarks' shard writer, on a generated tar laid out like the CIFAR-10
JPEG copy, so that the benchmark trains and tests on what it says."""

import io
import tarfile

import numpy as np
from PIL import Image

from benchmarks.model_pruning import CLASSES, write_split
from pipelines.images import read_labelled
from shards.paths import expand_shards


def _jpeg(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), value, dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def _cifar_like(path, per_class: int) -> None:
    with tarfile.open(path, "w") as tar:
        for split in ("train", "test"):
            for label, name in enumerate(CLASSES):
                for i in range(per_class):
                    data = _jpeg(20 * label + (split == "test"))
                    info = tarfile.TarInfo(f"cifar10/{split}/{name}/{i:04d}.jpg")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


def test_splits_are_labelled_by_class_and_sampled_per_class(tmp_path):
    _cifar_like(tmp_path / "cifar.tar", per_class=4)
    train = write_split(tmp_path / "cifar.tar", tmp_path / "train", "train", None)
    test = write_split(tmp_path / "cifar.tar", tmp_path / "test", "test", 2)
    read = read_labelled(expand_shards([train]), 32)
    assert len(read) == 40 and sorted(read.labels.tolist()) == sorted(list(range(10)) * 4)
    for image, label in zip(read.images, read.labels, strict=True):  # the class's own images
        assert abs(int(image.float().mean()) - 20 * int(label)) <= 2
    sampled = read_labelled(expand_shards([test]), 32)
    assert sorted(sampled.labels.tolist()) == sorted(list(range(10)) * 2)
    assert write_split(tmp_path / "cifar.tar", tmp_path / "test", "test", 2) == test  # reused
