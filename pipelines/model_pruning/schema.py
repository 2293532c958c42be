"""The model-pruning run directory: what each level writes, where, and how it is read back.
open_lth's readable conventions, one folder per level:

```
RUN/level_<L>/mask.pt                masks by parameter name (`conv1.weight`): bool, True = kept
RUN/level_<L>/sparsity_report.json   {"total", "unpruned", "sparsity", "layers": {name: ...}}
RUN/level_<L>/model.pt               the trained network's state_dict, masks baked in
RUN/level_<L>/metrics.json           accuracy, sparsity, parameter counts, steps, KD
RUN/level_0/rewind.pt                imp: the dense state_dict at step --rewind-steps
RUN/level_<L>/reinit/, random/       the controls (--controls): the same files for each
RUN/prune/<member>/level_<L>/        a sweep member's levels (its level 0 is RUN/level_0)
RUN/prune/<member>/pruned.pt, pruned.pt2, metrics.json
                                     curate model structured: the smaller network (channels.py)
RUN/scratch/<member>/                the same, trained from scratch (--scratch)
RUN/latency.json                     curate model bench: times, so not the same between runs
OUTPUT/model.pt, summary.json, summary.md        curate model prune
OUTPUT/summary.json, results.csv, results.md     curate model sweep
OUTPUT/<member>.pt, .pt2, summary.json, results.csv, results.md    curate model structured
```

Level 0 is the dense network (all-True masks). Every file is written by one unit, atomically,
and is the same bytes whenever the unit reruns (seeded, fixed threads): no time is recorded in
them (the engine's `stats/` hold the seconds).
"""

from __future__ import annotations

import io

import torch

from curation.storage import Folder

MAIN = "main"  # the unit of a level that carries the schedule on
CONTROLS = ("reinit", "random")
MASK, REPORT, MODEL, METRICS, REWIND = (
    "mask.pt",
    "sparsity_report.json",
    "model.pt",
    "metrics.json",
    "rewind.pt",
)
SUMMARY, SUMMARY_TABLE, RESULTS_CSV, RESULTS_TABLE = (
    "summary.json",
    "summary.md",
    "results.csv",
    "results.md",
)
SWEEP_STAGE = "prune"
PARAMETER = "weight"  # the parameter of a prunable layer


def level_name(level: int) -> str:
    return f"level_{level}"


def level_parts(level: int, member: str | None = None, unit: str = MAIN) -> tuple[str, ...]:
    """Where a level's files live: `level_<L>` (a control in a subfolder of it), a sweep
    member's under `prune/<member>/`; level 0 is shared."""
    if level == 0:
        return (level_name(0),)
    parts = (SWEEP_STAGE, member, level_name(level)) if member else (level_name(level),)
    return parts if unit == MAIN else (*parts, unit)


def save_state(folder: Folder, state: dict[str, torch.Tensor], *parts: str) -> None:
    folder.write_buffer(lambda buffer: torch.save(state, buffer), *parts)


def load_state(folder: Folder, *parts: str) -> dict[str, torch.Tensor]:
    """A tensor dict written by this run (read with weights_only=True all the same)."""
    return torch.load(io.BytesIO(folder.read_bytes(*parts)), map_location="cpu",
                      weights_only=True)  # fmt: skip


def save_masks(folder: Folder, masks: dict[str, torch.Tensor], *parts: str) -> None:
    """Layer-keyed masks saved by parameter name, so they index a state_dict directly."""
    save_state(folder, {f"{name}.{PARAMETER}": mask for name, mask in masks.items()}, *parts)


def load_masks(folder: Folder, *parts: str) -> dict[str, torch.Tensor]:
    saved = load_state(folder, *parts)
    return {key.removesuffix(f".{PARAMETER}"): mask for key, mask in saved.items()}


def write_level(folder: Folder, parts: tuple[str, ...], state: dict, masks: dict,
                report: dict, metrics: dict) -> None:  # fmt: skip
    """A level's files (a killed earlier attempt's temporaries dropped); the metrics last."""
    folder.remove_temporaries(*parts)
    save_state(folder, state, *parts, MODEL)
    save_masks(folder, masks, *parts, MASK)
    folder.write_json(report, *parts, REPORT)
    folder.write_json(metrics, *parts, METRICS)


def read_metrics(folder: Folder, parts: tuple[str, ...]) -> dict:
    return folder.read_json(*parts, METRICS)


def read_report(folder: Folder, parts: tuple[str, ...]) -> dict:
    return folder.read_json(*parts, REPORT)
