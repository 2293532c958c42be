"""The data-pruning run directory: what each stage writes, where, and how it is read back.

```
RUN/embed/content/<c>.*         a shard's float16 L2-normalised embeddings (.npy), its sample
                                table without ids (.parquet) and stats (.json), named by the
                                shard's URL and fingerprint, so a shard met again is not embedded
                                again (added shards, a reordered list, a resumed run)
RUN/embed/layout/<c>.npy        for a local plain tar the index took, where its members lie
                                (`shards.tarindex.Layout.records`): reshard trusts it instead
                                of indexing the shard again
RUN/embed/<unit>.parquet|.json  the sample table of input shard <unit>, with ids; which content
                                holds its embeddings
RUN/cluster/                    centroids.npy, training_ids.npy (the seeded sample), clustering.json
RUN/assign/<unit>.parquet       nearest centroid and cosine distance per row
RUN/group/<bucket>/<unit>.*     SemDeDup's shuffle by cluster bucket
RUN/dedup/<unit>/<bucket>.arrow each member's highest similarity to an earlier member of
                                its cluster, that member's id and key (per shard, per bucket)
RUN/dbp_cluster, RUN/dbp_assign DBP's re-clustering without duplicates
RUN/el2n_train/                 probes.npz (the ensemble's weights), probes.json (accuracy...)
RUN/el2n/<unit>.npy             EL2N scores
RUN/keep_list/<unit>.npz        --keep-list: which rows have a uid, and which the list holds
RUN/select_stats/               columns/<unit>.arrow (what selection reads of each shard),
                                hashes/<unit>.npy + <unit>.ranges.npy (sorted key hashes)
RUN/select_repeats/<unit>/<part>.arrow    the repeated keys of a shard found by a hash range
RUN/select_plan/plan.json       thresholds, quotas, notes and the per-cluster table
RUN/select/                     keep/<unit>.npy, decisions/<unit>.parquet, counts/<unit>.json,
                                tallies/<unit>.npz (kept per cluster, kept and pruned per label)
OUTPUT/<unit>.tar, <unit>_stats.json, decisions.parquet, summary.json, .curate-run.json
```

A unit is an input shard (`00000`, `00001`... in input order) or `all` for a barrier. A sample's
internal id is `shard index << 32 | position`: sorted ids are input order, ties in every
ranking go to the smaller id, and repeated keys never collide. A row is valid (embedded) when
its status is `ok`; every other row is failed, with its error. A valid row is held out (set
aside for validation: never clustered, scored or selected) when the 64-bit hash of its key
falls below `--holdout` of the hash range, so the split does not depend on shards or order; the
other valid rows are the candidates of selection.
"""

from __future__ import annotations

import hashlib
import io
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from curation import parquet
from curation.storage import Folder
from shards.tarindex import Layout

if TYPE_CHECKING:
    from curation.stage import Context

ALL = "all"  # the single unit of a barrier stage
POSITION_BITS = 32
POSITION_MASK = (1 << POSITION_BITS) - 1
OK, FAILED = "ok", "failed"
KEPT, PRUNED, HELDOUT = "kept", "pruned", "heldout"  # a decision's status, besides FAILED

ROW_SCHEMA = pa.schema([
    ("id", pa.int64()),
    ("key", pa.string()),
    ("shard", pa.int32()),
    ("position", pa.int32()),
    ("label", pa.int64()),
    ("caption", pa.string()),
    ("nbytes", pa.int64()),
    ("clip_score", pa.float64()),
    ("status", pa.string()),
    ("error", pa.string()),
    ("key_hash", pa.uint64()),
    ("uid", pa.string()),
])  # fmt: skip

CONTENT_SCHEMA = pa.schema([f for f in ROW_SCHEMA if f.name not in ("id", "shard")])

