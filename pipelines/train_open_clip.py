"""Run open_clip's trainer (`open_clip_train.main`, same arguments) on webdataset shards.

Two additions, nothing else:
- webdataset 0.2.96 and later end each shard's stream of files with an empty `{}` marker that
  open_clip_train (3.3 and before) cannot group, and training stops with `KeyError: 'fname'`
  (webdataset issue 384, open_clip issue 935). Here the marker is switched off before
  open_clip_train builds its data pipeline.
- open_clip trains on image-caption pairs and silently skips samples without a `.txt`: given
  class-labelled shards (ImageNet style: `.cls`, no caption), it would train 0 steps and exit 0.
  Such shards are refused with one line, unless `--caption-template 'a photo of a {}'` (ours,
  not open_clip's) makes each sample's caption from its class name, read from the
  `classes.json` beside the shards (as `curate shards from-folder` writes it).

    python -m pipelines.train_open_clip --train-data 'pruned/{00000..00009}.tar' \\
        --dataset-type webdataset --train-num-samples 123456 --model ViT-B-32 ...
"""

from __future__ import annotations

import functools
import inspect
import json
import posixpath
import sys

from braceexpand import braceexpand

from curation.errors import CurateError
from shards.folder import CLASS_INDEX
from shards.paths import open_shard
from shards.tario import ShardFormatError, iter_samples

TEMPLATE = "--caption-template"


def without_eof_marker() -> None:
    """Make open_clip_train's tar reader call webdataset's with `eof_value=None`."""
    from open_clip_train import data

    expander = data.tar_file_expander
    if "eof_value" in inspect.signature(expander).parameters:
        data.tar_file_expander = functools.partial(expander, eof_value=None)


def _option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv[:-1] else None


def _first_shard(argv: list[str]) -> str | None:
    pattern = _option(argv, "--train-data")
    return None if pattern is None else next(iter(braceexpand(pattern.split("::")[0])))


def _has_captions(shard: str) -> bool:
    with open_shard(shard) as stream:
        try:
            first = next(iter_samples(stream), None)
        except ShardFormatError:
            return True  # open_clip_train reports damaged shards itself
    return first is None or first.get("txt") is not None


def _class_names(shard: str) -> dict[int, str]:
    index = posixpath.join(posixpath.dirname(shard), CLASS_INDEX)
    try:
        with open_shard(index) as f:
            return {int(i): name for name, i in json.load(f).items()}
    except FileNotFoundError:
        raise CurateError(
            f"{TEMPLATE} needs the class names: no {CLASS_INDEX} beside {shard}"
        ) from None


def captions_from_classes(template: str, names: dict[int, str]) -> None:
    """Give every sample without a caption `template.format(class name)` as its `txt`."""
    from open_clip_train import data

    samples = data.tarfile_to_samples_nothrow

    def with_captions(src, handler=data.log_and_continue):
        for sample in samples(src, handler):
            if "txt" not in sample and "cls" in sample:
                try:
                    label = int(bytes(sample["cls"]).decode().strip())
                except (ValueError, UnicodeDecodeError):
                    continue
                sample["txt"] = template.format(names.get(label, str(label))).encode()
            yield sample

    data.tarfile_to_samples_nothrow = with_captions


def prepare(argv: list[str]) -> list[str]:
    """Check the training shards and set the data pipeline up; returns open_clip's arguments."""
    template = _option(argv, TEMPLATE)
    if template is not None:
        at = argv.index(TEMPLATE)
        argv = argv[:at] + argv[at + 2 :]
    shard = _first_shard(argv)
    if shard is not None and not _has_captions(shard):
        if template is None:
            raise CurateError(
                f"the training shards have no captions ({shard} has no .txt): open_clip trains "
                f"on image-caption pairs; for class-labelled shards pass {TEMPLATE} "
                "'a photo of a {}' (class names from classes.json beside the shards)"
            )
        captions_from_classes(template, _class_names(shard))
    without_eof_marker()
    return argv


def main(argv: list[str] | None = None) -> None:
    try:
        args = prepare(sys.argv[1:] if argv is None else argv)
    except CurateError as exc:
        print(f"curate: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    from open_clip_train.main import main as train

    train(args)


if __name__ == "__main__":
    main()
