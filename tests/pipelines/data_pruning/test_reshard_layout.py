"""Reshard trusts the layout embed recorded (issue 13): a local plain tar unchanged since embed
is not indexed again, its output is what indexing it gives, and a shard replaced behind the
fingerprint's back is refused."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest

from curation.errors import CurateError
from curation.stage import Context
from curation.storage import Folder
from pipelines.data_pruning import schema
from pipelines.data_pruning.reshard import reshard_shard
from shards import copier
from tests.runs import config, run_prune


def test_embed_records_each_layout_and_reshard_does_not_index_again(
    shards, tmp_path, tiny_clip, monkeypatch
):
    real, indexed = copier.index_shard, []
    monkeypatch.setattr(copier, "index_shard", lambda mm: indexed.append(1) or real(mm))
    out = tmp_path / "out"
    run_prune(shards, out, tiny_clip, rate=0.3)
    assert len(indexed) == 3  # once per shard, at embed
    run = Folder(str(out / "_run"))
    for i, shard in enumerate(shards):
        unit = schema.unit_name(i)
        layout = schema.read_layout(run, unit)
        assert layout is not None and layout.verbatim.all()  # tarfile's members: verbatim
        again = io.BytesIO()
        stats = copier.copy_kept(str(shard), schema.read_keep(run, unit), again)
        assert stats.method == "index"
        assert (out / shard.name).read_bytes() == again.getvalue()
    assert len(indexed) == 6


def test_a_shard_replaced_after_embed_behind_its_fingerprint_is_refused(
    shards, tmp_path, tiny_clip
):
    out = tmp_path / "out"
    run_prune(shards, out, tiny_clip, rate=0.3)
    run = Folder(str(out / "_run"))
    victim, layout = shards[1], schema.read_layout(run, "00001")
    first_kept = int(schema.read_keep(run, "00001")[0])
    at = int(layout.header[np.flatnonzero(layout.sample == first_kept)[0]])
    stat, data = victim.stat(), bytearray(victim.read_bytes())
    data[at] = ord("8") if data[at] == ord("9") else ord("9")  # another name, same size
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the same fingerprint
    before = (out / victim.name).read_bytes()
    ctx = Context(run, config(shards, out, tiny_clip, rate=0.3))
    with pytest.raises(CurateError, match=rf"shard {victim} changed since it was embedded"):
        reshard_shard(ctx, "00001")
    assert (out / victim.name).read_bytes() == before  # the output written before stays
