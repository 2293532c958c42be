"""The Python API, at the top of the house beside the CLI: the same commands with the same
options and defaults, for notebooks and scripts.

    from curation import prune
    summary = prune("data/{00000..00009}.tar", "pruned/", rate=0.5, model="ViT-B-32")

Options are the `curate prune` options with underscores (`metric="dbp"`, `clusters=500`,
`storage_options={...}`); shard patterns are expanded as the CLI expands them (globs, brace
ranges, URLs) and the run directory defaults to OUTPUT/_run. Errors are `CurateError`s with
the CLI's one-line messages.
"""

from __future__ import annotations

from typing import Any


def prune(shards: str | list[str], output: str, rate: float | None = None, *,
          overwrite: bool = False, **options: Any) -> dict:  # fmt: skip
    """Run (or resume) `curate prune`; returns its summary (summary.json). `rate` is required
    unless `keep_list` gives the selection."""
    from pipelines.data_pruning.config import prune_config
    from pipelines.data_pruning.runner import prune as run

    patterns = [shards] if isinstance(shards, str) else list(shards)
    return run(prune_config(patterns, output, rate=rate, **options), overwrite=overwrite)


def status(run_dir: str, storage_options: dict | None = None) -> list[dict]:
    """Each stage's progress (`curate status`), the run directory or its output folder; a
    remote one with the storage options its run was given (or the environment's)."""
    from dataclasses import asdict

    from curation import rundir
    from curation.status import read_status

    run = rundir.resolve(run_dir, storage_options)
    return [asdict(s) | {"state": s.state} for s in read_status(run)]