DECISION_SCHEMA = pa.schema([
    ("key", pa.string()),
    ("shard", pa.string()),
    ("position", pa.int32()),
    ("id", pa.int64()),
    ("kept", pa.bool_()),
    ("status", pa.string()),
    ("cluster", pa.int32()),
    ("label", pa.int64()),  # null: the sample has none
    ("score", pa.float64()),
    ("reason", pa.string()),
    ("detail", pa.string()),
])  # fmt: skip
# Decision columns with few distinct values, dictionary-encoded; a dictionary for the unique
# ones (key, position, id, score) would only overflow: written so, 10,000 decisions take 0.6 of
# the time and 0.8 of the bytes of parquet's default (every column).
DECISION_DICTIONARY = ["shard", "kept", "status", "cluster", "label", "reason", "detail"]

SUMMARY, DECISIONS = "summary.json", "decisions.parquet"


# Units and ids


def unit_name(shard_index: int) -> str:
    return f"{shard_index:05d}"


def shard_units(ctx: Context) -> list[str]:
    return [unit_name(i) for i in range(len(ctx.config.shards))]


def barrier_unit(ctx: Context) -> list[str]:
    return [ALL]


def sample_ids(shard_index: int, positions: np.ndarray) -> np.ndarray:
    return (np.int64(shard_index) << np.int64(POSITION_BITS)) | positions.astype(np.int64)


def id_shard(ids: np.ndarray) -> np.ndarray:
    return ids >> POSITION_BITS


def id_position(ids: np.ndarray) -> np.ndarray:
    return ids & POSITION_MASK


def key_hashes(keys: list[str]) -> np.ndarray:
    """A stable 64-bit hash of each key (BLAKE2b), uniform over the uint64 range."""
    return np.array([int.from_bytes(hashlib.blake2b(k.encode("utf-8", "surrogateescape"),
                                                    digest_size=8).digest(), "big")
                     for k in keys], dtype=np.uint64)  # fmt: skip


def heldout_mask(hashes: np.ndarray, fraction: float) -> np.ndarray:
    """Rows whose key hash falls in the lowest `fraction` of the hash range."""
    return hashes < np.uint64(min(int(fraction * 2.0**64), 2**64 - 1))


# Files


def save_array(folder: Folder, array: np.ndarray, *parts: str) -> None:
    folder.write_buffer(lambda buf: np.save(buf, array, allow_pickle=False), *parts)


def load_array(folder: Folder, *parts: str) -> np.ndarray:
    return np.load(io.BytesIO(folder.read_bytes(*parts)), allow_pickle=False)


def write_table(folder: Folder, table: pa.Table, *parts: str,
                dictionary: bool | list[str] = True, statistics: bool = True) -> None:  # fmt: skip
    """`dictionary`: parquet's `use_dictionary` (every column, or the columns named);
    `statistics`: each column's min and max, which a file only read back whole can skip (0.8
    of the time to write 10,000 decisions)."""
    options = {"use_dictionary": dictionary, "write_statistics": statistics}
    folder.write_buffer(lambda buf: pq.write_table(table, buf, **options), *parts)


def read_table(folder: Folder, *parts: str, columns: list[str] | None = None) -> pa.Table:
    return parquet.read_table(folder.fs, folder.path(*parts), columns)


def write_arrow(folder: Folder, table: pa.Table, *parts: str) -> None:
    """An Arrow IPC file: for the small per-shard files read many times (ten times faster
    to read than parquet, which decodes)."""

    def fill(buf) -> None:
        with ipc.new_file(buf, table.schema) as writer:
            writer.write_table(table)

    folder.write_buffer(fill, *parts)


def read_arrow(folder: Folder, *parts: str) -> pa.Table:
    return ipc.open_file(pa.py_buffer(folder.read_bytes(*parts))).read_all()


def npy_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype of an open .npy file, left at the start of its data."""
    version = np.lib.format.read_magic(f)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)  # fmt: skip
    return read(f)


def read_array_slice(folder: Folder, start: int, stop: int, *parts: str) -> np.ndarray:
    """Rows [start, stop) of a 1-d .npy file, read without the rest (a seek on any store)."""
    with folder.open_read(*parts) as f:
        dtype = npy_header(f)[2]
        f.seek(f.tell() + start * dtype.itemsize)
        return np.frombuffer(f.read((stop - start) * dtype.itemsize), dtype=dtype)


# embed


def content_id(url: str, fingerprint: str) -> str:
    """The name of a shard's embedded content: its URL and its identity (size, mtime, ETag)."""
    return hashlib.sha256(f"{url}\n{fingerprint}".encode()).hexdigest()[:24]


