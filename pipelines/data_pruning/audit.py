"""What a person needs to audit a selection, in words: what the score means, the threshold or
quota that was applied, and what looks wrong. Written into summary.json, so the console and
the report say the same."""

from __future__ import annotations

import numpy as np

from pipelines.data_pruning.criteria import CRITERIA, active_filter

TYPICAL_EPS = 0.1  # SemDeDup beyond this prunes near, not exact, duplicates (Abbas et al.)


def _applied(notes: dict) -> list[str]:
    lines = []
    if "filter" in notes:
        f = notes["filter"]
        lines.append(f"filter {f['filter']}: {f['passed']:,} of {f['candidates']:,} samples "
                     f"passed (CLIP score >= {f['threshold']:.4f})")  # fmt: skip
    if "direction" in notes:
        lines.append(notes["direction"])
    if "semdedup" in notes and notes["semdedup"].get("similarity_threshold") is not None:
        s = notes["semdedup"]
        lines.append(f"pruned {s['duplicates_pruned']:,} samples more similar than "
                     f"{s['similarity_threshold']:.4f} to an earlier member of their cluster "
                     f"(effective eps {s['effective_eps']:.4f})")  # fmt: skip
    if "dbp" in notes:
        d = notes["dbp"]
        lines.append(f"SemDeDup at eps {d['eps']} pruned {d['duplicates']:,} duplicates; "
                     f"then per-cluster quotas, softmax(complexity / {d['tau']}) "
                     "(the cluster table has each quota)")  # fmt: skip
    if "ccs" in notes:
        c = notes["ccs"]
        filled = int(np.reshape(c["budgets"], (-1, c["strata"])).any(axis=0).sum())  # any class
        lines.append(f"cut the hardest {c['cut']:,} ({c['cutoff']:.0%}) first, then sampled "
                     f"{filled} of {c['strata']} score strata, smallest first")  # fmt: skip
    if "models" in notes.get("el2n", {}):  # the criterion's own notes (not CCS's probes alone)
        e = notes["el2n"]
        lines.append(f"EL2N from {e['models']} {e['probe']} probes; offset {e['offset']:.0%}")
    if "keep_list" in notes:
        k = notes["keep_list"]
        lines.append(f"kept the {k['kept']:,} samples whose uid is among the {k['uids']:,} of "
                     f"{k['file']}; {k['no_uid']:,} had no uid")  # fmt: skip
    return lines


def explanation(config, notes: dict) -> list[str]:
    """The criterion in one line, then what it applied."""
    lines = [f"{config.metric}: {CRITERIA[config.metric].meaning}"]
    if (selected := active_filter(config)) is not None:
        lines.append(f"filter: {selected.meaning}")
    return lines + _applied(notes)


def warnings(config, notes: dict, rate_achieved: float) -> list[str]:
    found = []
    eps = notes.get("semdedup", {}).get("effective_eps")
    if eps is not None and eps > TYPICAL_EPS:
        found.append(
            f"the rate made SemDeDup go to eps {eps:.3f} (beyond a typical {TYPICAL_EPS}): "
            "samples pruned last are similar, not duplicates; --eps caps it"
        )
    if "warning" in notes.get("el2n", {}):
        found.append(notes["el2n"]["warning"])
    if "short" in notes:
        found.append(f"{notes['short']}: the rate achieved is {rate_achieved}, not "
                     f"{config.rate}")  # fmt: skip
    return found
