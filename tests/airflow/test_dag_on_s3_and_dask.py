"""The production path in one run: the curate_prune DAG reads and writes S3 and runs its units on
a Dask cluster (the `scheduler` param), and `curate status` in another process (a laptop)
reads the run directory it left on S3."""

import pytest

from curation.executors import local_threads
from tests.airflow.dag_runs import request, tasks
from tests.production.storage import s3_outputs, s3_shards
from tests.runs import cli, cli_prune_args, curate
from tests.services import dask_cluster_on_localhost

pytest.importorskip("airflow", reason="the airflow extra is not installed")


def test_a_dag_run_on_s3_with_its_units_on_dask_is_inspected_from_the_cli(
    prune_dag, s3, tmp_path, tiny_clip
):
    shards = s3_shards(s3, tmp_path / "in", shards=2, per_shard=16)
    curate(*cli_prune_args(shards, s3.url("cli"), tiny_clip, "--workers", "2"))
    with dask_cluster_on_localhost(workers=2, nthreads=local_threads(2)) as cluster:
        conf = request(shards, s3.url("dag"), tiny_clip, executor="dask",
                       scheduler=cluster.address, workers=2)  # fmt: skip
        run = prune_dag.test(run_conf=conf)
    assert run.state == "success"
    assert tasks(run)[("embed.unit", "00001")] == ("success", 1)
    assert s3_outputs(s3, "dag") == s3_outputs(s3, "cli")
    status = cli("status", s3.url("dag"))
    assert status.returncode == 0, status.stderr
    for stage in ("embed", "cluster", "assign", "select", "reshard", "summary"):
        line = next(row for row in status.stdout.splitlines() if f" {stage} " in row)
        assert " done " in line, line
