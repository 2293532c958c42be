"""The selection benchmark's synthetic run directory is one the selection stages accept, for
every metric, and its streamed form (per-shard columns alone) plans the same selection, so the
benchmark keeps measuring the real stages."""

import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.selection import (
    METRICS,
    PER_SHARD,
    RATE,
    STAGES,
    build_run,
    build_streamed,
    measure_stage,
    run_stage,
)
from curation.storage import Folder
from metrics.selection import kept_count
from pipelines.data_pruning import schema


def test_every_metric_selects_from_the_synthetic_run(tmp_path):
    build_run(tmp_path, 2 * PER_SHARD, METRICS)
    status = pq.read_table(tmp_path / "embed", columns=["status"])["status"]
    valid = pc.sum(pc.equal(status, "ok")).as_py()
    assert 0 < valid < 2 * PER_SHARD  # a few failed samples, as in real runs
    run = Folder(str(tmp_path))
    for metric in METRICS:
        results = [measure_stage(str(tmp_path), 2, metric, stage) for stage in STAGES]
        assert [r["units"] for r in results] == [2, 1, 1, 2]
        counts = [schema.read_counts(run, unit) for unit in ("00000", "00001")]
        assert schema.sum_counts(counts)["kept"] == kept_count(valid, RATE)
        assert [c["duplicate_keys"] for c in counts] == [0, 1]
        streamed = tmp_path / f"streamed-{metric}"
        build_streamed(streamed, 2 * PER_SHARD, [metric])
        measure_stage(str(streamed), 2, metric, "select_plan")
        plan, again = schema.read_plan(run), schema.read_plan(Folder(str(streamed)))
        assert again["criterion"] == plan["criterion"] and again["target"] == plan["target"]


def test_each_measurement_runs_in_its_own_process(tmp_path):
    build_run(tmp_path, PER_SHARD, ["random"])
    result = run_stage(tmp_path, 1, "random", "select_stats")
    assert result["units"] == 1 and result["seconds"] > 0
    assert result["peak_mib"] >= result["imports_mib"] > 0
    assert result["model_libraries"] == []  # selection measured without torch or faiss loaded
