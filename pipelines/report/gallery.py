"""Thumbnails of kept and pruned samples for a seeded sample of clusters, read from the
original shards by (shard, position) and encoded as JPEG data URIs."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image

from pipelines.report.content import decided
from shards.extensions import IMAGE_EXTENSIONS
from shards.pick import pick_samples

THUMBNAIL = 96
DUPLICATE = "duplicate"  # SemDeDup's and DBP's reason for a pruned duplicate


@dataclass
class Thumbnail:
    uri: str
    key: str
    caption: str
    kept: bool
    reason: str
    score: float
    original: Thumbnail | None = None  # a pruned duplicate's most similar earlier member


def _choose(members: pd.DataFrame, count: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(members) <= count:
        return members
    return members.iloc[np.sort(rng.choice(len(members), count, replace=False))]


def choose_samples(
    decisions: pd.DataFrame, clusters: int, per_side: int, seed: int
) -> dict[int, pd.DataFrame]:
    """Up to `clusters` clusters (those with both kept and pruned members first), each with up
    to `per_side` kept and `per_side` pruned members, drawn with `seed`."""
    rng = np.random.default_rng(seed)
    valid = decided(decisions)
    mixed = valid.groupby("cluster")["kept"].agg(lambda k: 0 < k.sum() < len(k))
    ids = np.array(sorted(valid["cluster"].unique()))
    both, one_sided = ids[mixed.loc[ids].to_numpy()], ids[~mixed.loc[ids].to_numpy()]
    picked = list(rng.permutation(both)[:clusters])
    picked += list(rng.permutation(one_sided)[: clusters - len(picked)])
    chosen = {}
    for cluster in sorted(int(c) for c in picked):
        members = valid[valid["cluster"] == cluster]
        chosen[cluster] = pd.concat(
            [
                _choose(members[members["kept"]], per_side, rng),
                _choose(members[~members["kept"]], per_side, rng),
            ]
        )
    return chosen


def thumbnail_uri(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGB")
        image.thumbnail((THUMBNAIL, THUMBNAIL))
        if max(image.size) < THUMBNAIL:  # enlarge tiny images (CIFAR) so they can be seen
            scale = THUMBNAIL / max(image.size)
            image = image.resize(
                (round(image.width * scale), round(image.height * scale)), Image.NEAREST
            )
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _caption(row, caption: str | None, names: dict[int, str]) -> str:
    parts = []
    if row.label >= 0:
        parts.append(names.get(int(row.label), f"label {row.label}"))
    if caption:
        parts.append(caption if len(caption) <= 80 else caption[:77] + "...")
    return " · ".join(parts) or row.key


def _text(sample) -> str | None:
    txt = sample.get("txt")
    return None if txt is None else bytes(txt.data[:400]).decode("utf-8", "replace")


def _originals(chosen: pd.DataFrame, decisions: pd.DataFrame) -> pd.DataFrame:
    """The rows the chosen pruned duplicates duplicate, by their id."""
    wanted = chosen[(chosen["reason"] == DUPLICATE) & (chosen["nearest"] >= 0)]["nearest"]
    return decisions[decisions["id"].isin(wanted)].set_index("id", drop=False)


def thumbnails(chosen: dict[int, pd.DataFrame], decisions: pd.DataFrame, shards: list[str],
               names: dict[int, str],
               storage_options: dict | None = None) -> dict[int, list[Thumbnail]]:  # fmt: skip
    """Read every chosen sample, and the sample each pruned duplicate duplicates, in one pass
    per shard; labels shown by their class names."""
    everything = pd.concat(chosen.values()) if chosen else decisions.iloc[:0]
    originals = _originals(everything, decisions)
    uris: dict[tuple[int, int], str] = {}
    captions: dict[tuple[int, int], str | None] = {}
    wanted = pd.concat([everything, originals])
    for shard, group in wanted.groupby("shard_index") if len(wanted) else []:
        positions = group["position"].astype(int)
        for sample in pick_samples(shards[int(shard)], positions, storage_options):
            image = sample.get(*IMAGE_EXTENSIONS)
            if image is not None:
                uris[(int(shard), sample.position)] = thumbnail_uri(image.data)
                captions[(int(shard), sample.position)] = _text(sample)

    def thumbnail(r) -> Thumbnail | None:
        at = (int(r.shard_index), int(r.position))
        if at not in uris:
            return None
        original = None
        if r.reason == DUPLICATE and r.nearest in originals.index:
            original = thumbnail(originals.loc[r.nearest])
        return Thumbnail(uris[at], r.key, _caption(r, captions[at], names), bool(r.kept),
                         r.reason, float(r.score), original)  # fmt: skip

    found = {cluster: [thumbnail(r) for r in members.itertuples()]
             for cluster, members in chosen.items()}  # fmt: skip
    return {cluster: [t for t in items if t is not None] for cluster, items in found.items()}
