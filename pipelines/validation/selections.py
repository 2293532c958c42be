"""The selections a sweep compares: every metric x rate x combination of the criterion options
given, decided from the run's embeddings, clusters and scores.

A selection is named by what decides it: `metric@rate`, then `option=value` for each option
that differs from the run's and changes the selection (the `select` stage's hash says which
do), e.g. `prototypicality@0.5@keep=easy`; a random selection takes a new draw per training
seed (`random@0.5@seed1`). The same selection always has the same name, so a sweep that adds
a rate, a metric or a value adds units and keeps the others.
"""

from __future__ import annotations

from itertools import product
from typing import Any

from pydantic import BaseModel, ConfigDict

from curation import rundir
from curation.driver import stage_digests
from curation.errors import CurateError
from curation.storage import Folder
from pipelines.data_pruning.config import PruneConfig
from pipelines.data_pruning.pipeline import scoring_stages, stages
from pipelines.validation.config import SweepOptions, SweepPlan

RANDOM = "random"  # the metric whose selection is drawn anew for every training seed
BASE_STAGES = ("embed", "cluster", "assign")  # what a sweep reads and never recomputes


class Selection(BaseModel):
    """`name` (the unit name, without a seed), its metric, rate and options (those that
    differ from the run's), and `label`, how tables show it."""

    model_config = ConfigDict(frozen=True)

    name: str
    metric: str
    rate: float
    overrides: dict[str, Any]
    label: str

    @property
    def per_seed(self) -> bool:
        return self.metric == RANDOM

    def config(self, run: PruneConfig, seed: int | None = None) -> PruneConfig:
        """The prune config that decides it (a random draw with `seed`)."""
        update = {"metric": self.metric, "rate": self.rate, **self.overrides}
        if self.per_seed and seed is not None:
            update["seed"] = seed
        return run.model_copy(update=update)

    def unit(self, seed: int) -> str:
        """Its unit in the sweep's select stage."""
        return f"{self.name}@seed{seed}" if self.per_seed else self.name


def _select_digest(config: PruneConfig) -> str:
    return stage_digests(stages(config), config)["select"]


def _text(value: Any) -> str:
    if value is None:
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _differs(base: PruneConfig, digest: str, option: str, values: list) -> bool:
    """Whether setting `option` to any of `values` changes what `base` selects."""
    return any(_select_digest(base.model_copy(update={option: v})) != digest for v in values)


def plan_selections(run: PruneConfig, plan: SweepPlan, options: SweepOptions) -> list[Selection]:
    """Every (metric, distinct combination of the options given, rate), in plan order. An
    option is named (and shown) only where it changes the selection: `--keep` for
    prototypicality, `--el2n-source` for ccs only with `--ccs-score el2n`."""
    given = {k: v for k, v in options.model_dump().items() if v is not None}
    found = []
    for metric in plan.metrics:
        named: set[str] = set()
        for values in product(*given.values()):
            chosen = dict(zip(given, values, strict=True))
            base = run.model_copy(update={"metric": metric, **chosen})
            digest = _select_digest(base)
            overrides = {k: v for k, v in chosen.items()
                         if _differs(base, digest, k, [getattr(run, k)])}  # fmt: skip
            shown = {k: v for k, v in chosen.items() if _differs(base, digest, k, given[k])}
            suffix = "".join(f"@{k}={_text(v)}" for k, v in overrides.items())
            if suffix in named:
                continue
            named.add(suffix)
            label = " ".join([metric, *(f"{k}={_text(v)}" for k, v in chosen.items()
                                        if k in shown or k in overrides)])  # fmt: skip
            for rate in plan.rates:
                found.append(Selection(name=f"{metric}@{rate:g}{suffix}", metric=metric,
                                       rate=rate, overrides=overrides, label=label))  # fmt: skip
    return found


def random_counterpart(selection: Selection, selections: list[Selection]) -> Selection | None:
    """The random selection `selection` is compared with: at its rate, with the most of its
    option values (those that change a random draw: a class-balanced selection against the
    class-balanced random one); itself for a random selection."""
    found = [s for s in selections if s.metric == RANDOM and s.rate == selection.rate
             and s.overrides.items() <= selection.overrides.items()]  # fmt: skip
    return max(found, key=lambda s: len(s.overrides), default=None)


def scoring_configs(run: Folder, config: PruneConfig,
                    selections: list[Selection]) -> list[PruneConfig]:  # fmt: skip
    """One config per distinct set of scoring stages the selections read, after checking that
    each scoring stage is asked for with one set of options (its scores are stored once in the
    run directory) and that none would recompute scores the run's own selection used."""
    owned = set(rundir.stage_names(run))
    wanted: dict[str, tuple[str, str]] = {}  # stage -> (hash, which selection wants it)
    distinct: dict[tuple, PruneConfig] = {}
    for selection in selections:
        cfg = selection.config(config)
        digests = stage_digests(scoring_stages(cfg), cfg)
        extra = {k: v for k, v in digests.items() if k not in BASE_STAGES}
        for stage, digest in extra.items():
            previous = wanted.setdefault(stage, (digest, selection.name))
            if previous[0] != digest:
                raise CurateError(
                    f"{selection.name} and {previous[1]} need the {stage} scores with other "
                    "options; a run directory stores them once: sweep one value of those "
                    "options at a time"
                )
            if stage in owned and rundir.recorded_hash(run, stage) != digest:
                raise CurateError(
                    f"{selection.name} needs the {stage} scores with other options than the "
                    f"run's own ({run.url_of(stage)}), which its selection used: sweep with the "
                    "run's values, or prune again into another run directory"
                )
        distinct.setdefault(tuple(sorted(extra.items())), cfg)
    return list(distinct.values())
