"""The model pipelines' task steps (what each Airflow task calls) driven one by one without
Airflow: the bytes of the CLI's run, the lease released at the end."""

from curation.lease import LEASE_NAME
from pipelines.model_pruning.tasks import sweep_tasks
from tests.pipelines.model_pruning.runs import FAST, artifacts, run_sweep


def test_the_sweep_s_tasks_one_by_one_give_the_bytes_of_curate_model_sweep(data, tmp_path):
    options = {**FAST, "methods": ["global", "random"], "sparsities": [0.5, 0.8]}
    run_sweep(data, tmp_path / "cli", **options)
    steps = sweep_tasks()
    params = {"train": [data.train], "eval": [data.eval], "output": str(tmp_path / "tasks"),
              **options}  # fmt: skip
    claim = steps.start(params, "curate_model_sweep/run-1", "a test")
    ran = []
    for slot in steps.slots:
        if slot.barrier:
            steps.barrier(params, claim, slot.name)
            continue
        for unit in steps.units(params, claim, slot.name):
            steps.unit(params, claim, slot.name, unit)
            ran.append(unit)
        steps.finish(params, claim, slot.name)
    steps.end(params, claim)
    assert ran == ["global-s0.5-seed0", "global-s0.8-seed0", "random-s0.5-seed0",
                   "random-s0.8-seed0"]  # fmt: skip
    found = artifacts(tmp_path / "tasks")
    assert {"results.csv", "_run/prune/random-s0.8-seed0/level_1/model.pt"} <= set(found)
    assert found == artifacts(tmp_path / "cli")
    assert not (tmp_path / "tasks" / LEASE_NAME).exists()
