"""`curate shards from-folder`: a folder of images into webdataset shards.

Two layouts: an ImageNet-style tree (`ROOT/<class>/.../<image>`, labels from the class folder
names, in sorted order as torchvision's ImageFolder numbers them, written beside the shards as
`classes.json`) and a flat folder of images with optional same-named `.txt` captions (searched
recursively). Image bytes are copied as they are, never re-encoded. Files are taken in sorted
order of their relative paths and written with fixed tar metadata, so the same folder always
gives the same shard names and bytes.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

import numpy as np

from curation.errors import CurateError
from curation.storage import Folder
from shards.tario import TarWriter

IMAGE_SUFFIXES = {".jpg": "jpg", ".jpeg": "jpg", ".png": "png", ".webp": "webp"}
CAPTION_SUFFIX = ".txt"
CLASS_INDEX = "classes.json"
MARKER = ".curate-shards.json"  # what this command wrote in a folder, so it removes only that
Layout = Literal["auto", "imagenet", "flat"]


@dataclass(frozen=True)
class FolderSample:
    """One image and what goes with it; `key` is the webdataset key of its members."""

    key: str
    image: Path
    ext: str
    relpath: str
    caption: Path | None = None
    label: int | None = None
    class_name: str | None = None

    def members(self) -> list[tuple[str, bytes]]:
        meta: dict = {"path": self.relpath}
        members = [(f"{self.key}.{self.ext}", self.image.read_bytes())]
        if self.caption is not None:
            members.append((f"{self.key}.txt", self.caption.read_bytes()))
        if self.label is not None:
            members.append((f"{self.key}.cls", str(self.label).encode()))
            meta.update(label=self.label, class_name=self.class_name)
        members.append((f"{self.key}.json", json.dumps(meta, sort_keys=True).encode()))
        return members


def safe_key(stem: str) -> str:
    """A webdataset key from a relative path without its suffix: `%`, `.`, whitespace and
    control characters are %-escaped, so the key has no dot (webdataset splits the extension
    at the first dot of the file name), cannot climb out with `..`, and no two paths share one.
    Never truncated."""

    def escape(ch: str) -> str:
        if ch in "%." or ch.isspace() or not ch.isprintable():
            return "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogateescape"))
        return ch

    return "/".join("".join(map(escape, part)) for part in PurePosixPath(stem).parts)


def _visible_files(root: Path) -> list[str]:
    """Relative POSIX paths of every file under `root`, hidden ones (.*) left out, sorted.
    Symbolic links to folders are followed, as torchvision's ImageFolder does."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = Path(dirpath).relative_to(root)
        found += [(rel / f).as_posix() for f in filenames if not f.startswith(".")]
    return sorted(found)


def _is_image(relpath: str) -> bool:
    return PurePosixPath(relpath).suffix.lower() in IMAGE_SUFFIXES


def _stem(relpath: str) -> str:
    return str(PurePosixPath(relpath).with_suffix(""))


def detect_layout(files: list[str]) -> Literal["imagenet", "flat"]:
    """Images directly under ROOT make it a flat folder; otherwise class folders."""
    return "flat" if any("/" not in f and _is_image(f) for f in files) else "imagenet"


def _class_names(root: Path) -> list[str]:
    """Every visible subfolder, sorted: the same indices torchvision's ImageFolder gives."""
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


def _keys(images: list[str]) -> dict[str, str]:
    """Image relpath -> key: the path without suffix, or with it where two images share one."""
    stems = Counter(_stem(i) for i in images)
    return {i: safe_key(_stem(i) if stems[_stem(i)] == 1 else i) for i in images}


def _check_classes(root: Path, images: list[str]) -> None:
    loose = [i for i in images if "/" not in i]
    if loose:
        raise CurateError(
            f"{len(loose)} images directly under {root} (first: {loose[0]}) "
            "have no class folder: use --layout flat, or move them"
        )


def _sample(
    root: Path, image: str, key: str, caption: str | None, class_index: dict[str, int]
) -> FolderSample:
    """`class_index` is empty for a flat folder: no label."""
    class_name = image.split("/", 1)[0] if class_index else None
    return FolderSample(
        key=key,
        image=root / image,
        relpath=image,
        ext=IMAGE_SUFFIXES[PurePosixPath(image).suffix.lower()],
        caption=None if caption is None else root / caption,
        label=None if class_name is None else class_index[class_name],
        class_name=class_name,
    )


