"""Nothing deleted, nothing overwritten, nothing created before the request is known to be good
(issue 8): where a run may write, what it checks first, one line for every refusal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curation.errors import CurateError
from curation.lease import LEASE_NAME, Lease
from curation.safety import check_write_location
from curation.storage import Folder
from tests.builders import TINY_CLIP, write_shards
from tests.runs import assert_one_line_error, cli, cli_prune_args


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("in", "overlaps the folder of the input shard"),
        ("in/pruned", "overlaps the folder of the input shard"),
        (".", "is the current folder"),
        ("", "is empty"),
        ("/", "is the filesystem root"),
        ("~", "is your home folder"),
        ("in/00000.tar", "is a file"),
    ],
)
def test_outputs_that_would_endanger_inputs_or_precious_folders_are_refused(
    where, message, shards, tmp_path, tiny_clip, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    target = os.path.expanduser(where) if where == "~" else where
    for option in ("--output", "--run-dir"):
        args = cli_prune_args(shards, tmp_path / "out", tiny_clip, "--overwrite")
        if option == "--output":
            args[args.index("--output") + 1] = target
        else:
            args += ["--run-dir", target]
        result = subprocess.run([sys.executable, "-m", "curation", *args], capture_output=True,
                                text=True, cwd=tmp_path, timeout=120)  # fmt: skip
        assert_one_line_error(result, message)
    assert _tree(tmp_path) == before  # nothing created, nothing deleted


def test_a_folder_above_the_inputs_is_refused(tmp_path):
    with pytest.raises(CurateError, match="overlaps"):
        check_write_location(str(tmp_path), "--output", [str(tmp_path / "a" / "b" / "x.tar")])
    check_write_location(str(tmp_path / "out"), "--output", [str(tmp_path / "in" / "x.tar")])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--device", "bogus"], "--device 'bogus' is not a device"),
        (["--device", "cuda:7"], "--device cuda:7"),
        (["--seed", "-1"], "--seed: must be at least 0"),
        (["--filter", "clip-score:nan"], "is not a finite number"),
        (["--filter", "clip-score:0.2"], "needs captions (.txt members)"),
        (["--metric", "el2n", "--label-field", "nope"], "needs labels"),
        (["--pretrained", "/no/such/weights.pt"], "checkpoint file not found"),
        (["--storage-options", "{nope"], "--storage-options is not valid JSON"),
        (["--executor", "dask", "--scheduler", "tcp://127.0.0.1:9"], "Dask scheduler"),
    ],
)
def test_bad_requests_fail_before_any_folder_is_created(extra, message, tmp_path, tiny_clip):
    shards = write_shards(tmp_path / "in", shards=1, per_shard=8, layout="imagenet")
    if "el2n" in extra:
        shards = write_shards(tmp_path / "plain", shards=1, per_shard=8, layout="img2dataset")
    before = _tree(tmp_path)
    assert_one_line_error(cli(*cli_prune_args(shards, tmp_path / "out", tiny_clip, *extra)),
                          message)  # fmt: skip
    assert _tree(tmp_path) == before


def test_weights_by_tag_without_a_hub_fail_once_and_fast(tmp_path, tiny_clip):
    shards = write_shards(tmp_path / "in", shards=2, per_shard=4)
    args = cli_prune_args(shards, tmp_path / "out", tiny_clip)
    args[args.index("--pretrained") + 1] = "openai"
    start = time.monotonic()
    result = cli(*args)
    assert_one_line_error(result, "could not load pretrained weights 'openai'")
    assert time.monotonic() - start < 40  # the hub's retries took 50 s per attempt before
    assert not (tmp_path / "out").exists()


def test_pretrained_defaults_to_open_clips_tag_or_must_be_given(tmp_path):
    from pipelines.data_pruning.config import PruneConfig

    config = PruneConfig(shards=["a.tar"], output=str(tmp_path / "o"), rate=0.5, model="RN50")
    assert config.pretrained == "openai"
    with pytest.raises(CurateError, match="--pretrained is required"):
        PruneConfig(shards=["a.tar"], output=str(tmp_path / "o"), rate=0.5, model="timm:resnet18")


def test_unwritable_output_is_one_line(tmp_path, tiny_clip):
    shards = write_shards(tmp_path / "in", shards=1, per_shard=4)
    assert_one_line_error(cli(*cli_prune_args(shards, Path("/proc/curate-out"), tiny_clip)),
                          "/proc")  # fmt: skip


def test_an_output_held_by_a_live_run_is_refused(shards, tmp_path, tiny_clip):
    out = tmp_path / "out"
    out.mkdir()
    with Lease(Folder(str(out))):
        assert_one_line_error(cli(*cli_prune_args(shards, out, tiny_clip)),
                              "is being written by another curate run")  # fmt: skip
    assert [p.name for p in out.iterdir()] == []


def test_a_second_run_on_the_same_output_is_refused_while_the_first_runs(tmp_path):
    """The first run is this process holding the output's lease (a live pid with a heartbeat,
    as a running `curate prune` holds it): no race with how fast a real run ends."""
    model = tmp_path / "tiny.json"
    model.write_text(json.dumps(TINY_CLIP))
    shards = write_shards(tmp_path / "in", shards=2, per_shard=8)
    out = tmp_path / "out"
    out.mkdir()
    with Lease(Folder(str(out))):
        second = cli(*cli_prune_args(shards, out, str(model), "--rate", "0.3"))
        assert_one_line_error(second, "is being written by another curate run")
        assert sorted(p.name for p in out.iterdir()) == [LEASE_NAME]  # nothing written
    assert not (out / LEASE_NAME).exists()
    finished = cli(*cli_prune_args(shards, out, str(model), "--rate", "0.3"))
    assert finished.returncode == 0, finished.stderr  # the folder is free once released
    assert json.loads((out / "summary.json").read_text())["rate_requested"] == 0.3
