"""Real runs (tiny CLIP model, generated shards) decide exactly as the in-memory rules of
0.1.0: what `select` wrote for the run's metric, and what `keep_mask` (the sweep's entry point)
gives for every metric, from the same scores."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from curation.driver import run_stages
from curation.executors import make_executor
from curation.stage import Context
from pipelines.data_pruning import schema
from pipelines.data_pruning.criteria import loaders, ranked
from pipelines.data_pruning.decide import keep_mask
from pipelines.data_pruning.finished import open_run
from pipelines.data_pruning.pipeline import scoring_stages
from pipelines.data_pruning.samples import load_shard
from tests.pipelines.data_pruning import reference_rules


def whole(run, units, cfg) -> reference_rules.Columns:
    """Every shard's columns concatenated; nan (None) for the columns `cfg` does not read."""
    shards = [load_shard(run, u, cfg.holdout, loaders(cfg)) for u in units]

    def column(name, fill):
        return np.concatenate([s.columns.get(name, np.full(len(s), fill)) for s in shards])

    common = {name: np.concatenate([getattr(s, name) for s in shards])
              for name in ("ids", "valid", "heldout", "label", "cluster", "distance")}  # fmt: skip
    dbp = run.exists("dbp_cluster", "centroids.npy")
    return reference_rules.Columns(
        **common,
        centroids=schema.read_centroids(run),
        dbp_cluster=column("dbp_cluster", -1),
        dbp_distance=column("dbp_distance", np.nan),
        dbp_centroids=schema.read_centroids(run, "dbp_cluster") if dbp else np.zeros((0, 1)),
        similarity=column("similarity", -np.inf),
        nearest_key=column("nearest_key", None),
        el2n=column("el2n", np.nan),
        clip_score=column("clip_score", np.nan),
    )


def test_what_select_wrote_is_the_reference_rule(run_copy):
    run = open_run(run_copy)
    expected = reference_rules.decide(whole(run.run, run.units, run.config), run.config)
    written = pa.concat_tables(schema.read_decisions(run.run, u) for u in run.units)
    np.testing.assert_array_equal(written["kept"].to_numpy(), expected.keep)
    assert written["reason"].to_pylist() == expected.reason.tolist()
    np.testing.assert_array_equal(written["score"].to_numpy(), expected.score)
    assert schema.read_selection_record(run.run, run.units)["clusters"] == expected.clusters


@pytest.mark.parametrize("metric", ranked())
def test_keep_mask_of_every_metric_is_the_reference_rule(run_copy, metric):
    run = open_run(run_copy)
    cfg = run.config.model_copy(update={"metric": metric, "rate": 0.6, "eps": 0.01,
                                        "el2n_steps": 20, "el2n_models": 2})  # fmt: skip
    executor = make_executor(cfg.executor, cfg.workers, cfg.scheduler)
    try:  # the scores the metric reads, in the run as it is (embeddings and clusters reused)
        run_stages(scoring_stages(cfg), Context(run.run, cfg), executor)
    finally:
        executor.close()
    expected = reference_rules.decide(whole(run.run, run.units, cfg), cfg)
    np.testing.assert_array_equal(keep_mask(run.run, run.units, cfg), expected.keep)
