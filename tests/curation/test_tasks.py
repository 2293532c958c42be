"""A run made of separate tasks, on toy stages and without a scheduler: the steps called one by
one as an Airflow DAG calls them give what the driver gives, a retried unit redoes only itself,
a stage the config lacks is not in the run, a taken lease stops a task, and a stage that finds
no result abandons the run."""

import pytest

from curation.driver import run_stages, stage_digests
from curation.errors import CurateError, NoResultError
from curation.executors import InProcessExecutor
from curation.lease import LEASE_NAME, TaskLease
from curation.stage import Context, Stage
from curation.storage import Folder
from curation.tasks import NotInRun, StageSlot, TaskRun, TaskSteps


def _units(ctx):
    return ["a", "b", "c"]


def _square(ctx, unit):
    if unit in ctx.config.get("dying", ()) and not ctx.run.exists("died", unit):
        ctx.run.write_bytes(b"", "died", unit)
        raise RuntimeError(f"{unit} dies once")
    ctx.run.write_json({"unit": unit, "value": ctx.config["factor"] ** 2}, "square", unit)
    return {"samples": 1}


def _double(ctx, unit):
    ctx.run.write_json(ctx.config["factor"] * 2, "double", unit)
    return {"samples": 1}


def _total(ctx, unit):
    if ctx.config.get("empty"):
        raise NoResultError("nothing to add up")
    total = sum(ctx.run.read_json("square", u)["value"] for u in _units(ctx))
    ctx.run.write_json(total, "total", "value.json")
    return {"samples": 3}


def _factor(config):
    return {"factor": config["factor"]}


SQUARE = Stage("square", _units, _square, _factor)
DOUBLE = Stage("double", _units, _double, _factor)
TOTAL = Stage("total", lambda ctx: ["all"], _total, lambda config: {})


def _stages(config) -> list[Stage]:
    return [SQUARE, *([DOUBLE] if config.get("double") else []), TOTAL]


class ToySteps(TaskSteps):
    """The run directory is the output; the config is recorded there by `start`."""

    slots = (StageSlot("square", False), StageSlot("double", False), StageSlot("total", True))

    def __init__(self):
        self.abandoned: list[str] = []

    def start(self, params, token, holder):
        run = Folder(params["run"])
        TaskLease(run, token, holder, settle=0.01).acquire()
        run.write_json(params, "config.json")
        return {"run": params["run"], "token": token, "holder": holder}

    def open(self, params, claim):
        run = Folder(claim["run"])
        config = run.read_json("config.json")
        stages = _stages(config)
        lease = TaskLease(run, claim["token"], claim["holder"], settle=0.01)
        return TaskRun(Context(run, config), stages, stage_digests(stages, config), lease,
                       InProcessExecutor)  # fmt: skip

    def abandon(self, run, claim):
        self.abandoned.append(claim["run"])

    def end(self, params, claim):
        TaskLease(Folder(claim["run"]), claim["token"], claim["holder"]).release()


def _schedule(steps: ToySteps, params: dict) -> dict:
    """Every task in DAG order, each unit as its own task; the tasks that were skipped."""
    claim = steps.start(params, "toy/run-1", "a toy scheduler's run")
    skipped = []
    for slot in steps.slots:
        try:
            if slot.barrier:
                steps.barrier(params, claim, slot.name)
            else:
                for unit in steps.units(params, claim, slot.name):
                    steps.unit(params, claim, slot.name, unit)
                steps.finish(params, claim, slot.name)
        except NotInRun:
            skipped.append(slot.name)
    steps.end(params, claim)
    return {"claim": claim, "skipped": skipped}


def _files(folder) -> dict[str, bytes]:
    """What the stages wrote, but the timed records (stats, run.log)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.parent.name != "stats" and p.name != "run.log"}  # fmt: skip


def test_tasks_one_by_one_give_what_the_driver_gives(tmp_path):
    config = {"factor": 3}
    run_stages(_stages(config), Context(Folder(str(tmp_path / "driver")), config),
               InProcessExecutor())  # fmt: skip
    done = _schedule(ToySteps(), {**config, "run": str(tmp_path / "tasks")})
    assert done["skipped"] == ["double"]  # not a stage of this config
    tasks = _files(tmp_path / "tasks")
    assert tasks.pop("config.json")
    assert tasks == _files(tmp_path / "driver")
    assert not (tmp_path / "tasks" / LEASE_NAME).exists()
    lines = (tmp_path / "tasks" / "run.log").read_text().splitlines()
    log = [line.split(" ", 1)[1] for line in lines]  # without the time stamps
    assert log == ["square: start, 3 units, 0 already done", "square: end, 3/3 units",
                   "total: start, 1 units, 0 already done", "total: end, 1/1 units"]  # fmt: skip


def test_a_dying_unit_fails_its_task_and_its_retry_redoes_it_alone(tmp_path):
    steps = ToySteps()
    params = {"factor": 2, "run": str(tmp_path / "run"), "dying": ["b"]}
    claim = steps.start(params, "toy/run-1", "a toy scheduler's run")
    pending = steps.units(params, claim, "square")
    assert pending == ["a", "b", "c"]
    results = {}
    for unit in pending:
        try:
            results[unit] = steps.unit(params, claim, "square", unit)
        except RuntimeError as exc:
            results[unit] = exc
    assert isinstance(results["b"], RuntimeError)
    with pytest.raises(CurateError, match=r"unit b is not done \(error in b\)"):
        steps.finish(params, claim, "square")
    assert steps.unit(params, claim, "square", "b")["unit"] == "b"  # the retry
    steps.finish(params, claim, "square")
    assert steps.units(params, claim, "square") == []  # a cleared stage redoes nothing


def test_a_task_whose_lease_was_taken_runs_nothing(tmp_path):
    steps = ToySteps()
    params = {"factor": 2, "run": str(tmp_path / "run")}
    claim = steps.start(params, "toy/run-1", "a toy scheduler's run")
    (tmp_path / "run" / LEASE_NAME).unlink()
    with pytest.raises(CurateError, match="lost the lease"):
        steps.units(params, claim, "square")
    assert not (tmp_path / "run" / "square").exists()


def test_a_stage_that_finds_no_result_abandons_the_run(tmp_path):
    steps = ToySteps()
    params = {"factor": 2, "run": str(tmp_path / "run"), "empty": True}
    claim = steps.start(params, "toy/run-1", "a toy scheduler's run")
    for unit in steps.units(params, claim, "square"):
        steps.unit(params, claim, "square", unit)
    with pytest.raises(NoResultError):
        steps.barrier(params, claim, "total")
    assert steps.abandoned == [params["run"]]
