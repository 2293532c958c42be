"""Pruning from precomputed embeddings (clip-retrieval's and DataComp's layouts), without a
model, gives what pruning from the images gives; the run's embeddings export to the layout."""

from __future__ import annotations

import json
import tarfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.storage import Folder
from pipelines.data_pruning import schema
from tests.builders import add_member, image_bytes
from tests.production.storage import s3_filesystem
from tests.runs import assert_one_line_error, cli, curate, decisions, output_files, run_prune


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, tiny_clip):
    """Three shards whose samples carry DataComp uids, pruned once from the images."""
    root = tmp_path_factory.mktemp("precomputed")
    rng = np.random.default_rng(0)
    shards = []
    for s in range(3):
        path = root / "in" / f"{s:05d}.tar"
        path.parent.mkdir(exist_ok=True)
        with tarfile.open(path, "w") as tar:
            for i in range(20):
                key, label = f"{s:03d}{i:04d}", int(rng.integers(0, 5))
                uid = f"{rng.integers(2**63):016x}{rng.integers(2**63):016x}"
                add_member(tar, f"{key}.jpg", image_bytes(rng, label))
                add_member(tar, f"{key}.json", json.dumps({"uid": uid, "url": f"u/{key}"}).encode())
        shards.append(path)
    reference = root / "from-images"
    run_prune(shards, reference, tiny_clip, clusters=3)
    run = Folder(str(reference / "_run"))
    units = [schema.unit_name(i) for i in range(3)]
    rows = pa.concat_tables(schema.read_rows(run, u) for u in units).to_pandas()
    vectors = np.concatenate([schema.read_embeddings(run, u) for u in units])
    return {"root": root, "shards": shards, "reference": reference, "rows": rows,
            "vectors": vectors}  # fmt: skip


def _same_outputs(out, reference) -> None:
    """The same shards, stats and decisions; the summary differs in where embeddings came from."""
    got, expected = output_files(out), output_files(reference)
    assert got.keys() == expected.keys()
    for name in got:
        if name != "summary.json":
            assert got[name] == expected[name], name
    drop = ("model", "pretrained", "embeddings")
    summaries = [{k: v for k, v in json.loads(f["summary.json"]).items() if k not in drop}
                 for f in (got, expected)]  # fmt: skip
    assert summaries[0] == summaries[1]


def _clip_retrieval(folder, keys, vectors, column="image_path"):
    """Two files in an order of their own, not following the shards."""
    (folder / "img_emb").mkdir(parents=True)
    (folder / "metadata").mkdir()
    order = np.random.default_rng(1).permutation(len(keys))
    for n, part in enumerate(np.array_split(order, 2)):
        np.save(folder / "img_emb" / f"img_emb_{n}.npy", vectors[part])
        pq.write_table(pa.table({column: [keys[i] for i in part]}),
                       folder / "metadata" / f"metadata_{n}.parquet")  # fmt: skip


def test_clip_retrieval_layout_prunes_like_the_images(dataset, tmp_path):
    emb = tmp_path / "emb"
    _clip_retrieval(emb, dataset["rows"]["key"].tolist(), dataset["vectors"])
    out = tmp_path / "out"
    run_prune(dataset["shards"], out, "ViT-B-32", pretrained="random", clusters=3,
              embeddings=str(emb))  # fmt: skip
    _same_outputs(out, dataset["reference"])
    assert json.loads((out / "summary.json").read_text())["embeddings"] == str(emb)
    # the shards are read for their keys: their layouts are recorded, as embed records them
    assert schema.read_layout(Folder(str(out / "_run")), "00000").samples == 20


def test_datacomp_npz_beside_the_shards_by_uid(dataset, tmp_path):
    rows = dataset["rows"]
    for s, shard in enumerate(dataset["shards"]):
        mine = rows.index[rows["shard"] == s].to_numpy()[::-1]  # another order than the shard's
        np.savez(shard.with_suffix(".npz"), b32_img=dataset["vectors"][mine],
                 uid=np.array(rows.loc[mine, "uid"].tolist()))  # fmt: skip
    out = dataset["root"] / "datacomp"
    run_prune(dataset["shards"], out, "ViT-B-32", pretrained="random", clusters=3,
              embeddings=str(dataset["shards"][0].parent))  # fmt: skip
    _same_outputs(out, dataset["reference"])


