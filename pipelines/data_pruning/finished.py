"""A finished `curate prune` run, opened for the steps that read it afterwards (validate,
sweep, report): its config and its stages' outputs, read through the schema module."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from curation import rundir
from curation.errors import CurateError
from curation.storage import Folder
from pipelines.data_pruning import schema
from pipelines.data_pruning.config import PruneConfig
from pipelines.data_pruning.criteria import CRITERIA
from pipelines.data_pruning.decide import keep_mask
from pipelines.data_pruning.samples import Samples, concat_rows, load_samples


@dataclass(frozen=True)
class FinishedRun:
    run: Folder
    config: PruneConfig
    units: list[str]

    def require_embeddings(self, step: str) -> None:
        """`step` reads the run's embeddings: a run selected without any (`--keep-list`) is a
        user error."""
        if not CRITERIA[self.config.metric].embeds:
            raise CurateError(f"run {self.run.url} was selected by --{self.config.metric} and "
                              f"holds no embeddings: {step} needs a run that embedded its "
                              "samples")  # fmt: skip

    def samples(self) -> Samples:
        """Every shard's ids, status, labels and clusters, row-aligned."""
        return load_samples(self.run, self.units, self.config.holdout)

    def embeddings(self) -> np.ndarray:
        """Every sample's embedding (zeros for failed ones), row-aligned with `samples()`."""
        return np.concatenate([schema.read_embeddings(self.run, u) for u in self.units])

    def kept(self) -> np.ndarray:
        """What `select` kept, row-aligned with `samples()`."""
        return np.concatenate([
            schema.read_decisions(self.run, u, ["kept"])["kept"].to_numpy(zero_copy_only=False)
            for u in self.units
        ]).astype(bool)  # fmt: skip

    def rows(self, columns: list[str]) -> pa.Table:
        """Columns of the embed table (key, shard, position, label, caption...), all shards."""
        return concat_rows(self.run, self.units, columns)

    def decisions(self) -> pa.Table:
        return pa.concat_tables(schema.read_decisions(self.run, u) for u in self.units)

    def kept_by(self, config: PruneConfig) -> np.ndarray:
        """What a selection under `config` would keep, row-aligned with `samples()`."""
        return keep_mask(self.run, self.units, config)

    def counts(self) -> dict:
        return schema.read_total_counts(self.run, self.units)


def open_run(path: str, stages: tuple[str, ...] = ("embed", "assign", "select"),
             storage_options: dict | None = None) -> FinishedRun:  # fmt: skip
    """The run at `path` (a run directory or its output folder), once `stages` have finished
    every unit; a user error otherwise. Its config reads the shards and the output with
    `storage_options` (config.json masks the secrets of the run's own)."""
    options = storage_options or {}
    run = rundir.resolve(path, options)
    config = PruneConfig(**{**rundir.read_config(run)["config"], "storage_options": options})
    for stage in stages:
        if not rundir.is_complete(run, stage):
            raise CurateError(
                f"run {run.url} has not finished its {stage} stage: "
                "run `curate prune` to the end first"
            )
    return FinishedRun(run, config, [schema.unit_name(i) for i in range(len(config.shards))])
