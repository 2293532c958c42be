"""The stage functions of the validate and sweep pipelines (declared in `pipeline.py`).

Each unit writes into its stage's folder of the validate or sweep run: `eval/embed/<unit>.*`
(the --eval shards' embeddings, as the prune run's embed stage writes them);
`teacher/<name>.pt` (a trained teacher), `.json` and `.npy`; `select/<selection>.npy` (the
prune run's rows it keeps) or `.json` (why it could not be decided); `train/<unit>.json` and
`.npy`. Every `.npy` of a model is which test samples it got right, in test order.
"""

from __future__ import annotations

import numpy as np
import torch

from curation import rundir
from curation.errors import CurateError
from curation.stage import Context
from curation.storage import Folder
from metrics.selection import random_keep
from pipelines.data_pruning.config import PruneConfig
from pipelines.data_pruning.embed import embed_shard
from pipelines.data_pruning.finished import open_run
from pipelines.data_pruning.schema import load_array, save_array
from pipelines.data_pruning.workers import setup_embedder
from pipelines.validation.data import ValidationData, cached
from pipelines.validation.models import describe, save_checkpoint
from pipelines.validation.pipeline import ARMS, EVAL, FULL, GIVEN, KD, Job, parse_seed, teachers
from pipelines.validation.teachers import (
    TRAINED,
    given_teacher,
    sees_images,
    teacher_for_student,
    view_for,
)
from pipelines.validation.train import correct_on_test, spec, train_model

TEACHER, TRAIN, SELECT = "teacher", "train", "select"


# eval


def _eval_context(ctx: Context) -> Context:
    """The prune run's embed stage, pointed at the --eval shards and at `eval/` of this run."""
    job: Job = ctx.config
    config = PruneConfig(**job.run_config).model_copy(
        update={
            "shards": job.eval_shards,
            "given_shards": job.eval_shards,
            "fingerprints": job.eval_fingerprints,
            "filter": None,
        }
    )
    return Context(Folder(ctx.run.url_of(EVAL), ctx.run.storage_options), config, ctx.threads)


def setup_eval(ctx: Context) -> None:
    setup_embedder(_eval_context(ctx))


def embed_eval(ctx: Context, unit: str) -> dict:
    return embed_shard(_eval_context(ctx), unit)


# data, once per worker


def _data(ctx: Context) -> ValidationData:
    job: Job = ctx.config
    image_view = job.config.on == "embeddings" and sees_images(job.config)
    return cached(
        job.run_dir, ctx.run, job.config, job.eval_shards, image_view, job.storage_options
    )


def setup_training(ctx: Context) -> None:
    """Threads, and the data loaded once per worker process."""
    if torch.get_num_threads() != ctx.threads:
        torch.set_num_threads(ctx.threads)
    _data(ctx)


def _write(ctx: Context, stage: str, name: str, correct: np.ndarray, record: dict) -> dict:
    save_array(ctx.run, correct.astype(bool), stage, f"{name}.npy")
    record = {**record, "accuracy": float(correct.mean())}
    ctx.run.write_json(record, stage, f"{name}.json")
    return {"samples": record.get("train_size") or 0, "accuracy": record["accuracy"]}


def _kept(job: Job, data: ValidationData) -> np.ndarray:
    """The pool entries the prune run kept."""
    kept = data.subset(
        np.flatnonzero(open_run(job.run_dir, storage_options=job.storage_options).kept())
    )
    if len(kept) == 0:
        raise CurateError("no kept sample of the run is labelled: nothing to validate")
    return kept


# teachers


def _teacher_source(job: Job, name: str, size: int | None) -> str:
    config = job.config
    if name == GIVEN:
        if config.teacher_kind == "checkpoint":
            return f"{config.teacher} (written by curate validate)"
        return (f"{config.teacher} with {config.teacher_checkpoint}: it has seen what it was "
                "trained on, which may include the pruned samples")  # fmt: skip
    what = "the pool" if name == FULL else "the kept subset only"
    seen = ": it has seen the pruned samples" if name == FULL else ": it never saw a pruned sample"
    return f"trained on {what} ({size} samples, seed {config.seed}){seen}"


def _test_given(ctx: Context, job: Job, data: ValidationData) -> dict:
    """`--teacher`: nothing to train; its test answers, on the view it takes."""
    model = given_teacher(job.config, data)
    view = view_for(job.config, GIVEN, data)
    correct = correct_on_test(model, data, job.config, None if view is data.inputs else view)
    record = {"name": GIVEN, "train_size": None, "source": _teacher_source(job, GIVEN, None)}
    return _write(ctx, TEACHER, GIVEN, correct, record)


