"""The union of the stages of every config, which a scheduler lays out before it sees one."""

import itertools

import pytest

from pipelines.data_pruning.config import PruneConfig
from pipelines.data_pruning.criteria import CRITERIA, keep_list
from pipelines.data_pruning.pipeline import every_stage, is_barrier, stages


def _configs():
    yield PruneConfig(shards=["a.tar"], output="/tmp/out", keep_list="/data/keep.npy")
    ranked = [name for name in CRITERIA if name != keep_list.NAME]
    for metric, ccs_score, keep, embeddings, dedup_clusters in itertools.product(
        ranked, ("prototypicality", "el2n"), ("hard", "easy"), (None, "/data/emb"), (None, 50)
    ):
        yield PruneConfig(shards=["a.tar"], output="/tmp/out", rate=0.5, metric=metric,
                          pretrained="random", ccs_score=ccs_score, keep=keep,
                          embeddings=embeddings, dedup_clusters=dedup_clusters)  # fmt: skip


@pytest.mark.parametrize(
    "config",
    list(_configs()),
    ids=lambda c: (
        f"{c.metric}-{c.ccs_score}-{c.keep}-{'given' if c.embeddings else 'model'}"
        f"-{c.dedup_clusters}"
    ),
)
def test_every_config_runs_a_subsequence_of_the_union(config):
    union = [s.name for s in every_stage()]
    names = [s.name for s in stages(config)]
    assert [n for n in union if n in names] == names


def test_the_union_holds_each_stage_once_with_its_kind():
    union = every_stage()
    names = [s.name for s in union]
    assert len(names) == len(set(names))
    assert names[:5] == ["emb_parts", "emb_index", "embed", "cluster", "assign"]
    assert names[-6:] == ["select_stats", "select_repeats", "select_plan", "select", "reshard",
                          "summary"]  # fmt: skip
    assert {"group", "dedup", "dedup_cluster", "dedup_assign", "dbp_cluster", "dbp_assign",
            "el2n_train", "el2n"} <= set(names)  # fmt: skip
    barriers = {s.name for s in union if is_barrier(s)}
    assert barriers == {"cluster", "dedup_cluster", "el2n_train", "el2n_network", "dbp_cluster",
                        "select_plan", "summary"}  # fmt: skip
