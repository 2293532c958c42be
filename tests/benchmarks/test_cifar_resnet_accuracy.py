"""The accuracy check's reader and scorer, on a generated tar laid out like the CIFAR-10 JPEG
copy, so the benchmark keeps measuring what it says."""

import io
import sys
import tarfile

import numpy as np
import torch
from PIL import Image

from benchmarks import cifar_resnet_accuracy as bench


def _jpeg(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), value, dtype=np.uint8)).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def test_reads_only_test_images_with_labels_in_class_order(tmp_path):
    path = tmp_path / "cifar.tar"
    with tarfile.open(path, "w") as tar:
        _add(tar, "README.md", b"CIFAR-10")
        _add(tar, "train/cat/0000.jpg", _jpeg(10))
        _add(tar, "test/truck/0000.jpg", _jpeg(255))
        _add(tar, "test/airplane/0003.jpg", _jpeg(0))
    images, labels = bench.read_test_set(path)
    assert images.shape == (2, 3, 32, 32)
    assert labels.tolist() == [9, 0]
    mean, std = torch.tensor(bench.MEAN), torch.tensor(bench.STD)
    assert torch.allclose(images[0, :, 0, 0], (1 - mean) / std, atol=0.02)
    assert torch.allclose(images[1, :, 0, 0], -mean / std, atol=0.02)


def test_top1_counts_the_highest_logit():
    class FirstPixel(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.one_hot(x[:, 0, 0, 0].long(), 10).float()

    images = torch.tensor([3, 1, 4, 1]).float().view(4, 1, 1, 1).expand(4, 3, 1, 1)
    assert bench.top1(FirstPixel(), images, torch.tensor([3, 1, 0, 0]), batch=3) == 50.0


def test_absent_data_skips_cleanly(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["bench", "--data", str(tmp_path / "none.tar")])
    assert bench.main() == 0
    assert "skipping: CIFAR-10 JPEG tar not found" in capsys.readouterr().out


def test_absent_checkpoints_skip_cleanly(tmp_path, monkeypatch, capsys):
    data = tmp_path / "cifar.tar"
    with tarfile.open(data, "w") as tar:
        _add(tar, "test/cat/0000.jpg", _jpeg(10))
    argv = ["bench", "--data", str(data), "--checkpoints", str(tmp_path), "--depths", "20", "56"]
    monkeypatch.setattr(sys, "argv", argv)
    assert bench.main() == 0
    assert f"skipping: no resnet20/56 checkpoint in {tmp_path}" in capsys.readouterr().out
