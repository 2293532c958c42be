"""A finished `curate prune` run directory, opened for the steps that read it afterwards
(validate, sweep, report)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from curation.config import PruneConfig
from curation.errors import CurateError
from curation.storage import Folder
from pipelines.data_pruning.layout import load_array, read_table, unit_name
from pipelines.data_pruning.samples import Samples, load_samples


@dataclass(frozen=True)
class FinishedRun:
    run: Folder
    config: PruneConfig
    units: list[str]

    def samples(self, metric: str | None = None) -> Samples:
        """The gathered columns, with the scores `metric` reads (the run's own by default)."""
        config = self.config if metric is None else self.config.model_copy(
            update={"metric": metric})  # fmt: skip
        return load_samples(self.run, self.units, config)

    def embeddings(self) -> np.ndarray:
        """Every sample's embedding (zeros for failed ones), row-aligned with `samples()`."""
        return np.concatenate([load_array(self.run, "embed", f"{u}.npy") for u in self.units])

    def kept(self) -> np.ndarray:
        """What `select` kept, row-aligned with `samples()`."""
        return np.concatenate(
            [
                read_table(self.run, "select", "decisions", f"{u}.parquet", columns=["kept"])[
                    "kept"
                ].to_numpy(zero_copy_only=False)
                for u in self.units
            ]
        ).astype(bool)

    def rows(self, columns: list[str]) -> pa.Table:
        """Columns of the embed table (key, shard, position, label, caption...), all shards."""
        return pa.concat_tables(
            read_table(self.run, "embed", f"{u}.parquet", columns=columns) for u in self.units
        )


def open_run(run_dir: str, stages: tuple[str, ...] = ("embed", "assign", "select")) -> FinishedRun:
    """The run, once `stages` have finished every unit; a user error otherwise."""
    run = Folder(run_dir)
    if not run.exists("config.json"):
        raise CurateError(f"not a curate run directory (no config.json): {run_dir}")
    config = PruneConfig(**run.read_json("config.json")["config"])
    units = [unit_name(i) for i in range(len(config.shards))]
    for stage in stages:
        expected = run.read_json(stage, "units.json") if run.exists(stage, "units.json") else None
        if expected is None or set(run.listdir(stage, "done")) < set(expected):
            raise CurateError(
                f"run {run_dir} has not finished its {stage} stage: "
                "run `curate prune` to the end first"
            )
    return FinishedRun(run, config, units)
