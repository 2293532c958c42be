"""Shared fixtures: a tiny open_clip model config, generated shards, a finished run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.builders import TINY_CLIP, write_shards
from tests.runs import cli_prune_args, curate
from tests.services import dask_cluster, s3, s3_server  # noqa: F401  (fixtures for every test)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("models") / "tiny-clip.json"
    path.write_text(json.dumps(TINY_CLIP))
    return str(path)


@pytest.fixture
def shards(tmp_path) -> list[Path]:
    return write_shards(tmp_path / "in", shards=3, per_shard=40)


@pytest.fixture(scope="session")
def pruned_run(tmp_path_factory, tiny_clip) -> str:
    """A finished labelled prune run with captions (img2dataset layout), pruned by
    `curate prune --holdout 0.2 --validate`; shared read-only: copy it (`run_copy`) before
    writing into it."""
    root = tmp_path_factory.mktemp("pruned")
    paths = write_shards(root / "in", shards=3, per_shard=40, layout="img2dataset")
    curate(*cli_prune_args(paths, root / "out", tiny_clip, "--holdout", "0.2", "--validate"))
    return str(root / "out" / "_run")


@pytest.fixture
def run_copy(pruned_run, tmp_path) -> str:
    return str(shutil.copytree(pruned_run, tmp_path / "run"))
