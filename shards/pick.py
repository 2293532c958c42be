"""Read chosen samples of a shard by position, stopping after the last one wanted."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from shards.paths import open_shard
from shards.tario import Sample, ShardFormatError, iter_samples


def pick_samples(url: str, positions: Iterable[int],
                 storage_options: dict | None = None) -> Iterator[Sample]:  # fmt: skip
    """The samples at `positions`, in shard order; positions beyond damage are skipped."""
    wanted = set(positions)
    if not wanted:
        return
    last = max(wanted)
    with open_shard(url, storage_options) as stream:
        try:
            for sample in iter_samples(stream):
                if sample.position in wanted and sample.error is None:
                    yield sample
                if sample.position >= last:
                    return
        except ShardFormatError:
            return