def has_content(run: Folder, content: str) -> bool:
    return run.exists("embed", "content", f"{content}.json")


def write_content(run: Folder, content: str, rows: pa.Table, embeddings: np.ndarray,
                  stats: dict, layout: Layout | None = None) -> None:  # fmt: skip
    """A shard's embedding results (rows without id and shard columns) and, if it was
    indexed, its layout; the stats last, as the mark that the content is complete."""
    save_array(run, embeddings, "embed", "content", f"{content}.npy")
    write_table(run, rows, "embed", "content", f"{content}.parquet")
    if layout is not None:
        save_array(run, layout.records(), "embed", "layout", f"{content}.npy")
    run.write_json(stats, "embed", "content", f"{content}.json")


def read_layout(run: Folder, unit: str) -> Layout | None:
    """The layout recorded when input shard `unit` was read, if it was (a local plain tar
    that the index took); None otherwise (remote, compressed or declined by the index, or
    content written before layouts were recorded)."""
    if not run.exists("embed", f"{unit}.json"):
        return None
    content = run.read_json("embed", f"{unit}.json")["content"]
    if not run.exists("embed", "layout", f"{content}.npy"):
        return None
    return Layout.from_records(load_array(run, "embed", "layout", f"{content}.npy"))


def link_content(run: Folder, unit: str, index: int, content: str) -> dict:
    """Make shard `index`'s sample table (ids for its place in this run) from its content;
    returns the content's stats."""
    rows = read_table(run, "embed", "content", f"{content}.parquet")
    positions = rows["position"].to_numpy().astype(np.int64)
    table = rows.add_column(0, "shard", pa.array(np.full(len(rows), index, np.int32)))
    table = table.add_column(0, "id", pa.array(sample_ids(index, positions)))
    write_table(run, table.select(ROW_SCHEMA.names).cast(ROW_SCHEMA), "embed", f"{unit}.parquet")
    run.write_json({"content": content}, "embed", f"{unit}.json")
    return run.read_json("embed", "content", f"{content}.json")


def read_rows(run: Folder, unit: str, columns: list[str] | None = None) -> pa.Table:
    return read_table(run, "embed", f"{unit}.parquet", columns=columns)


def row_count(run: Folder, unit: str) -> int:
    """Rows of a shard, from the parquet footer alone."""
    return parquet.read_metadata(run.fs, run.path("embed", f"{unit}.parquet")).num_rows


def _embeddings_file(run: Folder, unit: str) -> tuple[str, ...]:
    content = run.read_json("embed", f"{unit}.json")["content"]
    return ("embed", "content", f"{content}.npy")


def read_embeddings(run: Folder, unit: str) -> np.ndarray:
    return load_array(run, *_embeddings_file(run, unit))


def read_embedding_rows(run: Folder, unit: str, rows: np.ndarray) -> np.ndarray:
    """Some rows (ascending) of a shard's embeddings, each read with a seek: a sample of every
    shard costs its rows, not the shards."""
    with run.open_read(*_embeddings_file(run, unit)) as f:
        shape, _, dtype = npy_header(f)
        start, width = f.tell(), int(np.prod(shape[1:])) * dtype.itemsize
        out = np.empty((len(rows), *shape[1:]), dtype=dtype)
        for i, row in enumerate(rows.tolist()):
            f.seek(start + row * width)
            out[i] = np.frombuffer(f.read(width), dtype=dtype).reshape(shape[1:])
        return out


