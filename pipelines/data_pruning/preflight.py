"""What is checked before a prune run creates anything: the model loads on the device, and the
shards hold what the criterion and the filter read (labels, captions), judged on the first
samples of the first shard so a mistake costs seconds, not a full embed."""

from __future__ import annotations

import contextlib
import itertools
import sys

from curation import parquet
from curation.errors import CurateError
from curation.storage import filesystem
from pipelines.data_pruning import precomputed
from pipelines.data_pruning.criteria import CRITERIA
from pipelines.data_pruning.keeplist import read_keep_list
from pipelines.data_pruning.rows import sample_row
from pipelines.data_pruning.workers import embedder_of
from pipelines.model_names import TIMM_PREFIX
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


def check_precomputed(config) -> None:
    """The embeddings folder has a known layout, and the first samples find their embedding."""
    found = precomputed.layout(config.embeddings, config.storage_options)
    samples = _first_samples(config)
    rows = [sample_row(s, config) for s in samples]
    if found.kind == precomputed.DATACOMP:
        vectors, _ = precomputed.datacomp_vectors(config, config.shards[0], [r.uid for r in rows])
        shown = [r.uid for r in rows[:3]]
    else:
        first = found.files[0]
        fs, path = filesystem(found.metadata(first), config.storage_options)
        rows_of_first = parquet.read_metadata(fs, path).num_rows
        precomputed.check_vectors(found, first, rows_of_first, config.storage_options)
        values = precomputed.match_values(found, samples, config.storage_options)
        shown = values[:3]
        vectors = precomputed.first_file_matches(found, values, config.storage_options)
    if rows and not any(v is not None for v in vectors):
        what = "uid" if found.kind == precomputed.DATACOMP else "key"
        raise CurateError(
            f"no sample among the first {len(rows)} of {config.shards[0]} has an embedding in "
            f"{config.embeddings} by {what} (samples: {', '.join(map(str, shown))}; "
            f"{precomputed.describe_keys(found, config)})"
        )


def note_kmeans_device(config) -> None:
    """On a GPU without faiss-gpu, say once that k-means runs on the CPU."""
    if config.device == "cpu":
        return
    from pipelines.data_pruning.cluster import gpu_fallback_note  # imports FAISS: only here

    note = gpu_fallback_note(config.device)
    if note is not None:
        print(note, file=sys.stderr)


def check_keep_list(config) -> None:
    """The keep-list is one, and the first samples carry the uids it is matched by."""
    read_keep_list(config.keep_list, config.storage_options)
    samples = _first_samples(config)
    if samples and not any(sample_row(s, config).uid for s in samples):
        raise CurateError(
            f"--keep-list matches samples by the uid of their json (32 hex digits, as "
            f"DataComp's), and the first {len(samples)} samples of {config.shards[0]} have none"
        )


def preflight(config) -> None:
    """Fail now, with one line, rather than after writing anything."""
    if config.keep_list is not None:
        check_keep_list(config)
    elif config.embeddings is not None:
        check_precomputed(config)
    else:
        if config.needs_captions and config.model.startswith(TIMM_PREFIX):
            raise CurateError(f"--filter {config.filter} needs an open_clip model (a text "
                              f"tower); {config.model} has none")  # fmt: skip
        embedder_of(config)
    note_kmeans_device(config)
    check_inputs(config)
