"""`--keep-list`: a DataComp uid keep-list as the selection, without a model or embeddings;
the listed samples are resharded byte for byte and `kept_uids.npy` is the intersection."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation import prune
from curation.storage import Folder
from pipelines.data_pruning import schema
from pipelines.data_pruning.keeplist import UID_DTYPE, read_keep_list, uid_array, write_keep_list
from pipelines.report.build import build_report
from tests.builders import add_member, image_bytes
from tests.runs import assert_one_line_error, cli, curate, decisions, samples_by_key, summary

NO_UID = "0010003"  # the one sample whose json has no uid


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two DataComp-style shards (jpg + json with a uid and, but every fourth, a label), one
    sample without a uid."""
    root = tmp_path_factory.mktemp("keeplist")
    rng = np.random.default_rng(0)
    shards, uids = [], {}
    for s in range(2):
        path = root / "in" / f"{s:08d}.tar"
        path.parent.mkdir(exist_ok=True)
        with tarfile.open(path, "w") as tar:
            for i in range(12):
                key = f"{s:03d}{i:04d}"
                meta = {"url": f"u/{key}", **({"label": i % 3} if i % 4 else {})}
                if key != NO_UID:
                    uid = f"{rng.integers(2**63):016x}{rng.integers(2**63):016x}"
                    uids[key] = meta["uid"] = uid
                add_member(tar, f"{key}.jpg", image_bytes(rng, 0))
                add_member(tar, f"{key}.json", json.dumps(meta).encode())
        shards.append(path)
    return {"root": root, "shards": shards, "uids": uids}


def _keep_list(folder, uids: list[str]) -> str:
    """A keep-list written by our own writer, split in two parts as shards would give it."""
    half = len(uids) // 2
    write_keep_list(Folder(str(folder)), [uid_array(uids[:half]), uid_array(uids[half:])],
                    "keep.npy")  # fmt: skip
    return str(folder / "keep.npy")


@pytest.fixture(scope="module")
def listed_run(dataset, tmp_path_factory) -> dict:
    """A third of the uids listed, one listed uid in no shard."""
    uids = dataset["uids"]
    chosen = sorted(uids)[::3]
    folder = tmp_path_factory.mktemp("listed")
    keep = _keep_list(folder, [uids[k] for k in chosen] + ["f" * 32])
    out = folder / "out"
    curate("prune", *map(str, dataset["shards"]), "-o", str(out), "--keep-list", keep)
    return {"out": out, "chosen": chosen, "keep": keep}


def test_the_listed_samples_are_kept_without_a_model(dataset, listed_run):
    uids, out, keep = dataset["uids"], listed_run["out"], listed_run["keep"]
    chosen = listed_run["chosen"]
    found = decisions(out)
    assert sorted(found[found["kept"]]["key"]) == chosen
    reasons = dict(zip(found["key"], found["reason"], strict=True))
    assert reasons[NO_UID] == "no_uid"
    assert {reasons[k] for k in uids if k not in chosen} == {"not_in_keep_list"}
    assert np.load(out / "kept_uids.npy").tolist() == uid_array([uids[k] for k in chosen]).tolist()
    for shard in dataset["shards"]:
        written, given = samples_by_key(out / shard.name), samples_by_key(shard)
        assert written == {k: v for k, v in given.items() if k in chosen}
    result = summary(out)
    assert result["metric"] == "keep-list" and result["rate_requested"] is None
    assert result["model"] is None and result["pretrained"] is None
    assert result["notes"]["keep_list"] == {"file": keep, "uids": len(chosen) + 1,
                                            "kept": len(chosen), "no_uid": 1}  # fmt: skip
    run = out / "_run"
    assert not (run / "cluster").exists()  # no clustering, no embeddings
    assert schema.read_embeddings(Folder(str(run)), "00000").shape == (12, 0)
    assert schema.read_layout(Folder(str(run)), "00000").samples == 12  # read once: recorded


def test_a_list_replaced_at_its_path_is_matched_again(dataset, tmp_path):
    uids = sorted(dataset["uids"].items())
    first, second = [u for _, u in uids[:2]], [u for _, u in uids[2:5]]
    keep, out = _keep_list(tmp_path, first), tmp_path / "out"
    args = ("prune", *map(str, dataset["shards"]), "-o", str(out), "--keep-list", keep)
    curate(*args)
    _keep_list(tmp_path, second)
    curate(*args)  # the same command: the run resumes, the selection is redone
    found = decisions(out)
    assert sorted(found[found["kept"]]["key"]) == [k for k, _ in uids[2:5]]