def valid_mask(status: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The validity rule: a row was embedded when its status is `ok`."""
    import pyarrow.compute as pc  # 0.1 s to import: not for `curate --help`

    return pc.equal(status, OK).to_numpy(zero_copy_only=False).astype(bool)


def valid_rows(run: Folder, unit: str) -> np.ndarray:
    """Row indices of the samples of a shard that were embedded (not failed)."""
    return np.flatnonzero(valid_mask(read_rows(run, unit, ["status"])["status"]))


def candidate_rows(run: Folder, unit: str, holdout: float) -> np.ndarray:
    """Row indices of the valid samples that are not held out: what clustering, every score
    and selection see."""
    table = read_rows(run, unit, ["status", "key_hash"])
    heldout = heldout_mask(table["key_hash"].to_numpy(), holdout)
    return np.flatnonzero(valid_mask(table["status"]) & ~heldout)


# cluster / assign (also dbp_cluster / dbp_assign)


def write_clustering(run: Folder, folder: str, centroids: np.ndarray, training_ids: np.ndarray,
                     record: dict[str, Any]) -> None:  # fmt: skip
    save_array(run, centroids, folder, "centroids.npy")
    save_array(run, training_ids, folder, "training_ids.npy")
    run.write_json(record, folder, "clustering.json")


def read_centroids(run: Folder, folder: str = "cluster") -> np.ndarray:
    return load_array(run, folder, "centroids.npy")


def read_clustering_record(run: Folder, folder: str = "cluster") -> dict | None:
    return (
        run.read_json(folder, "clustering.json") if run.exists(folder, "clustering.json") else None
    )


def write_assignment(run: Folder, folder: str, unit: str, cluster: np.ndarray,
                     distance: np.ndarray) -> None:  # fmt: skip
    write_table(run, pa.table({"cluster": cluster, "distance": distance}), folder,
                f"{unit}.parquet")  # fmt: skip


def read_assignment(run: Folder, folder: str, unit: str) -> pa.Table:
    return read_table(run, folder, f"{unit}.parquet")


# group / dedup


def bucket_name(bucket: int) -> str:
    return f"{bucket:05d}"


def write_group_part(run: Folder, bucket: str, unit: str, table: pa.Table,
                     embeddings: np.ndarray) -> None:  # fmt: skip
    write_table(run, table, "group", bucket, f"{unit}.parquet")
    save_array(run, embeddings, "group", bucket, f"{unit}.npy")


def group_parts(run: Folder, bucket: str) -> list[tuple[pa.Table, np.ndarray]]:
    names = [n.removesuffix(".parquet") for n in run.listdir("group", bucket)
             if n.endswith(".parquet")]  # fmt: skip
    return [(read_table(run, "group", bucket, f"{n}.parquet"),
             load_array(run, "group", bucket, f"{n}.npy")) for n in names]  # fmt: skip


DEDUP_SCHEMA = pa.schema([("id", pa.int64()), ("max_similarity", pa.float32()),
                          ("nearest", pa.int64()), ("nearest_key", pa.string())])  # fmt: skip


def write_dedup(run: Folder, bucket: str, unit: str, table: pa.Table) -> None:
    """One bucket's members of one shard."""
    write_arrow(run, table, "dedup", unit, f"{bucket}.arrow")


def read_shard_dedup(run: Folder, unit: str) -> pa.Table:
    """A shard's members of every bucket (id, max_similarity, nearest, nearest_key)."""
    parts = [read_arrow(run, "dedup", unit, n) for n in run.listdir("dedup", unit)
             if n.endswith(".arrow")]  # fmt: skip
    return pa.concat_tables(parts) if parts else DEDUP_SCHEMA.empty_table()


# el2n


def write_el2n(run: Folder, unit: str, scores: np.ndarray) -> None:
    save_array(run, scores, "el2n", f"{unit}.npy")


def read_el2n(run: Folder, unit: str) -> np.ndarray:
    return load_array(run, "el2n", f"{unit}.npy")


def write_el2n_probes(run: Folder, weights: dict[str, np.ndarray], record: dict) -> None:
    run.write_buffer(lambda buf: np.savez(buf, **weights), "el2n_train", "probes.npz")
    run.write_json(record, "el2n_train", "probes.json")


def read_el2n_probes(run: Folder) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(run.read_bytes("el2n_train", "probes.npz"))) as weights:
        return dict(weights)


