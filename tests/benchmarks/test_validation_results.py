"""The results run's data preparation, on a generated tar laid out like the CIFAR-10 JPEG copy,
and its clean skip when the shared data is absent."""

import io
import sys
import tarfile
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from benchmarks import validation_results as bench
from pipelines.images import read_labelled


def _jpeg(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), value, dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def _cifar_like(path) -> None:
    with tarfile.open(path, "w") as tar:
        for split, count in (("train", 3), ("test", 2)):
            for label, name in enumerate(bench.CLASSES):
                for i in range(count):
                    data = _jpeg(20 * label)
                    info = tarfile.TarInfo(f"{split}/{name}/{i:04d}.jpg")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


def test_each_split_is_drawn_per_class_into_labelled_shards_once(tmp_path):
    _cifar_like(tmp_path / "cifar.tar")
    with tarfile.open(tmp_path / "cifar.tar") as tar:
        pool = bench.write_split(tar, "train", 2, tmp_path / "train", seed=0)
        test = bench.write_split(tar, "test", 2, tmp_path / "test", seed=0)
        written = [p.stat().st_mtime_ns for p in (tmp_path / "train").glob("*.tar")]
        assert bench.write_split(tar, "train", 2, tmp_path / "train", seed=0) == pool
        assert [p.stat().st_mtime_ns for p in (tmp_path / "train").glob("*.tar")] == written
        with pytest.raises(SystemExit, match="another draw"):
            bench.write_split(tar, "train", 3, tmp_path / "train", seed=0)
    read = read_labelled(pool, 8)
    assert Counter(read.labels.tolist()) == {c: 2 for c in range(len(bench.CLASSES))}
    assert all(k.startswith("train_") for k in read.keys)
    assert len(read_labelled(test, 8)) == 2 * len(bench.CLASSES)


def test_skips_cleanly_without_the_shared_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["validation_results.py", "--data", str(tmp_path / "none"),
                                      "--work", str(tmp_path / "work")])  # fmt: skip
    assert bench.main() == 0
    assert "skipping" in capsys.readouterr().out
    assert not (tmp_path / "work").exists()
