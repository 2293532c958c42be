"""The selection benchmark's synthetic run directory is one `select` accepts, for every metric,
so the benchmark keeps measuring the real stage."""

import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.selection import METRICS, PER_SHARD, RATE, build_run, config, run_metric
from curation.stage import Context
from curation.storage import Folder
from metrics.selection import kept_count
from pipelines.data_pruning.select import select_samples


def test_every_metric_selects_from_the_synthetic_run(tmp_path):
    build_run(tmp_path, 2 * PER_SHARD, METRICS)
    status = pq.read_table(tmp_path / "embed", columns=["status"])["status"]
    valid = pc.sum(pc.equal(status, "ok")).as_py()
    assert 0 < valid < 2 * PER_SHARD  # a few failed samples, as in real runs
    for metric in METRICS:
        ctx = Context(Folder(str(tmp_path)), config(str(tmp_path), 2, metric), 1)
        assert select_samples(ctx, "all") == {
            "samples": 2 * PER_SHARD,
            "kept": kept_count(valid, RATE),
        }


def test_each_measurement_runs_in_its_own_process(tmp_path):
    build_run(tmp_path, PER_SHARD, ["random"])
    result = run_metric(tmp_path, 1, "random")
    assert result["samples"] == PER_SHARD and result["seconds"] > 0
    assert result["peak_mib"] >= result["imports_mib"] > 0
