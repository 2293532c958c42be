"""Decisions a person can audit: the console says what the score means, what was applied, and
warns when the result is not what the options suggest (issue 11, item 6)."""

from __future__ import annotations

from tests.builders import write_shards
from tests.runs import cli_prune, curate, summary


def test_semdedup_forced_beyond_a_typical_eps_is_a_warning(tmp_path, tiny_clip):
    shards = write_shards(tmp_path / "in", shards=2, per_shard=20, layout="img2dataset")
    printed = curate("prune", *map(str, shards), "-o", str(tmp_path / "out"), "--rate", "0.975",
                     "--metric", "semdedup", "--model", tiny_clip, "--pretrained", "random",
                     "--clusters", "2")  # fmt: skip
    assert "semdedup: highest cosine similarity" in printed
    assert "effective eps" in printed
    assert "warning: the rate made SemDeDup go to eps" in printed
    assert summary(tmp_path / "out")["warnings"]


def test_a_filter_that_leaves_too_few_says_why_the_rate_differs(tmp_path, tiny_clip):
    shards = write_shards(tmp_path / "in", shards=2, per_shard=20, layout="img2dataset")
    result = cli_prune(shards, tmp_path / "out", tiny_clip, "--filter", "clip-score-top:0.5",
                       "--rate", "0.3")  # fmt: skip
    assert result["rate_achieved"] == 0.5
    (warning,) = result["warnings"]
    assert "only 20 samples passed the filter; 28 were asked" in warning and "0.5" in warning
    assert any(line.startswith("filter clip-score-top:0.5: 20 of 40") for line in
               result["explanation"])  # fmt: skip