def list_samples(root: Path, layout: Layout = "auto") -> tuple[list[FolderSample], dict]:
    """The samples under `root` in order, and a report (layout, classes, files left out)."""
    files = _visible_files(root)
    images = [f for f in files if _is_image(f)]
    if not images:
        raise CurateError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {root}")
    chosen = detect_layout(files) if layout == "auto" else layout
    classes = _class_names(root) if chosen == "imagenet" else []
    if chosen == "imagenet":
        _check_classes(root, images)
    index = {name: i for i, name in enumerate(classes)}
    captions = {_stem(f): f for f in files if f.endswith(CAPTION_SUFFIX)}
    keys = _keys(images)
    samples = [
        _sample(root, image, keys[image], captions.get(_stem(image)), index) for image in images
    ]
    used = set(images) | {captions[_stem(i)] for i in images if _stem(i) in captions}
    left_out = [f for f in files if f not in used]
    report = {
        "layout": chosen,
        "samples": len(samples),
        "classes": classes,
        "with_caption": sum(s.caption is not None for s in samples),
        "files_left_out": len(left_out),
        "first_left_out": left_out[:5],
    }
    return samples, report


def _claim(out: Folder, overwrite: bool) -> None:
    """An empty folder, or one holding shards this command wrote before (listed in its
    marker): `--overwrite` removes those, and nothing else is ever removed or written over."""
    entries = out.listdir()
    written = out.read_json(MARKER)["written"] if MARKER in entries else []
    clash = sorted(n for n in entries if n.endswith(".tar") or n == CLASS_INDEX)
    foreign = [n for n in clash if n not in written]
    if foreign:
        raise CurateError(
            f"output folder {out.url} holds {foreign[0]}, which `curate shards` did not write: "
            "choose an empty or new folder"
        )
    if written and not overwrite:
        raise CurateError(
            f"output folder {out.url} already holds shards ({written[0]}): "
            "choose another folder, or pass --overwrite to replace them"
        )
    for name in [*written, MARKER]:
        out.remove(name)


def write_shards(samples: list[FolderSample], out: Folder, shard_size: int) -> list[str]:
    """Shards `00000.tar`, `00001.tar`... of `shard_size` samples each, in sample order."""
    names = []
    for start in range(0, len(samples), shard_size):
        name = f"{len(names):05d}.tar"
        with out.open_atomic(name) as stream:
            writer = TarWriter(stream)
            for sample in samples[start : start + shard_size]:
                for member, data in sample.members():
                    writer.add(member, data)
            writer.close()
        names.append(name)
    return names


def from_folder(
    root: str,
    output: str,
    shard_size: int = 1000,
    layout: Layout = "auto",
    overwrite: bool = False,
    shuffle: bool = False,
    seed: int = 0,
) -> dict:
    """Write the shards (and `classes.json` for a class tree); returns the report.

    `shuffle` writes the samples in a seeded random order: an ImageNet-style tree in sorted
    order gives class-sorted shards, and a webdataset loader that shuffles shards and a small
    buffer then sees one or two classes per batch."""
    if shard_size < 1:
        raise CurateError(f"--shard-size must be at least 1, got {shard_size}")
    folder = Path(root)
    if not folder.is_dir():
        raise CurateError(f"not a folder: {root}")
    if "://" not in output and Path(output).resolve().is_relative_to(folder.resolve()):
        raise CurateError(f"the output folder {output} is inside {root}: choose one outside it")
    samples, report = list_samples(folder, layout)
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(samples))
        samples = [samples[i] for i in order]
    report.update(shuffled=shuffle, seed=seed if shuffle else None)
    out = Folder(output)
    _claim(out, overwrite)
    out.makedirs()
    names = [f"{i:05d}.tar" for i in range(-(-len(samples) // shard_size))]
    classes = [CLASS_INDEX] if report["layout"] == "imagenet" else []
    out.write_json({"written": [*names, *classes]}, MARKER)
    if classes:
        out.write_json({name: i for i, name in enumerate(report["classes"])}, CLASS_INDEX)
    report["shards"] = write_shards(samples, out, shard_size)
    return report
