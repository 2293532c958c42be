"""`curate validate RUN_DIR`: the kept set against the full set and a random subset of the same
size, each without and with distillation, at matched compute; `RUN/validate/results.json`."""

from __future__ import annotations

import time

import numpy as np

from curation.errors import CurateError
from metrics.kd import kd_alpha
from metrics.selection import random_keep
from pipelines.data_pruning.finished import open_run
from pipelines.validation.compare import Comparison, spread
from pipelines.validation.config import ValidationConfig

ALPHA_RULE = (
    "alpha = 1 - kept_fraction / 2 (Ben-Baruch et al.: the best KD weight grows as "
    "the kept fraction shrinks)"
)


def _random_subset(train: np.ndarray, size: int, seed: int) -> np.ndarray:
    return train[random_keep(len(train), size, seed)]


def validate(run_dir: str, config: ValidationConfig, storage_options: dict | None = None) -> dict:
    """Train every arm for every seed, write `RUN/validate/results.json`, return it."""
    start = time.time()
    run = open_run(run_dir, storage_options=storage_options)
    run.require_embeddings("curate validate")
    compare = Comparison(run, run.samples(), config)
    kept = compare.data.subset(run.kept())
    if len(kept) == 0:
        raise CurateError("no kept sample is in the training split: nothing to validate")
    fraction = compare.kept_fraction(kept)
    scores: dict[str, list[float]] = {
        k: [] for k in ("full", "kept", "kept+kd", "random", "random+kd")
    }
    for seed in config.seed_list:
        drawn = _random_subset(compare.train, len(kept), seed)
        scores["full"].append(compare.score(compare.train, seed, kd=False))
        for name, subset in (("kept", kept), ("random", drawn)):
            scores[name].append(compare.score(subset, seed, kd=False))
            scores[f"{name}+kd"].append(compare.score(subset, seed, kd=True))
    sizes = {"full": len(compare.train), "kept": len(kept), "random": len(kept)}
    results = {
        "run_dir": run.run.url,
        "metric": run.config.metric,
        "rate": run.config.rate,
        "on": config.on,
        "model": compare.spec["kind"],
        "train_size": len(compare.train),
        "test_size": len(compare.test),
        "classes": compare.data.classes,
        "kept_fraction": fraction,
        "steps": compare.steps,
        "batch_size": config.batch_size,
        "matched_compute": f"every model: {compare.steps} steps x {config.batch_size} samples",
        "temperature": config.temperature,
        "alpha": config.alpha_for(fraction),
        "alpha_rule": "given (--alpha)" if config.alpha is not None else ALPHA_RULE,
        "alpha_by_rule": kd_alpha(fraction),
        "seeds": config.seed_list,
        "teacher": {"source": compare.teacher_source, "accuracy": compare.teacher_accuracy()},
        "config": config.model_dump(),
        "arms": [
            {
                "arm": name,
                "subset": name.split("+")[0],
                "kd": name.endswith("+kd"),
                "train_size": sizes[name.split("+")[0]],
                "accuracy": spread(values),
            }
            for name, values in scores.items()
        ],
    }
    if not config.teacher:
        compare.save_teacher("validate", "teacher.pt")
    results["seconds"] = round(time.time() - start, 2)
    run.run.write_json(results, "validate", "results.json")
    return results
