"""Decide which samples to keep from their scores, for one rate and criterion.

Pure given the gathered `Samples` and the config: the `select` stage writes its result, and
`curate sweep` calls it for every rate and metric over the same samples. Each rule is in its
criterion's module (`criteria/`); definitions follow ALGORITHMS.md.
"""

from __future__ import annotations

import numpy as np

from curation.storage import Folder
from metrics.selection import kept_count
from pipelines.data_pruning.cluster_table import cluster_table
from pipelines.data_pruning.criteria import CRITERIA, active_filter, loaders, reason_table
from pipelines.data_pruning.decision import HELDOUT, Decision
from pipelines.data_pruning.samples import Samples, load_samples


def decide(samples: Samples, config) -> Decision:
    d = Decision.empty(len(samples), reason_table())
    d.mark(np.flatnonzero(samples.heldout), HELDOUT)
    rows = samples.candidates
    target = kept_count(len(rows), config.rate)
    if (only := active_filter(config)) is not None:
        rows = only.rule(samples, config, d, rows)
    if target > len(rows):
        d.notes["short"] = f"only {len(rows)} samples passed the filter; {target} were asked"
    CRITERIA[config.metric].rule(samples, config, d, rows, min(target, len(rows)))
    if not d.clusters:
        d.clusters = cluster_table(samples.clusters, samples.candidates, d.keep, config.neighbors)
    return d


def keep_mask(run: Folder, units: list[str], config) -> np.ndarray:
    """Every row's kept flag under `config` (its criterion, rate and options) from a run's
    scores: what `curate sweep` trains on for each (metric, rate)."""
    return decide(load_samples(run, units, loaders(config), config.holdout), config).keep