def read_el2n_record(run: Folder) -> dict | None:
    """What the probes' training recorded (accuracy, score spread), when EL2N ran."""
    return (run.read_json("el2n_train", "probes.json")
            if run.exists("el2n_train", "probes.json") else None)  # fmt: skip


# keep_list


def write_keep_list_match(run: Folder, unit: str, has_uid: np.ndarray, listed: np.ndarray) -> None:
    run.write_buffer(lambda buf: np.savez(buf, has_uid=has_uid, listed=listed), "keep_list",
                     f"{unit}.npz")  # fmt: skip


def read_keep_list_match(run: Folder, unit: str) -> dict[str, np.ndarray]:
    """A shard's `has_uid` and `listed` columns, row-aligned with its embed table."""
    with np.load(io.BytesIO(run.read_bytes("keep_list", f"{unit}.npz"))) as match:
        return {"has_uid": match["has_uid"], "listed": match["listed"]}


# select_stats / select_repeats / select_plan


def write_shard_columns(run: Folder, unit: str, table: pa.Table) -> None:
    write_arrow(run, table, "select_stats", "columns", f"{unit}.arrow")


def read_shard_columns(run: Folder, unit: str) -> pa.Table:
    return read_arrow(run, "select_stats", "columns", f"{unit}.arrow")


def write_key_hashes(run: Folder, unit: str, rows: np.ndarray, ranges: np.ndarray) -> None:
    """A shard's (hash, id) rows sorted by hash, and where each hash range starts in them."""
    save_array(run, rows, "select_stats", "hashes", f"{unit}.npy")
    save_array(run, ranges, "select_stats", "hashes", f"{unit}.ranges.npy")


def read_key_hash_ranges(run: Folder, unit: str) -> np.ndarray:
    return load_array(run, "select_stats", "hashes", f"{unit}.ranges.npy")


def read_key_hashes(run: Folder, unit: str, start: int, stop: int) -> np.ndarray:
    return read_array_slice(run, start, stop, "select_stats", "hashes", f"{unit}.npy")


REPEAT_SCHEMA = pa.schema([("position", pa.int32()), ("first", pa.int64())])


def write_repeats(run: Folder, unit: str, part: str, table: pa.Table) -> None:
    """The rows of shard `unit` whose key an earlier row had (position, that row's id)."""
    write_arrow(run, table, "select_repeats", unit, f"{part}.arrow")


def read_repeats(run: Folder, unit: str) -> pa.Table:
    parts = [read_arrow(run, "select_repeats", unit, n) for n in run.listdir("select_repeats", unit)
             if n.endswith(".arrow")]  # fmt: skip
    return pa.concat_tables(parts) if parts else REPEAT_SCHEMA.empty_table()


def write_plan(run: Folder, plan: dict) -> None:
    run.write_json(plan, "select_plan", "plan.json")


def read_plan(run: Folder) -> dict:
    return run.read_json("select_plan", "plan.json")


# select


def write_selection(run: Folder, unit: str, keep_positions: np.ndarray, decisions: pa.Table,
                    counts: dict) -> None:  # fmt: skip
    save_array(run, keep_positions, "select", "keep", f"{unit}.npy")
    write_table(run, decisions, "select", "decisions", f"{unit}.parquet",
                dictionary=DECISION_DICTIONARY, statistics=False)  # fmt: skip
    run.write_json(counts, "select", "counts", f"{unit}.json")


def read_keep(run: Folder, unit: str) -> np.ndarray:
    return load_array(run, "select", "keep", f"{unit}.npy")


def read_decisions(run: Folder, unit: str, columns: list[str] | None = None) -> pa.Table:
    return read_table(run, "select", "decisions", f"{unit}.parquet", columns=columns)


def read_counts(run: Folder, unit: str) -> dict:
    return run.read_json("select", "counts", f"{unit}.json")


