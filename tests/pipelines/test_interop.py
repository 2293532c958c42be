"""Pruned shards are ordinary webdataset shards: webdataset, plain tarfile and open_clip's
training pipeline read them, with the input's bytes, in the order decisions.parquet gives."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import webdataset as wds

from tests.builders import TINY_CLIP, write_shards
from tests.runs import REPO, cli_prune, decisions


def _tar_members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


@pytest.fixture(scope="module")
def pruned(tmp_path_factory, tiny_clip):
    root = tmp_path_factory.mktemp("interop")
    inputs = write_shards(root / "in", shards=2, per_shard=16, layout="img2dataset")
    out = root / "out"
    summary = cli_prune(inputs, out, tiny_clip)
    kept = [r for r in decisions(out).to_dict("records") if r["status"] == "kept"]
    return {"root": root, "inputs": inputs, "out": out, "summary": summary, "kept": kept}


def _kept_members(pruned, shard: Path) -> list[tuple[str, bytes]]:
    keys = {r["key"] for r in pruned["kept"] if r["shard"] == str(shard)}
    return [(n, d) for n, d in _tar_members(shard) if n.split(".", 1)[0] in keys]


def test_tarfile_reads_the_kept_members_byte_for_byte(pruned):
    for i, shard in enumerate(pruned["inputs"]):
        output = pruned["out"] / f"{i:05d}.tar"
        assert _tar_members(output) == _kept_members(pruned, shard)
        with tarfile.open(shard) as source, tarfile.open(output) as tar:
            metadata = {m.name: (m.mtime, m.mode, m.uid) for m in source.getmembers()}
            # safe members are copied verbatim: the input's own headers (shards.tarindex)
            assert all(m.isreg() and (m.mtime, m.mode, m.uid) == metadata[m.name]
                       for m in tar.getmembers())  # fmt: skip


def test_webdataset_reads_them_in_decision_order(pruned):
    urls = [str(pruned["out"] / f"{i:05d}.tar") for i in range(len(pruned["inputs"]))]
    samples = list(wds.WebDataset(urls, shardshuffle=False))
    assert [s["__key__"] for s in samples] == [r["key"] for r in pruned["kept"]]
    inputs = {}
    for shard in pruned["inputs"]:
        for name, data in _tar_members(shard):
            key, ext = name.split(".", 1)
            inputs.setdefault(key, {})[ext] = data
    for sample in samples:
        fields = {k: v for k, v in sample.items() if not k.startswith("__")}
        assert fields == inputs[sample["__key__"]]


def test_stats_json_beside_each_shard(pruned):
    rows = decisions(pruned["out"]).to_dict("records")
    for i, shard in enumerate(pruned["inputs"]):
        stats = json.loads((pruned["out"] / f"{i:05d}_stats.json").read_text())
        shard_rows = [r for r in rows if r["shard"] == str(shard)]
        assert stats["count"] == len(shard_rows)
        assert stats["successes"] == sum(r["status"] == "kept" for r in shard_rows)
        assert stats["bytes_written"] == (pruned["out"] / f"{i:05d}.tar").stat().st_size


def _train(root: Path, pattern: str, samples: int, *extra: str) -> subprocess.CompletedProcess:
    """A few CPU steps of open_clip_train with a tiny model config (random init)."""
    model_dir = root / "tiny-model"
    model_dir.mkdir(exist_ok=True)
    (model_dir / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP}))
    command = [sys.executable, "-m", "pipelines.train_open_clip", "--train-data", pattern,
               "--dataset-type", "webdataset", "--train-num-samples", str(samples),
               "--model", f"local-dir:{model_dir}", "--batch-size", "4", "--epochs", "1",
               "--workers", "0", "--precision", "fp32", "--lr", "1e-3", "--warmup", "1",
               "--logs", str(root / "logs"), "--name", "tiny", "--report-to", "",
               "--save-frequency", "1", "--seed", "0", *extra]  # fmt: skip
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_open_clip_trains_on_pruned_shards(pruned):
    kept = pruned["summary"]["kept_samples"]
    last = len(pruned["inputs"]) - 1
    run = _train(pruned["root"], f"{pruned['out']}/{{00000..{last:05d}}}.tar", kept)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    logs = pruned["root"] / "logs"
    log = (logs / "tiny" / "out.log").read_text()
    assert f"[{kept}/{kept} (100%)]" in log
    assert "Loss: nan" not in log
    assert (logs / "tiny" / "checkpoints" / "epoch_1.pt").is_file()


def test_class_labelled_shards_need_a_caption_template(tmp_path):
    shards = write_shards(tmp_path / "in", shards=1, per_shard=16, layout="imagenet")
    refused = _train(tmp_path, str(shards[0]), 16)
    assert refused.returncode == 2 and "have no captions" in refused.stderr
    assert "Traceback" not in refused.stderr
    (tmp_path / "in" / "classes.json").write_text(json.dumps({f"thing{i}": i for i in range(5)}))
    run = _train(tmp_path, str(shards[0]), 16, "--caption-template", "a photo of a {}")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "[16/16 (100%)]" in (tmp_path / "logs" / "tiny" / "out.log").read_text()
