"""The stage contract on toy stages: resume, invalidation, error records, atomic writes."""

import json

import pytest

from curation.driver import run_stages
from curation.errors import CurateError
from curation.executors import LocalExecutor
from curation.stage import Context, Stage
from curation.storage import Folder


def _units(ctx):
    return ["a", "b", "c"]


def _write(ctx, unit):
    calls = ctx.run.url_of("calls.log")
    with open(calls, "a") as f:
        f.write(f"first:{unit}\n")
    if unit in ctx.config.get("fail", ()):
        raise RuntimeError(f"boom in {unit}")
    ctx.run.write_json({"unit": unit, "factor": ctx.config["factor"]}, "first", f"{unit}.json")
    return {"samples": 10}


def _total(ctx, unit):
    with open(ctx.run.url_of("calls.log"), "a") as f:
        f.write("second\n")
    total = sum(ctx.run.read_json("first", f"{u}.json")["factor"] for u in _units(ctx))
    ctx.run.write_json(total, "second", "total.json")
    return {"samples": 3}


STAGES = [
    Stage("first", _units, _write, lambda c: {"factor": c["factor"]}),
    Stage("second", lambda ctx: ["all"], _total, lambda c: {}),
]


def _run(tmp_path, **config):
    ctx = Context(Folder(str(tmp_path / "run")), {"factor": 1, **config}, threads=1)
    run_stages(STAGES, ctx, LocalExecutor(1))
    return ctx


def _calls(tmp_path):
    return (tmp_path / "run" / "calls.log").read_text().split()


def test_rerun_skips_done_units_and_changed_params_redo_downstream(tmp_path):
    _run(tmp_path)
    assert _calls(tmp_path) == ["first:a", "first:b", "first:c", "second"]
    _run(tmp_path)
    assert len(_calls(tmp_path)) == 4
    ctx = _run(tmp_path, factor=2)
    assert _calls(tmp_path)[4:] == ["first:a", "first:b", "first:c", "second"]
    assert ctx.run.read_json("second", "total.json") == 6


def test_failed_unit_is_recorded_and_the_others_finish(tmp_path):
    with pytest.raises(CurateError, match=r"stage first: 1 of 3 units failed .*boom in b"):
        _run(tmp_path, fail=("b",))
    run = tmp_path / "run" / "first"
    assert sorted(p.name for p in (run / "done").iterdir()) == ["a", "c"]
    record = json.loads((run / "errors" / "b.json").read_text())
    assert "boom in b" in record["error"] and "Traceback" in record["traceback"]
    _run(tmp_path)
    assert _calls(tmp_path)[-2:] == ["first:b", "second"]
    assert not (run / "errors" / "b.json").exists()


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    folder = Folder(str(tmp_path))
    with pytest.raises(ValueError), folder.open_atomic("x.bin") as f:
        f.write(b"half")
        raise ValueError
    assert list(tmp_path.iterdir()) == []
    folder.write_bytes(b"whole", "sub", "x.bin")
    assert (tmp_path / "sub" / "x.bin").read_bytes() == b"whole"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["x.bin"]