def train_teacher(ctx: Context, unit: str) -> dict:
    job: Job = ctx.config
    config, data = job.config, _data(ctx)
    if unit == GIVEN:
        return _test_given(ctx, job, data)
    subset = data.pool if unit == FULL else _kept(job, data)
    steps = config.total_steps(len(data.pool))
    model = train_model(data, subset, config, steps, config.seed, label=f"teacher {unit}")
    save_checkpoint(model, spec(data, config), ctx.run, TEACHER, f"{unit}.pt")
    record = {"name": unit, "train_size": len(subset), "steps": steps, "seed": config.seed,
              "model": describe(spec(data, config)),
              "source": _teacher_source(job, unit, len(subset))}  # fmt: skip
    return _write(ctx, TEACHER, unit, correct_on_test(model, data, config), record)


# students


def _same_as_teacher(job: Job, subset: str, seed: int, teacher: str | None) -> str | None:
    """The teacher this run trains that is this very model (same subset, seed and recipe, no
    KD): it is tested, not trained again."""
    if teacher is None and seed == job.config.seed and subset in TRAINED:
        return subset if subset in teachers(job) else None
    return None


def _student(ctx: Context, unit: str, data: ValidationData, subset: np.ndarray, seed: int,
             teacher: str | None, reuse: str | None, record: dict) -> dict:  # fmt: skip
    """Train (or reuse the teacher that is the same model), test, write the unit's outputs."""
    config = ctx.config.config
    fraction = len(subset) / len(data.pool)
    steps = config.total_steps(len(data.pool))
    record = {**record, "seed": seed, "train_size": len(subset), "kept_fraction": fraction,
              "pool_size": len(data.pool), "test_size": len(data.test), "steps": steps,
              "model": describe(spec(data, config)), "teacher": teacher,
              "alpha": config.alpha_for(fraction) if teacher else None}  # fmt: skip
    if reuse is not None:
        correct = load_array(ctx.run, TEACHER, f"{reuse}.npy")
        return _write(ctx, TRAIN, unit, correct, {**record, "same_model_as_teacher": reuse})
    guide = None
    if teacher is not None:
        digest = rundir.recorded_hash(ctx.run, TEACHER)
        guide = teacher_for_student(ctx.run, config, teacher, digest, data)
    alpha = record["alpha"] or 0.0
    model = train_model(data, subset, config, steps, seed, guide, alpha, label=unit)
    return _write(ctx, TRAIN, unit, correct_on_test(model, data, config), record)


def train_validate_arm(ctx: Context, unit: str) -> dict:
    job: Job = ctx.config
    arm, seed = parse_seed(unit)
    subset_name, teacher = ARMS[arm]
    teacher = job.main_teacher if teacher == "main" else teacher
    data = _data(ctx)
    if subset_name == FULL:
        subset = data.pool
    else:
        subset = _kept(job, data)
        if subset_name == "random":  # a new draw for every seed
            subset = data.pool[random_keep(len(data.pool), len(subset), seed)]
    reuse = _same_as_teacher(job, subset_name, seed, teacher)
    return _student(ctx, unit, data, subset, seed, teacher, reuse,
                    {"arm": arm, "subset": subset_name})  # fmt: skip


def select_subset(ctx: Context, unit: str) -> dict:
    """A sweep's selection: the prune run's rows it keeps, decided from the run's scores."""
    job: Job = ctx.config
    name, seed = parse_seed(unit) if "@seed" in unit else (unit, None)
    selection = job.selection(name)
    run = open_run(job.run_dir, ("embed", "assign"), job.storage_options)
    try:
        keep = run.kept_by(selection.config(run.config, seed))
    except (CurateError, ValueError) as exc:  # the criterion cannot decide on this run
        ctx.run.write_json({"error": f"{type(exc).__name__}: {exc}"}, SELECT, f"{unit}.json")
        return {"samples": 0}
    rows = np.flatnonzero(keep)
    save_array(ctx.run, rows, SELECT, f"{unit}.npy")
    ctx.run.write_json({"kept": len(rows)}, SELECT, f"{unit}.json")
    return {"samples": len(rows)}


def train_sweep_arm(ctx: Context, unit: str) -> dict:
    job: Job = ctx.config
    base, seed = parse_seed(unit)
    kd = base.endswith(KD)
    name = base.removesuffix(KD)
    teacher = job.main_teacher if kd else None
    data = _data(ctx)
    if name == FULL:
        record = {"selection": FULL, "label": "full data", "metric": FULL, "rate": 0.0, "kd": kd}
        reuse = _same_as_teacher(job, FULL, seed, teacher)
        return _student(ctx, unit, data, data.pool, seed, teacher, reuse, record)
    selection = job.selection(name)
    record = {"selection": name, "label": selection.label, "metric": selection.metric,
              "rate": selection.rate, "kd": kd}  # fmt: skip
    decided = ctx.run.read_json(SELECT, f"{selection.unit(seed)}.json")
    subset = np.zeros(0, dtype=np.int64)
    if "error" not in decided:
        subset = data.subset(load_array(ctx.run, SELECT, f"{selection.unit(seed)}.npy"))
    if len(subset) == 0:
        why = decided.get("error") or "no kept sample is labelled"
        ctx.run.write_json({**record, "seed": seed, "skipped": why}, TRAIN, f"{unit}.json")
        return {"samples": 0}
    return _student(ctx, unit, data, subset, seed, teacher, None, record)
