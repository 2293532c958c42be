"""Labelled images from shards: decoded and resized in shard order; every other sample is
skipped and counted by reason, never failing the read."""

from __future__ import annotations

import json
import tarfile

import numpy as np

from pipelines.images import read_labelled
from tests.builders import add_member, image_bytes


def test_read_labelled_keeps_order_and_counts_what_it_skips(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "00000.tar"
    with tarfile.open(path, "w") as tar:
        add_member(tar, "a.jpg", image_bytes(rng, 1, size=20))
        add_member(tar, "a.cls", b"1")
        add_member(tar, "b.png", image_bytes(rng, 2, "PNG", size=40))
        add_member(tar, "b.json", json.dumps({"label": 2}).encode())
        add_member(tar, "c.jpg", image_bytes(rng, 0))  # no label
        add_member(tar, "d.jpg", image_bytes(rng, 0))
        add_member(tar, "d.cls", b"1e23")  # not a class index
        add_member(tar, "e.cls", b"3")  # no image
        add_member(tar, "f.jpg", b"not an image")
        add_member(tar, "f.cls", b"0")
    found = read_labelled([str(path)], size=16)
    assert found.keys == ["a", "b"] and found.labels.tolist() == [1, 2]
    assert found.images.shape == (2, 3, 16, 16)
    assert dict(found.skipped) == {
        "no label": 1, "bad label": 1, "no image": 1, "undecodable image": 1,
    }  # fmt: skip
