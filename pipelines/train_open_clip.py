"""Run open_clip's trainer (`open_clip_train.main`, same arguments) on webdataset shards.

One compatibility fix, nothing else: webdataset 0.2.96 and later end each shard's stream of
files with an empty `{}` marker that open_clip_train (3.3 and before) cannot group, and training
stops with `KeyError: 'fname'` (webdataset issue 384, open_clip issue 935). Here the marker is
switched off before open_clip_train builds its data pipeline. With an older webdataset this is
exactly `python -m open_clip_train.main`.

    python -m pipelines.train_open_clip --train-data 'pruned/{00000..00009}.tar' \\
        --dataset-type webdataset --train-num-samples 123456 --model ViT-B-32 ...
"""

from __future__ import annotations

import functools
import inspect
import sys


def without_eof_marker() -> None:
    """Make open_clip_train's tar reader call webdataset's with `eof_value=None`."""
    from open_clip_train import data

    expander = data.tar_file_expander
    if "eof_value" in inspect.signature(expander).parameters:
        data.tar_file_expander = functools.partial(expander, eof_value=None)


def main(argv: list[str] | None = None) -> None:
    without_eof_marker()
    from open_clip_train.main import main as train

    train(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