def test_missing_embeddings_fail_their_samples_and_none_matching_is_refused(dataset, tmp_path):
    rows, vectors = dataset["rows"], dataset["vectors"]
    partial = tmp_path / "partial"
    _clip_retrieval(partial, rows["key"].tolist()[1:], vectors[1:], column="key")
    out = tmp_path / "out"
    run_prune(dataset["shards"], out, "ViT-B-32", pretrained="random", clusters=3,
              embeddings=str(partial))  # fmt: skip
    table = decisions(out).set_index("key")
    first = rows["key"][0]
    assert table.loc[first, "status"] == "failed"
    assert "no precomputed embedding" in table.loc[first, "detail"]
    assert (table.drop(first)["status"] != "failed").all()
    other = tmp_path / "other"
    _clip_retrieval(other, [f"x{i}" for i in range(len(rows))], vectors)
    args = ["prune", *map(str, dataset["shards"]), "-o", str(tmp_path / "none"), "--rate",
            "0.5", "--embeddings", str(other), "--pretrained", "random"]  # fmt: skip
    assert_one_line_error(cli(*args), "has an embedding in")
    assert not (tmp_path / "none").exists()


def test_clip_retrieval_embeddings_on_s3_prune_like_the_images(dataset, tmp_path, s3):
    """Read from an object store, the metadata files give their match column alone (their
    footer and its chunks: `curation.parquet`); the run decides as from the images."""
    emb = tmp_path / "emb"
    _clip_retrieval(emb, dataset["rows"]["key"].tolist(), dataset["vectors"])
    s3_filesystem(s3).put(str(emb), s3.url("emb"), recursive=True)
    out = tmp_path / "out"
    run_prune(dataset["shards"], out, "ViT-B-32", pretrained="random", clusters=3,
              embeddings=s3.url("emb"))  # fmt: skip
    _same_outputs(out, dataset["reference"])


def test_a_damaged_metadata_file_is_one_line_naming_it(dataset, tmp_path):
    emb = tmp_path / "emb"
    _clip_retrieval(emb, dataset["rows"]["key"].tolist(), dataset["vectors"])
    (emb / "metadata" / "metadata_0.parquet").write_bytes(b"not parquet at all")
    args = ["prune", str(dataset["shards"][0]), "-o", str(tmp_path / "out"), "--rate", "0.5",
            "--embeddings", str(emb), "--pretrained", "random"]  # fmt: skip
    assert_one_line_error(cli(*args), "metadata_0.parquet is not a parquet file")
    assert not (tmp_path / "out").exists()


def _spoil_second_file(folder, vectors, how: str) -> str:
    """Damage `img_emb_1.npy` of a clip-retrieval folder; returns what the error must say."""
    target = folder / "img_emb" / "img_emb_1.npy"
    if how == "not npy":
        target.write_bytes(b"garbage")
        return "img_emb_1.npy is not a .npy array"
    if how == "short":
        np.save(target, vectors[:5])
        return "img_emb_1.npy has 5 vectors, but"
    if how == "narrow":
        np.save(target, np.load(target)[:, :4])
        return "img_emb_1.npy holds vectors of 4 values"
    np.save(target, np.load(target).astype(object), allow_pickle=True)
    return "not C-ordered rows of float vectors"


@pytest.mark.parametrize("how", ["not npy", "short", "narrow", "objects"])
def test_a_damaged_vectors_file_is_one_line_naming_it(dataset, tmp_path, how):
    """A damaged second file (the preflight reads the first) fails the run with one line that
    names it, from the index, before any embed unit reads it."""
    emb = tmp_path / "emb"
    _clip_retrieval(emb, dataset["rows"]["key"].tolist(), dataset["vectors"])
    message = _spoil_second_file(emb, dataset["vectors"], how)
    out = tmp_path / "out"
    args = ["prune", *map(str, dataset["shards"]), "-o", str(out), "--rate", "0.5",
            "--embeddings", str(emb), "--pretrained", "random", "--clusters", "3"]  # fmt: skip
    assert_one_line_error(cli(*args), message)
    assert not (out / "_run" / "embed").exists()


