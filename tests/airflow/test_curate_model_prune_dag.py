"""The curate_model_prune and curate_model_sweep DAGs for real: parsed by a DagBag, the prune DAG
run by `dag.test()` on SQLite and compared byte for byte with `curate model prune`. dag.test
does not raise when a task fails, so the run test asserts the DagRun's state."""

import os

import pytest

from curation.errors import CurateError
from curation.lease import LEASE_NAME
from pipelines.model_pruning.config import PruneConfig, SweepConfig
from pipelines.model_pruning.tasks import prune_tasks
from tests.airflow.dag_runs import fail_first_try, params_kept, tasks
from tests.pipelines.model_pruning.runs import TINY, Data, artifacts, cli_args, labelled_data
from tests.runs import curate

pytest.importorskip("airflow", reason="the airflow extra is not installed")
MAX_LEVELS = int(os.environ["AIRFLOW__CURATE__MAX_LEVELS"])  # conftest: the site's setting
MAPPED = ("units", "unit", "finish")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Data:
    """tests/pipelines/model_pruning's labelled shards: 2 x 40 to train on, 40 to evaluate."""
    return labelled_data(tmp_path_factory.mktemp("labelled"))


@pytest.fixture
def model_dag(dagbag):
    with params_kept(dagbag.get_dag("curate_model_prune")) as dag:
        yield dag


def request(data: Data, output, **options) -> dict:
    """The DAG run's configuration asking what `cli_args(data, output, "--steps", "6")` asks."""
    return {"model": TINY, "train": [data.train], "eval": [data.eval], "output": str(output),
            "image_size": 16, "batch_size": 8, "threads": 1, "sparsity": 0.8, "steps": 6,
            **options}  # fmt: skip


def _chain(dag, stages: list[tuple[str, bool]]) -> list[str]:
    """Assert that `stages` (name, barrier) follow `start` one after the other and precede
    `end`; return their task ids."""
    expected, before = ["start"], "start"
    for name, barrier in stages:
        first, last = (name, name) if barrier else (f"{name}.units", f"{name}.finish")
        assert dag.get_task(first).upstream_task_ids == {before}
        expected += [name] if barrier else [f"{name}.{step}" for step in MAPPED]
        before = last
    assert dag.get_task("end").upstream_task_ids == {"start", "summary"}
    return [*expected, "end"]


def test_the_model_dags_import_and_lay_out_every_level_up_to_the_maximum(dagbag, model_dag):
    assert dagbag.import_errors == {}
    levels = [(f"level_{level}", False) for level in range(1, MAX_LEVELS + 1)]
    expected = _chain(model_dag, [("level_0", True), *levels, ("summary", True)])
    assert sorted(t.task_id for t in model_dag.tasks) == sorted(expected)
    sweep = dagbag.get_dag("curate_model_sweep")
    expected = _chain(sweep, [("level_0", True), ("prune", False), ("summary", True)])
    assert sorted(t.task_id for t in sweep.tasks) == sorted(expected)


@pytest.mark.parametrize("dag_id, config", [("curate_model_prune", PruneConfig),
                                            ("curate_model_sweep", SweepConfig)])  # fmt: skip
def test_the_params_are_the_cli_options_with_their_types_defaults_and_bounds(
    dagbag, dag_id, config
):
    params = dagbag.get_dag(dag_id).params
    assert list(params) == list(config.model_fields)
    assert params["steps"] == 300 and params.get_param("steps").schema["minimum"] == 0
    assert params["checkpoint"] is None and params["exclude"] == []
    assert params.get_param("train").schema["type"] == "array"
    for required in ("model", "train", "eval", "output"):
        assert not params.get_param(required).has_value


def test_the_prune_params_bound_the_sparsity_and_name_the_methods(model_dag):
    params = model_dag.params
    assert "nm" in params.get_param("method").schema["enum"]
    sparsity = params.get_param("sparsity").schema["anyOf"]  # none with --method nm
    assert {"minimum": 0, "exclusiveMaximum": 1, "type": "number"} in sparsity


def test_a_bad_request_is_refused_before_any_task_runs(model_dag, data, tmp_path):
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError, match="sparsity"):
        model_dag.test(run_conf=request(data, tmp_path / "out", sparsity=1.5))
    assert not (tmp_path / "out").exists()


def test_a_config_of_more_levels_than_laid_out_is_refused_before_any_folder(data, tmp_path):
    conf = request(data, tmp_path / "out", schedule="imp", levels=3)
    with pytest.raises(CurateError, match="prunes in 3 levels, and the DAG lays out 2"):
        prune_tasks(2).start(conf, "token", "holder")
    assert not (tmp_path / "out").exists()


def test_a_dag_run_gives_the_bytes_of_curate_model_prune_and_retries_a_dying_unit(
    model_dag, data, tmp_path, monkeypatch
):
    options = ("--steps", "6", "--schedule", "imp", "--levels", "2", "--controls")
    curate(*cli_args(data, tmp_path / "cli", *options))
    calls = fail_first_try(monkeypatch, "pipelines.model_pruning.levels:prune_level", "reinit")
    conf = request(data, tmp_path / "dag", schedule="imp", levels=2, controls=True)
    run = model_dag.test(run_conf=conf)
    assert run.state == "success"
    found = tasks(run)
    assert found[("level_1.unit", "reinit")] == ("success", 2)
    assert sorted(calls) == ["main", "main", "random", "random", "reinit", "reinit", "reinit"]
    assert {("level_2.unit", unit) for unit in ("main", "reinit", "random")} <= set(found)
    skipped = {task for task, (state, _) in found.items() if state == "skipped"}
    assert {task for task, _ in skipped} == {
        f"level_{level}.{step}" for level in range(3, MAX_LEVELS + 1) for step in MAPPED
    }
    found = artifacts(tmp_path / "dag")
    assert {"model.pt", "_run/level_2/reinit/model.pt", "_run/level_0/rewind.pt"} <= set(found)
    assert found == artifacts(tmp_path / "cli")
    assert not (tmp_path / "dag" / LEASE_NAME).exists()