def test_the_report_shows_it_and_validation_refuses_it(listed_run):
    out = listed_run["out"]
    html = Path(build_report(str(out))).read_text()
    assert 'id="gallery"' in html and "not_in_keep_list" in html
    assert "rate requested" not in html
    message = curate("validate", str(out), expect=2)
    assert "selected by --keep-list and holds no embeddings" in message


def test_the_python_api_takes_a_keep_list_without_a_rate(dataset, tmp_path):
    uids = sorted(dataset["uids"].items())[:4]
    keep = _keep_list(tmp_path, [u for _, u in uids])
    result = prune([str(s) for s in dataset["shards"]], str(tmp_path / "out"), keep_list=keep)
    assert result["kept_samples"] == 4 and result["reasons"]["in_keep_list"] == 4


def test_decisions_name_shards_as_given_with_their_labels(dataset, tmp_path, monkeypatch):
    """A relative brace pattern stays relative in decisions.parquet; `label` is null where the
    sample has none."""
    keep = _keep_list(tmp_path, list(dataset["uids"].values()))
    monkeypatch.chdir(dataset["root"])
    out = tmp_path / "out"
    curate("prune", "in/{00000000..00000001}.tar", "-o", str(out), "--keep-list", keep)
    table = pq.read_table(out / "decisions.parquet")
    assert table.schema.field("label").type == pa.int64()
    found = table.to_pandas()
    assert found["shard"].tolist() == ["in/00000000.tar"] * 12 + ["in/00000001.tar"] * 12
    labels = [None if i % 4 == 0 else i % 3 for i in range(12)] * 2
    assert [None if pd.isna(v) else int(v) for v in found["label"]] == labels
    assert json.loads((out / "_run" / "config.json").read_text())["config"]["shards"][0] == str(
        dataset["shards"][0])  # fmt: skip


def test_a_bad_keep_list_is_one_line_and_creates_nothing(dataset, tmp_path):
    shards = [str(s) for s in dataset["shards"]]
    floats = tmp_path / "floats.npy"
    np.save(floats, np.zeros(4))
    for given, message in ((tmp_path / "missing.npy", "no such file"),
                           (floats, "not a DataComp keep-list")):  # fmt: skip
        out = tmp_path / "out"
        assert message in curate("prune", *shards, "-o", str(out), "--keep-list", str(given),
                                 expect=2)  # fmt: skip
        assert not out.exists()
    result = cli("prune", *shards, "-o", str(tmp_path / "out"), "--keep-list", str(floats))
    assert_one_line_error(result, f"--keep-list {floats}: not a DataComp keep-list")
    assert not (tmp_path / "out").exists()


def test_shards_without_uids_are_refused_before_the_run(tmp_path):
    path = tmp_path / "in" / "00000.tar"
    path.parent.mkdir()
    with tarfile.open(path, "w") as tar:
        add_member(tar, "a.jpg", image_bytes(np.random.default_rng(0), 0))
    keep = _keep_list(tmp_path, ["0" * 32])
    message = curate("prune", str(path), "-o", str(tmp_path / "out"), "--keep-list", keep,
                     expect=2)  # fmt: skip
    assert "have none" in message and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--rate", "0.5"), "--rate does not apply with --keep-list"),
        (("--metric", "dbp"), "--keep-list is the selection: it takes no --metric"),
        (("--per-class",), "--per-class does not apply with --keep-list"),
    ],
)
def test_options_a_keep_list_does_not_take(dataset, tmp_path, extra, message):
    keep = _keep_list(tmp_path, list(dataset["uids"].values())[:2])
    output = curate("prune", str(dataset["shards"][0]), "-o", str(tmp_path / "out"),
                    "--keep-list", keep, *extra, expect=2)  # fmt: skip
    assert message in output


def test_rate_is_required_without_a_keep_list(dataset, tmp_path):
    output = curate("prune", str(dataset["shards"][0]), "-o", str(tmp_path / "out"), expect=2)
    assert "--rate is required" in output


def test_datacomps_layouts_read_sorted(tmp_path):
    """A u8,u8 .npy in any order, the resharder's raw file without a header, hex strings."""
    uids = [f"{n:032x}" for n in (7, 3, 2**100, 5)]
    expected = uid_array(uids).tolist()
    np.save(tmp_path / "unsorted.npy", np.array([(int(u[:16], 16), int(u[16:], 16))
                                                 for u in uids], UID_DTYPE))  # fmt: skip
    uid_array(uids).tofile(tmp_path / "raw.bin")
    np.save(tmp_path / "hex.npy", np.array(uids))
    for name in ("unsorted.npy", "raw.bin", "hex.npy"):
        assert read_keep_list(str(tmp_path / name)).tolist() == expected, name
