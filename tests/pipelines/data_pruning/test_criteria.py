"""Every criterion through `curate prune`, checked against the stored embeddings and the pure
metrics computed independently here."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from curation.storage import Folder
from metrics.quotas import quotas
from pipelines.data_pruning.schema import read_embeddings
from tests.builders import write_shards
from tests.runs import cli, cli_prune_args, decisions, run_prune, summary


@pytest.fixture(scope="module")
def captioned(tmp_path_factory):
    return write_shards(tmp_path_factory.mktemp("captioned"), 3, 40, layout="img2dataset")


def _stored(out, folder="assign"):
    """Embeddings, ids, clusters and distances of every valid sample, as the run stored them."""
    run = out / "_run"
    vectors, ids, cluster, distance = [], [], [], []
    for unit in sorted(p.stem for p in (run / "embed").glob("*.parquet")):
        rows = pq.read_table(run / "embed" / f"{unit}.parquet").to_pandas()
        ok = (rows["status"] == "ok").to_numpy()
        vectors.append(read_embeddings(Folder(str(run)), unit)[ok].astype(np.float32))
        ids.append(rows["id"].to_numpy()[ok])
        assigned = pq.read_table(run / folder / f"{unit}.parquet").to_pandas()
        cluster.append(assigned["cluster"].to_numpy()[ok])
        distance.append(assigned["distance"].to_numpy()[ok].astype(np.float64))
    return (
        np.concatenate(vectors),
        np.concatenate(ids),
        np.concatenate(cluster),
        np.concatenate(distance),
    )


def _naive_semdedup(vectors, ids, cluster, distance, eps=None, threshold=None):
    """The SemDeDup rule written plainly: farthest first, ties by id; duplicate when similar
    to any earlier member beyond 1 - eps."""
    threshold = 1 - eps if threshold is None else threshold
    flagged = set()
    for c in np.unique(cluster):
        members = np.flatnonzero(cluster == c)
        order = members[np.lexsort((ids[members], -distance[members]))]
        sims = vectors[order].astype(np.float64) @ vectors[order].astype(np.float64).T
        for j in range(1, len(order)):
            if (sims[j, :j].astype(np.float32).astype(np.float64) > threshold).any():
                flagged.add(int(ids[order[j]]))
    return flagged


def test_semdedup_with_eps_prunes_exactly_the_reference_duplicates(captioned, tmp_path, tiny_clip):
    out = tmp_path / "out"
    eps = 0.0008
    run_prune(captioned, out, tiny_clip, metric="semdedup", eps=eps, rate=0.9)
    expected = _naive_semdedup(*_stored(out), eps)
    table = decisions(out)
    pruned = set(table[table["reason"] == "duplicate"]["id"])
    assert 0 < len(pruned) < 108 and pruned == expected
    keys = set(table["key"])
    for detail in table[table["reason"] == "duplicate"]["detail"]:
        assert detail.startswith("duplicate of ") and detail.split()[2] in keys


def test_semdedup_rate_says_how_far_to_go(captioned, tmp_path, tiny_clip):
    out = tmp_path / "out"
    result = run_prune(captioned, out, tiny_clip, metric="semdedup", rate=0.25)
    assert result["kept_samples"] == 90
    table = decisions(out)
    pruned = table[~table["kept"]]["score"]
    assert pruned.min() >= table[table["kept"]]["score"].max()
    threshold = result["notes"]["semdedup"]["similarity_threshold"]
    assert set(table[~table["kept"]]["id"]) == _naive_semdedup(*_stored(out), threshold=threshold)


def test_dbp_quotas_match_an_independent_computation(captioned, tmp_path, tiny_clip):
    out = tmp_path / "out"
    result = run_prune(captioned, out, tiny_clip, metric="dbp", eps=0.0008, rate=0.5,
                       clusters=4, tau=0.1)  # fmt: skip
    table = decisions(out)
    duplicates = set(table[table["reason"] == "duplicate"]["id"])
    assert duplicates == _naive_semdedup(*_stored(out), 0.0008)
    _, ids, cluster, distance = _stored(out, "dbp_assign")
    rest = ~np.isin(ids, list(duplicates))
    clusters = result["clusters"]
    sizes = np.bincount(cluster[rest], minlength=4)
    assert [c["size"] for c in clusters] == sizes.tolist()
    # DBP's weights from their definition, computed here from the stored clustering alone:
    # d_intra the mean member distance, d_inter the mean distance to the other 3 centroids
    # (k - 1 < 20 neighbours), complexity their product, softmax(C / tau).
    mu = np.load(out / "_run" / "dbp_cluster" / "centroids.npy").astype(np.float64)
    d_intra = np.array([distance[rest & (cluster == j)].mean() for j in range(4)])
    similarity = mu @ mu.T
    d_inter = np.array([np.mean([1 - similarity[j, i] for i in range(4) if i != j])
                        for j in range(4)])  # fmt: skip
    logits = d_intra * d_inter / 0.1
    weights = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert [c["weight"] for c in clusters] == pytest.approx(weights.tolist(), rel=1e-6)
    expected = quotas(weights, sizes, result["kept_samples"])
    assert [c["quota"] for c in clusters] == expected.tolist()
    assert [c["kept"] for c in clusters] == expected.tolist()
    assert result["kept_samples"] == round(0.5 * 120)
    for j in range(4):  # the hardest of each cluster are the kept ones
        members = table[(table["id"].isin(ids[rest & (cluster == j)]))]
        kept = members[members["kept"]]["score"]
        if len(kept) and len(kept) < len(members):
            assert kept.min() >= members[~members["kept"]]["score"].max()


def test_el2n_and_ccs_keep_the_requested_count(captioned, tmp_path, tiny_clip):
    el2n = run_prune(captioned, tmp_path / "el2n", tiny_clip, metric="el2n", rate=0.5,
                     el2n_models=2, el2n_steps=2, el2n_offset=0.1)  # fmt: skip
    assert el2n["kept_samples"] == 60
    assert el2n["reasons"]["hardest_offset"] == 12
    probes = el2n["notes"]["el2n"]["probes"]
    assert (probes["train_samples"], probes["held_back_samples"]) == (108, 12)  # all 120 labelled
    assert 0 <= probes["train_accuracy"] <= 1 and probes["chance"] == 0.2
    assert list(probes["score_quantiles"]) == ["0.0", "0.05", "0.25", "0.5", "0.75", "0.95", "1.0"]
    ccs = run_prune(captioned, tmp_path / "ccs", tiny_clip, metric="ccs", rate=0.5,
                    ccs_score="el2n", ccs_cutoff=0.1, el2n_models=2, el2n_steps=2)  # fmt: skip
    assert ccs["kept_samples"] == 60 and ccs["reasons"]["hardest_cutoff"] == 12
    notes = ccs["notes"]["ccs"]
    assert sum(notes["budgets"]) == 60 and len(notes["budgets"]) == 50
    table = decisions(tmp_path / "ccs")
    assert table[table["reason"] == "stratum_budget"]["detail"].str.startswith("stratum").all()


def test_el2n_trains_on_a_seeded_sample_of_the_stated_size(captioned, tmp_path, tiny_clip):
    options = dict(metric="el2n", rate=0.5, el2n_models=1, el2n_steps=3, el2n_samples=50)
    first = run_prune(captioned, tmp_path / "a", tiny_clip, **options)["notes"]["el2n"]["probes"]
    assert (first["train_samples"], first["held_back_samples"]) == (45, 5)
    again = run_prune(captioned, tmp_path / "b", tiny_clip, **options)["notes"]["el2n"]["probes"]
    assert again == first
    scores = np.concatenate([np.load(p) for p in sorted((tmp_path / "a/_run/el2n").glob("*.npy"))])
    assert np.isfinite(scores).sum() == 120  # every labelled candidate scored, trained on or not


def test_el2n_with_a_shard_of_failed_samples_only(captioned, tmp_path, tiny_clip):
    import tarfile

    from tests.builders import add_member

    (tmp_path / "broken").mkdir()
    broken = tmp_path / "broken" / "broken.tar"
    with tarfile.open(broken, "w") as tar:
        add_member(tar, "bad.jpg", b"not an image")
        add_member(tar, "bad.cls", b"1")
    result = run_prune([*captioned, broken], tmp_path / "out", tiny_clip, metric="el2n",
                       el2n_models=1, el2n_steps=1)  # fmt: skip
    assert (result["failed_samples"], result["kept_samples"]) == (1, 60)


def test_clip_score_filter_runs_before_the_metric(captioned, tmp_path, tiny_clip):
    out = tmp_path / "out"
    run = out / "_run"
    result = run_prune(captioned, out, tiny_clip, metric="random", rate=0.5,
                       filter="clip-score-top:0.6")  # fmt: skip
    scores = np.concatenate([pq.read_table(p, columns=["clip_score"])["clip_score"].to_numpy()
                             for p in sorted((run / "embed").glob("*.parquet"))])  # fmt: skip
    assert np.isfinite(scores).all()
    assert result["reasons"]["below_clip_threshold"] == 120 - 72
    assert result["kept_samples"] == 60
    threshold = result["notes"]["filter"]["threshold"]
    table = decisions(out)
    assert (table[table["reason"] == "below_clip_threshold"]["score"].notna()).all()
    kept_ids = set(table[table["kept"]]["id"])
    below = np.flatnonzero(scores < threshold)
    assert not kept_ids & set(table["id"].to_numpy()[below])


def test_parameters_and_cluster_table_are_recorded(captioned, tmp_path, tiny_clip):
    out = tmp_path / "out"
    run_prune(captioned, out, tiny_clip, metric="dbp", eps=0.0008, tau=0.3, neighbors=2)
    recorded = summary(out)
    assert recorded["parameters"] == {"filter": None, "eps": 0.0008, "tau": 0.3,
                                      "neighbors": 2, "balance": 0.0}  # fmt: skip
    config = json.loads((out / "_run" / "config.json").read_text())["config"]
    assert config["tau"] == 0.3 and config["neighbors"] == 2
    for row in recorded["clusters"]:
        assert {"size", "d_intra", "d_inter", "complexity", "quota", "kept"} <= row.keys()


def test_el2n_without_labels_is_a_clear_error(tmp_path, tiny_clip):
    shards = write_shards(tmp_path / "in", 1, 20, layout="img2dataset")
    for path in shards:  # strip labels: rewrite json without a label field
        import io
        import tarfile

        with tarfile.open(path) as tar:
            members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
        with tarfile.open(path, "w") as tar:
            for name, data in members:
                if name.endswith(".json"):
                    data = b"{}"
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    result = cli(*cli_prune_args(shards, tmp_path / "out", tiny_clip, "--metric", "el2n",
                                 "--clusters", "2"))  # fmt: skip
    assert result.returncode != 0 and "--metric el2n needs labels" in result.stderr
    assert "Traceback" not in result.stderr
