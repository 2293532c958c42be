"""`curate` end to end on a real S3 server (moto): input shards, output folder and run
directory on S3, a killed run resumed there, the commands that read a run, and the one line a
new user gets for a missing extra or bad credentials."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import curation.api
from tests.production.storage import s3_filesystem, s3_names, s3_outputs, s3_shards
from tests.runs import REPO, assert_one_line_error, cli, cli_prune_args, curate, output_files
from tests.services import moto_server, s3_environment


def test_prune_from_s3_to_s3_gives_the_bytes_of_a_local_output(s3, tmp_path, tiny_clip):
    shards = s3_shards(s3, tmp_path / "in", shards=2, per_shard=20)
    curate(*cli_prune_args(shards, s3.url("out"), tiny_clip))
    curate(*cli_prune_args(shards, tmp_path / "local", tiny_clip))
    written = s3_outputs(s3, "out")
    assert written == output_files(tmp_path / "local")
    assert sorted(written) == ["00000.tar", "00000_stats.json", "00001.tar", "00001_stats.json",
                               "decisions.parquet", "summary.json"]  # fmt: skip
    run = s3_names(s3, "out", "_run")
    assert "config.json" in run and "00001" in run  # done markers, on S3
    assert ".curate-lease.json" not in s3_names(s3, "out")


def test_storage_options_alone_reach_the_store_for_every_command(
    s3, tmp_path, tiny_clip, monkeypatch
):
    """No endpoint in the environment: each command that reads or writes the run (prune,
    status, report, validate) reaches it through --storage-options."""
    shards = s3_shards(s3, tmp_path / "in", shards=2, per_shard=30)
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    given = ("--storage-options", json.dumps({"endpoint_url": s3.endpoint}))
    curate(*cli_prune_args(shards, s3.url("out"), tiny_clip, *given, "--holdout", "0.25"))
    assert "summary.json" in s3_names(s3, "out")
    stages = json.loads(s3_outputs(s3, "out", "_run")["config.json"])["stages"]
    status = curate("status", s3.url("out"), *given)
    assert status.count(" done ") == len(stages)
    api = curation.api.status(s3.url("out"), {"endpoint_url": s3.endpoint})
    assert [s["state"] for s in api] == ["done"] * len(stages)
    report = curate("report", s3.url("out"), *given, "--clusters", "2", "--per-side", "2")
    assert report.strip() == s3.url("out", "_run", "report.html")
    page = s3_outputs(s3, "out", "_run")["report.html"].decode()
    assert page.count("<img") >= 4  # thumbnails read from the S3 shards
    validate = curate("validate", s3.url("out"), *given, "--steps", "5", "--batch-size", "16")
    assert "test top-1" in validate
    assert "results.json" in s3_names(s3, "out", "_run", "validate")


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "curation", *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip


def _wait_for_done(s3, stage: str, process: subprocess.Popen) -> None:
    """Until the first unit of `stage` is done (one filesystem, polled without a pause)."""
    fs, done = s3_filesystem(s3), s3.url("out", "_run", stage, "done")
    deadline = time.monotonic() + 240
    while not (fs.exists(done) and fs.ls(done)):
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no unit finished"


def test_a_run_killed_on_s3_resumes_to_the_bytes_of_a_clean_run(s3, tmp_path, tiny_clip):
    shards = s3_shards(s3, tmp_path / "in", shards=8, per_shard=24)
    curate(*cli_prune_args(shards, s3.url("clean"), tiny_clip))
    args = cli_prune_args(shards, s3.url("out"), tiny_clip)
    process = _start(args)
    _wait_for_done(s3, "embed", process)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done = len(s3_names(s3, "out", "_run", "embed", "done"))
    assert done < 8, "killed too late to leave the embed stage unfinished"
    assert ".curate-lease.json" in s3_names(s3, "out")  # left by the killed run
    resumed = cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert "taking over the stale lease" in resumed.stderr
    assert f"[embed] resuming: {done}/8 units already done" in resumed.stderr
    assert s3_outputs(s3, "out") == s3_outputs(s3, "clean")


@pytest.fixture
def without_s3fs(tmp_path) -> dict:
    """The environment of a process in which s3fs is not installed."""
    blocker = tmp_path / "blocker"
    (blocker / "s3fs").mkdir(parents=True)
    (blocker / "s3fs" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 's3fs'\", name='s3fs')\n"
    )
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(REPO)])}


@pytest.mark.parametrize("command", ["prune", "status"])
def test_without_the_s3_extra_each_command_names_what_to_install(command, without_s3fs):
    args = {
        "prune": ["prune", "s3://bucket/in/00000.tar", "--output", "s3://bucket/out",
                  "--rate", "0.5", "--pretrained", "random"],
        "status": ["status", "s3://bucket/out"],
    }[command]  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "curation", *args], cwd=REPO,
                            env=without_s3fs, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert_one_line_error(result, "s3:// paths need the s3 extra: pip install 'curate[s3]'")


def test_no_credentials_through_the_cli_say_what_to_set(s3, tmp_path, tiny_clip, monkeypatch):
    shards = s3_shards(s3, tmp_path / "in", shards=1, per_shard=4)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    for args in (cli_prune_args(shards, s3.url("out"), tiny_clip), ["status", s3.url("out")]):
        result = cli(*args)
        assert_one_line_error(result, "no credentials for s3://")
        assert "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in result.stderr


def test_wrong_credentials_through_the_cli_say_what_to_set(tmp_path, tiny_clip, monkeypatch):
    with moto_server(INITIAL_NO_AUTH_ACTION_COUNT="0") as server:
        s3_environment(monkeypatch, server.endpoint)
        out = "s3://bucket/out"
        for args in (cli_prune_args(["s3://bucket/in/00000.tar"], out, tiny_clip),
                     ["status", out]):  # fmt: skip
            result = cli(*args)
            assert_one_line_error(result, "access denied to s3://bucket/")
            assert "AWS_SECRET_ACCESS_KEY" in result.stderr
