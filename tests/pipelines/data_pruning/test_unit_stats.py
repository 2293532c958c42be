"""The data-pruning stages record where a unit's time goes: read, decode, model, write
(clip-retrieval's split), and its peak memory (issue 13, item 4)."""

from __future__ import annotations

import json

from tests.runs import run_prune


def _stats(run, stage: str, unit: str) -> dict:
    return json.loads((run / stage / "stats" / f"{unit}.json").read_text())


def test_embed_cluster_and_assign_units_record_their_phases(tmp_path, shards, tiny_clip):
    out = tmp_path / "out"
    run_prune(shards, out, tiny_clip, metric="semdedup")
    run = out / "_run"
    expected = {
        "embed": ("00000", {"read", "decode", "model", "write"}),
        "cluster": ("all", {"read", "model", "write"}),
        "assign": ("00001", {"read", "model", "write"}),
    }
    for stage, (unit, phases) in expected.items():
        stats = _stats(run, stage, unit)
        assert {k.removesuffix("_seconds") for k in stats if k.endswith("_seconds")} == phases
        assert all(stats[f"{p}_seconds"] >= 0 for p in phases)
        assert stats["peak_rss_mib"] > 50 and stats["peak_rss_scope"] == "unit"
    for stage in ("group", "dedup", "select", "reshard", "summary"):
        assert _stats(run, stage, "all" if stage == "summary" else "00000")[
            "peak_rss_mib"] > 0  # fmt: skip
