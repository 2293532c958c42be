"""What is checked before a prune run creates anything: the model loads on the device, and the
shards hold what the criterion and the filter read (labels, captions), judged on the first
samples of the first shard so a mistake costs seconds, not a full embed."""

from __future__ import annotations

import contextlib
import itertools
import sys

from curation.errors import CurateError
from pipelines.data_pruning.criteria import CRITERIA
from pipelines.data_pruning.workers import embedder_of
from pipelines.embedders import TIMM_PREFIX
from shards.labels import LabelError, sample_label
from shards.paths import open_shard
from shards.tario import ShardFormatError, iter_samples

PEEK = 32  # samples of the first shard looked at


def _first_samples(config) -> list:
    found: list = []
    with (
        open_shard(config.shards[0], config.storage_options) as stream,
        contextlib.suppress(ShardFormatError),  # damage is recorded when the shard is embedded
    ):
        found.extend(itertools.islice(iter_samples(stream), PEEK))
    return found


def _has_label(sample, field: str) -> bool:
    try:
        return sample_label(sample, field) is not None
    except LabelError:
        return False


def check_inputs(config) -> None:
    """Labels for a criterion that needs them, captions for a filter that reads them."""
    wants_labels = CRITERIA[config.metric].needs_labels(config)
    wants_captions = config.needs_captions
    if not (wants_labels or wants_captions):
        return
    samples = _first_samples(config)
    where = f"the first {len(samples)} samples of {config.shards[0]}"
    if wants_labels and not any(_has_label(s, config.label_field) for s in samples):
        raise CurateError(
            f"--metric {config.metric} needs labels (a .cls member or a json "
            f"{config.label_field!r} field, see --label-field), and {where} have none"
        )
    if wants_captions and not any(s.get("txt") is not None for s in samples):
        raise CurateError(
            f"--filter {config.filter} needs captions (.txt members), and {where} have none"
        )


def note_kmeans_device(config) -> None:
    """On a GPU without faiss-gpu, say once that k-means runs on the CPU."""
    if config.device == "cpu":
        return
    from pipelines.data_pruning.cluster import gpu_fallback_note  # imports FAISS: only here

    note = gpu_fallback_note(config.device)
    if note is not None:
        print(note, file=sys.stderr)


def preflight(config) -> None:
    """Fail now, with one line, rather than after writing anything."""
    if config.needs_captions and config.model.startswith(TIMM_PREFIX):
        raise CurateError(f"--filter {config.filter} needs an open_clip model (a text tower); "
                          f"{config.model} has none")  # fmt: skip
    embedder_of(config)
    note_kmeans_device(config)
    check_inputs(config)