@pytest.mark.parametrize(("how", "message"), [
    ("not npz", "00001.npz is not a readable .npz of arrays"),
    ("short", "00001.npz: b32_img is a 5x"),
    ("narrow", "00001.tar have 4 values and"),
])  # fmt: skip
def test_a_damaged_datacomp_npz_is_one_line_naming_it(dataset, tmp_path, how, message):
    rows, folder = dataset["rows"], tmp_path / "dc"
    folder.mkdir()
    for s, shard in enumerate(dataset["shards"]):
        mine = rows.index[rows["shard"] == s].to_numpy()
        vectors = dataset["vectors"][mine]
        if s == 1:
            vectors = {"short": vectors[:5], "narrow": vectors[:, :4]}.get(how, vectors)
        np.savez(folder / f"{shard.stem}.npz", b32_img=vectors,
                 uid=np.array(rows.loc[mine, "uid"].tolist()))  # fmt: skip
    if how == "not npz":
        (folder / "00001.npz").write_bytes(b"garbage")
    args = ["prune", *map(str, dataset["shards"]), "-o", str(tmp_path / "out"), "--rate", "0.5",
            "--embeddings", str(folder), "--pretrained", "random", "--clusters", "3"]  # fmt: skip
    assert_one_line_error(cli(*args), message)


def test_a_refused_run_exits_with_its_status_every_time(dataset, tmp_path):
    """Arrow's threads, reading a Python file object, aborted about one refused run in three at
    exit (status 134, "terminate called without an active exception"); since Arrow reads only
    what it owns (`curation.parquet`), ten in a row exit 2 with their one line."""
    other = tmp_path / "other"
    _clip_retrieval(other, [f"x{i}" for i in range(len(dataset["rows"]))], dataset["vectors"])
    args = ["prune", str(dataset["shards"][0]), "-o", str(tmp_path / "none"), "--rate", "0.5",
            "--embeddings", str(other), "--pretrained", "random"]  # fmt: skip
    with ThreadPoolExecutor(2) as pool:
        for result in pool.map(lambda _: cli(*args), range(10)):
            assert_one_line_error(result, "has an embedding in")


def test_exported_embeddings_round_trip(dataset, tmp_path):
    exported = tmp_path / "exported"
    assert "60 embeddings" in curate("export-embeddings", str(dataset["reference"]), "-o",
                                     str(exported))  # fmt: skip
    names = sorted(p.name for p in (exported / "img_emb").iterdir())
    assert names == ["img_emb_0.npy", "img_emb_1.npy", "img_emb_2.npy"]
    meta = pq.read_table(exported / "metadata" / "metadata_0.parquet").to_pandas()
    assert meta["key"].tolist() == dataset["rows"]["key"][:20].tolist()
    out = tmp_path / "again"
    run_prune(dataset["shards"], out, "ViT-B-32", pretrained="random", clusters=3,
              embeddings=str(exported))  # fmt: skip
    _same_outputs(out, dataset["reference"])
    assert "not empty" in curate("export-embeddings", str(dataset["reference"]), "-o",
                                 str(exported), expect=2)  # fmt: skip


def test_kept_uids_are_datacomps_keep_list(dataset):
    kept = decisions(dataset["reference"])
    kept_keys = set(kept[kept["kept"]]["key"])
    rows = dataset["rows"]
    expected = sorted((int(u[:16], 16), int(u[16:], 16))
                      for u in rows[rows["key"].isin(kept_keys)]["uid"])  # fmt: skip
    found = np.load(dataset["reference"] / "kept_uids.npy")
    assert found.dtype == np.dtype("u8,u8") and found.tolist() == expected
