"""An Airflow DAG for a pipeline run as separate tasks (`curation.tasks`); needs the airflow
extra (`pip install 'curate[airflow]'`).

The DAG lays out every stage some config runs, in order: a task group per stage with many
units (`units` lists the pending ones, `unit` is mapped over them, `finish` checks them) and a
single task per barrier stage, between a setup task (`start`: check the request, take the lease,
record the run) and a teardown (`end`: release the lease, however the run ended; a teardown
does not decide the run's state). A stage the run's config does not need is skipped, and the
later stages still run (`none_failed`).

Retries map onto the unit contract: a unit is idempotent and its done marker is written last,
so a retried or cleared unit task redoes that unit alone, and a task of a finished unit does
nothing. A user error (`CurateError`) fails its task at once, with its one line: another try
would meet the same problem.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, Param, TaskGroup, dag, get_current_context, task
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from pydantic import BaseModel

from curation.errors import CurateError
from curation.fields import CLI
from curation.tasks import NotInRun, TaskSteps

START, END = "start", "end"
RETRIES = 2  # each task's tries after the first


def _retry_delay() -> timedelta:
    """The site's default_task_retry_delay, stated on every task: a mapped task left to the
    default waits Airflow's built-in 300 s whatever the site set."""
    return timedelta(seconds=conf.getint("core", "default_task_retry_delay", fallback=300))


def model_params(model: type[BaseModel], before: dict[str, dict] | None = None,
                 after: dict[str, dict] | None = None) -> dict[str, Param]:  # fmt: skip
    """A param per command-line option of `model`, its JSON schema as pydantic states it
    (type, choices, bounds, help, default), between the request's other params (`before`,
    `after`: JSON schemas): the options are declared once, on the model."""
    properties = model.model_json_schema()["properties"]
    params = {name: _param(schema) for name, schema in (before or {}).items()}
    for name, field in model.model_fields.items():
        schema = {k: v for k, v in properties[name].items() if k != CLI}
        if properties[name].get(CLI, True) is False:
            continue
        if not field.is_required():
            schema["default"] = field.get_default(call_default_factory=True)
        params[name] = _param(schema)
    params.update({name: _param(schema) for name, schema in (after or {}).items()})
    return params


def _param(schema: dict) -> Param:
    """A JSON schema as an Airflow param; a None default is allowed by the schema."""
    schema = dict(schema)
    default = schema.pop("default", ...)
    if default is None and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    if default is ...:
        return Param(**schema)  # required: no default
    return Param(default, **schema)


def _params() -> dict[str, Any]:
    params = get_current_context()["params"]
    return {name: params[name] for name in params}


def _claim() -> dict:
    return get_current_context()["ti"].xcom_pull(task_ids=START)


def _call(step: Callable, *args: Any) -> Any:
    """A step of the run: a stage the run does not need skips its task, a user error fails it
    without a retry, anything else fails this try (Airflow retries it)."""
    try:
        return step(*args)
    except NotInRun as exc:
        raise AirflowSkipException(str(exc)) from None
    except CurateError as exc:
        raise AirflowFailException(str(exc)) from None


def pipeline_dag(dag_id: str, steps: TaskSteps, params: dict[str, Param], doc: str) -> DAG:
    """The DAG of one pipeline: triggered by hand (or by the API) with its request as the run's
    configuration, validated against `params`."""

    @task(task_id=START)
    def start() -> dict:
        token = f"{dag_id}/{get_current_context()['run_id']}"
        return _call(steps.start, _params(), token, f"Airflow DAG run {token}")

    @task
    def units(name: str) -> list[str]:
        return _call(steps.units, _params(), _claim(), name)

    @task(map_index_template="{{ unit }}")
    def unit(name: str, unit: str) -> dict:
        return _call(steps.unit, _params(), _claim(), name, unit)

    @task(trigger_rule="none_failed")
    def finish(name: str) -> None:
        _call(steps.finish, _params(), _claim(), name)

    @task
    def barrier(name: str) -> None:
        _call(steps.barrier, _params(), _claim(), name)

    @task(task_id=END)
    def end() -> None:
        steps.end(_params(), _claim())

    @dag(dag_id=dag_id, schedule=None, catchup=False, params=params, doc_md=doc,
         tags=["curate"],
         default_args={"retries": RETRIES, "retry_delay": _retry_delay()})  # fmt: skip
    def build() -> None:
        setup = start()
        last = setup
        for slot in steps.slots:
            # after the setup, all_success (Airflow's rule); later, a skipped stage goes on
            rule = "all_success" if last is setup else "none_failed"
            if slot.barrier:
                first = current = barrier.override(task_id=slot.name, trigger_rule=rule)(slot.name)
            else:
                with TaskGroup(group_id=slot.name):
                    first = units.override(trigger_rule=rule)(slot.name)
                    mapped = unit.partial(name=slot.name).expand(unit=first)
                    current = finish(slot.name)
                    mapped >> current
            last >> first
            last = current
        teardown = end()
        last >> teardown
        teardown.as_teardown(setups=setup)

    return build()
