"""Running the curate DAGs in tests: a request, and what each task instance did."""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Iterator


def request(shards: list, output, tiny_clip: str, **options) -> dict:
    """The DAG run's configuration asking what `tests.runs.cli_prune_args` asks of the CLI."""
    return {"shards": [str(s) for s in shards], "output": str(output), "rate": 0.5,
            "model": tiny_clip, "pretrained": "random", "clusters": 4, "batch_size": 16,
            **options}  # fmt: skip


def tasks(run) -> dict[tuple[str, str | None], tuple[str, int]]:
    """(task id, unit) -> (state, tries) of every task instance of a DAG run."""
    return {
        (ti.task_id, ti.rendered_map_index if ti.map_index >= 0 else None): (
            str(ti.state),
            ti.try_number,
        )
        for ti in run.get_task_instances()
    }


def fail_first_try(monkeypatch, target: str, unit: str) -> list[str]:
    """Make the stage function `module:function` die on its first call for `unit`, after it
    wrote its outputs and before its done marker; returns the units it was called for."""
    module, _, name = target.partition(":")
    original = getattr(importlib.import_module(module), name)
    calls: list[str] = []

    @functools.wraps(original)
    def dying(ctx, called_unit, **arguments):
        calls.append(called_unit)
        result = original(ctx, called_unit, **arguments)
        if called_unit == unit and calls.count(unit) == 1:
            raise RuntimeError(f"unit {unit} dies on its first try")
        return result

    monkeypatch.setattr(f"{module}.{name}", dying)
    return calls


@contextlib.contextmanager
def params_kept(dag) -> Iterator:
    """The DAG, its `Param` values put back afterwards: `dag.test` resolves a run's conf into
    the DAG's own `Param` objects, so a DAG shared between tests would hand one test's values
    (a Dask scheduler's address) to the next test's run as defaults. Each task of a deployed
    DAG parses it afresh, so this is a test's concern only. (A deep copy of the DAG loses its
    mapped tasks' expansions.)"""
    params = {
        id(param): (param, param.value)
        for holder in (dag, *dag.tasks)
        for param in holder.params.values()
    }
    try:
        yield dag
    finally:
        for param, value in params.values():
            param.value = value
