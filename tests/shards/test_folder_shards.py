"""`curate shards from-folder`: class trees and captioned flat folders of real images into
shards that webdataset reads and `curate prune` takes, the same bytes every time."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import webdataset as wds

from shards.folder import safe_key
from tests.photos import real_images
from tests.runs import cli_prune, curate, samples_by_key

TREE = [
    "bird house/a.jpg",
    "bird house/b.JPEG",
    "bird house/sub/d.jpg",
    "cat/a.jpg",
    "cat/a.png",
    "cat/c.png",
    "cat/photo.2021.jpg",
    "dog/x.jpg",
    "dog/y.png",
]


@pytest.fixture
def tree(tmp_path) -> dict[str, bytes]:
    """An ImageNet-style tree of real photos (relpath -> bytes), with files that are not
    images, a hidden file and an empty class folder."""
    root = tmp_path / "tree"
    pools = {"jpg": [], "png": []}
    for ext, data in real_images(12):
        pools[ext].append(data)
    files = {}
    for relpath in TREE:
        ext = "png" if relpath.endswith(".png") else "jpg"
        files[relpath] = pools[ext].pop()
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_bytes(files[relpath])
    (root / "cat" / "notes.md").write_text("not an image")
    (root / "dog" / ".DS_Store").write_bytes(b"\0")
    (root / "empty class").mkdir()
    return files


def _members(shards: list[Path]) -> list[tuple[str, bytes]]:
    found = []
    for shard in shards:
        with tarfile.open(shard) as tar:
            found += [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    return found


def test_class_tree_becomes_labelled_shards(tmp_path, tree):
    out = tmp_path / "shards"
    printed = curate(
        "shards", "from-folder", str(tmp_path / "tree"), "--output", str(out), "--shard-size", "4"
    )
    assert "imagenet" in printed
    shards = sorted(out.glob("*.tar"))
    assert [s.name for s in shards] == ["00000.tar", "00001.tar", "00002.tar"]  # 4 + 4 + 1
    classes = json.loads((out / "classes.json").read_text())
    assert classes == {"bird house": 0, "cat": 1, "dog": 2, "empty class": 3}

    samples = list(wds.WebDataset([str(s) for s in shards], shardshuffle=False))
    assert len(samples) == len(tree)
    by_path = {}
    for sample in samples:
        meta = json.loads(sample["json"])
        image = sample.get("jpg", sample.get("png"))
        assert image == tree[meta["path"]]  # bytes copied as they are
        assert int(sample["cls"]) == classes[meta["path"].split("/")[0]] == meta["label"]
        assert "." not in sample["__key__"]
        by_path[meta["path"]] = sample["__key__"]
    assert by_path["cat/photo.2021.jpg"] == "cat/photo%2E2021"
    assert by_path["bird house/sub/d.jpg"] == "bird%20house/sub/d"
    assert by_path["cat/c.png"] == "cat/c"
    assert (by_path["cat/a.jpg"], by_path["cat/a.png"]) == ("cat/a%2Ejpg", "cat/a%2Epng")
    assert list(by_path) == sorted(tree)  # sorted walk order


def test_same_folder_gives_the_same_bytes(tmp_path, tree):
    for name in ("one", "two"):
        curate(
            "shards",
            "from-folder",
            str(tmp_path / "tree"),
            "-o",
            str(tmp_path / name),
            "--shard-size",
            "5",
        )
    one, two = sorted((tmp_path / "one").iterdir()), sorted((tmp_path / "two").iterdir())
    assert [p.name for p in one] == [p.name for p in two]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, two, strict=True))


def test_flat_folder_with_captions(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    extensions = {}
    for i, (ext, data) in enumerate(real_images(5)):
        extensions[i] = ext
        (root / f"img {i}.{ext}").write_bytes(data)
        if i != 3:
            (root / f"img {i}.txt").write_text(f"caption {i}")
    (root / "orphan.txt").write_text("no image")
    out = tmp_path / "out"
    curate("shards", "from-folder", str(root), "--output", str(out))
    assert not (out / "classes.json").exists()
    members = dict(_members(sorted(out.glob("*.tar"))))
    assert members["img%200.txt"] == b"caption 0"
    assert "img%203.txt" not in members and f"img%203.{extensions[3]}" in members
    assert not [n for n in members if n.endswith(".cls")]
    assert sum(n.endswith(".json") for n in members) == 5


def test_images_sharing_a_stem_keep_distinct_keys():
    assert safe_key("a/b.c") == "a/b%2Ec"
    assert safe_key("50%") == "50%25"
    assert safe_key("x\ny") == "x%0Ay"


def test_from_folder_shards_go_through_prune(tmp_path, tree, tiny_clip):
    curate(
        "shards",
        "from-folder",
        str(tmp_path / "tree"),
        "--output",
        str(tmp_path / "s"),
        "--shard-size",
        "6",
    )
    summary = cli_prune(sorted((tmp_path / "s").glob("*.tar")), tmp_path / "pruned", tiny_clip)
    assert summary["input_samples"] == len(tree)
    assert summary["failed_samples"] == 0
    assert summary["kept_samples"] + summary["pruned_samples"] == len(tree)


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda root: root.mkdir(), "no images"),
        (lambda root: None, "not a folder"),
    ],
)
def test_bad_folders_are_one_line_errors(tmp_path, setup, message):
    setup(tmp_path / "root")
    printed = curate(
        "shards", "from-folder", str(tmp_path / "root"), "-o", str(tmp_path / "out"), expect=2
    )
    assert message in printed and "Traceback" not in printed


def test_existing_shards_need_overwrite(tmp_path, tree):
    args = ["shards", "from-folder", str(tmp_path / "tree"), "-o", str(tmp_path / "out")]
    curate(*args)
    assert "--overwrite" in curate(*args, expect=2)
    curate(*args, "--overwrite")


def test_loose_images_in_a_class_tree_are_refused(tmp_path, tree):
    (tmp_path / "tree" / "loose.jpg").write_bytes(real_images(1)[0][1])
    printed = curate(
        "shards",
        "from-folder",
        str(tmp_path / "tree"),
        "-o",
        str(tmp_path / "out"),
        "--layout",
        "imagenet",
        expect=2,
    )
    assert "no class folder" in printed


def test_overwrite_removes_only_what_the_command_wrote(tmp_path, tree):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.tar").write_bytes(b"not from curate")
    args = ["shards", "from-folder", str(tmp_path / "tree"), "-o", str(out)]
    for extra in ((), ("--overwrite",)):
        assert "did not write" in curate(*args, *extra, expect=2)
    (out / "mine.tar").rename(tmp_path / "mine.tar")
    (out / "notes.txt").write_text("kept")
    curate(*args)
    curate(*args, "--overwrite")
    assert (out / "notes.txt").read_text() == "kept"


def test_shuffle_mixes_classes_and_is_seeded(tmp_path, tree):
    def order(name: str, *extra: str) -> list[str]:
        curate("shards", "from-folder", str(tmp_path / "tree"), "-o", str(tmp_path / name),
               "--shard-size", "100", *extra)  # fmt: skip
        return list(samples_by_key(tmp_path / name / "00000.tar"))

    plain = order("plain")
    shuffled = order("a", "--shuffle", "--seed", "3")
    assert sorted(shuffled) == sorted(plain) and shuffled != plain
    assert order("b", "--shuffle", "--seed", "3") == shuffled
    assert order("c", "--shuffle", "--seed", "4") != shuffled