def write_tallies(run: Folder, unit: str, tallies: dict[str, np.ndarray]) -> None:
    """A shard's kept per cluster (`kept_by_cluster`) and kept and pruned per label
    (`labels`, `kept`, `pruned`; -1: no label)."""
    run.write_buffer(lambda buf: np.savez(buf, **tallies), "select", "tallies", f"{unit}.npz")


def read_tallies(run: Folder, unit: str) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(run.read_bytes("select", "tallies", f"{unit}.npz"))) as tallies:
        return dict(tallies)


def read_selection_record(run: Folder, units: list[str]) -> dict:
    """The per-cluster table (its kept column summed over the shards' counts) and the notes of
    the selection."""
    plan = read_plan(run)
    kept = sum(read_tallies(run, u)["kept_by_cluster"] for u in units)
    clusters = [{**row, "kept": int(kept[row["cluster"]])} for row in plan["clusters"]]
    return {"clusters": clusters, "notes": plan["notes"]}


STATUSES = (KEPT, PRUNED, FAILED, HELDOUT)


def count_decisions(decisions: pa.Table) -> dict:
    """input = kept + pruned + failed + heldout, and the count of each reason."""
    status = _value_counts(decisions["status"])
    return {
        "input": len(decisions),
        **{name: status.get(name, 0) for name in STATUSES},
        "reasons": dict(sorted(_value_counts(decisions["reason"]).items())),
    }


def _value_counts(column: pa.ChunkedArray) -> dict[str, int]:
    counts = pc.value_counts(column)
    return dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(),
                    strict=True))  # fmt: skip


def sum_counts(counts: list[dict]) -> dict:
    """Totals over shards, in the shape of `count_decisions`."""
    totals: dict = {k: sum(c.get(k, 0) for c in counts) for k in ("input", *STATUSES)}
    reasons: dict[str, int] = {}
    for c in counts:
        for reason, n in c["reasons"].items():
            reasons[reason] = reasons.get(reason, 0) + n
    totals["reasons"] = reasons
    return totals


def read_total_counts(run: Folder, units: list[str]) -> dict:
    return sum_counts([read_counts(run, u) for u in units])


# What a run writes in its output folder

METADATA_FILES = ("classes.json", "dataset_info.json", "info.json", "README.md", "LICENSE")
KEPT_UIDS = "kept_uids.npy"


def input_root(shards: list[str]) -> str:
    """The folder (or URL prefix) every input shard lies below: output names are the inputs'
    paths relative to it, so a nested layout keeps its folders."""
    parents = [s.rsplit("/", 1)[0] for s in shards]
    root = parents[0]
    for parent in parents[1:]:
        while not (parent == root or parent.startswith(root.rstrip("/") + "/")):
            if "/" not in root.rstrip("/"):
                return ""
            root = root.rstrip("/").rsplit("/", 1)[0]
    return root


def output_shard(config, index: int) -> str:
    """The output name of input shard `index`: its path below the inputs' common folder, so
    `00000000.tar` stays `00000000.tar` and `train/a/1.tar` stays `train/a/1.tar`."""
    root = input_root(config.shards)
    shard = config.shards[index]
    return shard[len(root) :].lstrip("/") if root else shard.replace("://", "/").lstrip("/")


def shard_stem(name: str) -> str:
    """`a/000.tar` -> `a/000`; compressed shards keep their full stem (`000.tar.gz` -> `000`)."""
    for suffix in (".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".tar.zst", ".tar"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def output_stem(config, index: int) -> str:
    """What the files of input shard `index` are named by in the output: `<stem>.tar`,
    `<stem>_stats.json`, `<stem>.parquet`."""
    return shard_stem(output_shard(config, index))


def output_names(config) -> set[str]:
    """Every file a run under `config` writes in its output folder (the marker aside)."""
    names = {SUMMARY, DECISIONS, KEPT_UIDS, *METADATA_FILES}
    for i in range(len(config.shards)):
        stem = output_stem(config, i)
        names |= {f"{stem}.tar", f"{stem}_stats.json", f"{stem}.parquet"}
    return names
