"""--dedup-clusters: SemDeDup clusters on its own, DBP keeps its own clustering, and without
the option nothing changes (issue 13, item 5)."""

from __future__ import annotations

import numpy as np

from pipelines.data_pruning.config import PruneConfig
from pipelines.data_pruning.pipeline import stages
from tests.runs import output_files, run_prune

SELECT = ["select_stats", "select_repeats", "select_plan", "select", "reshard", "summary"]
BEFORE = {
    "semdedup": ["embed", "cluster", "assign", "group", "dedup", *SELECT],
    "dbp": ["embed", "cluster", "assign", "group", "dedup", "dbp_cluster", "dbp_assign", *SELECT],
}


def _names(metric: str, **options) -> list[str]:
    config = PruneConfig(shards=["a.tar"], output="/tmp/out", rate=0.5, metric=metric,
                         pretrained="random", **options)  # fmt: skip
    return [s.name for s in stages(config)]


def test_semdedup_gets_its_own_clustering_stages_only_when_asked():
    for metric, names in BEFORE.items():
        assert _names(metric) == names
        own = _names(metric, dedup_clusters=50)
        at = names.index("group")
        assert own == [*names[:at], "dedup_cluster", "dedup_assign", *names[at:]]


def test_dedup_clusters_are_semdedups_and_dbp_keeps_its_own(tmp_path, shards, tiny_clip):
    plain = run_prune(shards, tmp_path / "plain", tiny_clip, metric="semdedup")
    same_k = run_prune(shards, tmp_path / "same", tiny_clip, metric="semdedup", dedup_clusters=4)
    assert same_k == plain  # the same k and seeds: the same clustering, the same selection
    assert output_files(tmp_path / "same") == output_files(tmp_path / "plain")
    out = tmp_path / "dbp"
    run_prune(shards, out, tiny_clip, metric="dbp", dedup_clusters=8)
    run = out / "_run"
    assert np.load(run / "dedup_cluster" / "centroids.npy").shape[0] == 8
    assert np.load(run / "dbp_cluster" / "centroids.npy").shape[0] == 4  # --clusters
    assert len([p for p in (run / "group").iterdir() if p.name.isdigit()]) == 8  # a bucket each
    assert np.load(run / "cluster" / "centroids.npy").shape[0] == 4
