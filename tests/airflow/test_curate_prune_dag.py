"""The curate_prune DAG for real: parsed by a DagBag and run by `dag.test()` on SQLite. dag.test
does not raise when a task fails, so each test asserts the DagRun's state."""

import pytest

from curation.lease import LEASE_NAME, Lease
from curation.storage import Folder
from pipelines.data_pruning.config import PruneConfig
from pipelines.data_pruning.criteria import CRITERIA
from pipelines.data_pruning.pipeline import every_stage, is_barrier
from tests.airflow.dag_runs import fail_first_try, request, tasks
from tests.builders import write_shards
from tests.runs import cli_prune_args, curate, output_files

pytest.importorskip("airflow", reason="the airflow extra is not installed")
SUCCESS, FAILED = "success", "failed"


def test_the_dags_import_and_lay_out_every_stage_in_order(dagbag, prune_dag):
    assert dagbag.import_errors == {}
    expected, before = ["start"], "start"
    for stage in every_stage():
        first, last = ((stage.name,) * 2 if is_barrier(stage)
                       else (f"{stage.name}.units", f"{stage.name}.finish"))  # fmt: skip
        assert prune_dag.get_task(first).upstream_task_ids == {before}
        expected += [stage.name] if is_barrier(stage) else [
            f"{stage.name}.{step}" for step in ("units", "unit", "finish")]  # fmt: skip
        before = last
    assert prune_dag.get_task("end").upstream_task_ids == {"start", "summary"}
    assert sorted(t.task_id for t in prune_dag.tasks) == sorted([*expected, "end"])


def test_the_params_are_the_cli_options_with_their_types_defaults_and_bounds(prune_dag):
    params = prune_dag.params
    shown = [n for n, f in PruneConfig.model_fields.items()
             if (f.json_schema_extra or {}).get("cli", True) is not False]  # fmt: skip
    assert list(params) == ["shards", *shown, "overwrite"]
    assert params.get_param("metric").schema["enum"] == list(CRITERIA)
    assert params["clusters"] == 100 and params.get_param("clusters").schema["minimum"] == 1
    assert params["storage_options"] == {} and params["pretrained"] is None
    rate = params.get_param("rate").schema["anyOf"]  # a number in (0, 1), or none (--keep-list)
    assert {"exclusiveMinimum": 0, "exclusiveMaximum": 1, "type": "number"} in rate


def test_a_bad_request_is_refused_before_any_task_runs(prune_dag, tmp_path, tiny_clip):
    from airflow.sdk.definitions.param import ParamValidationError

    conf = request([tmp_path / "in.tar"], tmp_path / "out", tiny_clip, rate=1.5)
    with pytest.raises(ParamValidationError, match="rate"):
        prune_dag.test(run_conf=conf)


def test_a_dag_run_gives_the_bytes_of_curate_prune_and_retries_a_dying_unit(
    prune_dag, tmp_path, tiny_clip, monkeypatch
):
    shards = write_shards(tmp_path / "in", shards=3, per_shard=20)
    curate(*cli_prune_args(shards, tmp_path / "cli", tiny_clip))
    calls = fail_first_try(monkeypatch, "pipelines.data_pruning.embed:embed_shard", "00001")
    run = prune_dag.test(run_conf=request(shards, tmp_path / "dag", tiny_clip))
    assert run.state == SUCCESS
    found = tasks(run)
    assert found[("embed.unit", "00001")] == (SUCCESS, 2)
    assert sorted(calls) == ["00000", "00001", "00001", "00002"]  # only the dying unit redone
    ran = {task for task, (state, tries) in found.items() if state == SUCCESS}
    assert all(tries <= 1 for key, (_, tries) in found.items() if key != ("embed.unit", "00001"))
    skipped = {task for task, (state, _) in found.items() if state == "skipped"}
    mapped = ("emb_parts", "emb_index", "keep_list", "el2n", "dedup_assign", "group", "dedup",
              "dbp_assign")  # fmt: skip
    barriers = ("el2n_train", "el2n_network", "dedup_cluster", "dbp_cluster")
    assert {t for t, _ in skipped} == {*barriers, *(
        f"{s}.{step}" for s in mapped for step in ("units", "unit", "finish"))}  # fmt: skip
    assert {("reshard.unit", u) for u in ("00000", "00001", "00002")} <= ran
    assert output_files(tmp_path / "dag") == output_files(tmp_path / "cli")
    assert not (tmp_path / "dag" / LEASE_NAME).exists()


def test_a_folder_held_by_a_live_run_fails_the_dag_run_at_once(
    prune_dag, tmp_path, tiny_clip, capfd
):
    shards = write_shards(tmp_path / "in", shards=1, per_shard=4)
    out = tmp_path / "out"
    with Lease(Folder(str(out)), settle=0.05) as held:
        run = prune_dag.test(run_conf=request(shards, out, tiny_clip))
        assert Folder(str(out)).read_json(LEASE_NAME)["token"] == held.token
    assert run.state == FAILED
    found = tasks(run)
    assert found[("start", None)] == (FAILED, 1)  # a user error: no second try
    assert {state for key, (state, _) in found.items() if key[0] not in ("start", "end")} == {
        "upstream_failed"}  # fmt: skip
    assert f"{out} is being written by another curate run (host " in capfd.readouterr().out


def test_input_that_can_give_nothing_leaves_nothing_behind(prune_dag, tmp_path, tiny_clip):
    shards = write_shards(tmp_path / "in", shards=1, per_shard=4)
    out = tmp_path / "out"
    run = prune_dag.test(run_conf=request(shards, out, tiny_clip, clusters=10))
    assert run.state == FAILED
    assert tasks(run)[("cluster", None)] == (FAILED, 1)
    assert not out.exists()


@pytest.mark.slow
def test_dbp_through_the_dag_maps_the_dedup_stage_over_its_buckets(prune_dag, tmp_path,
                                                                  tiny_clip):  # fmt: skip
    shards = write_shards(tmp_path / "in", shards=2, per_shard=30)
    curate(*cli_prune_args(shards, tmp_path / "cli", tiny_clip, "--metric", "dbp"))
    run = prune_dag.test(run_conf=request(shards, tmp_path / "dag", tiny_clip, metric="dbp"))
    assert run.state == SUCCESS
    found = tasks(run)
    assert len([key for key in found if key[0] == "dedup.unit"]) > 1
    assert found[("el2n", None)][0] == "skipped"
    assert output_files(tmp_path / "dag") == output_files(tmp_path / "cli")
