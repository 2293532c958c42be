"""Pruning from embeddings computed elsewhere (`--embeddings PATH`), no model: the layouts
LAION and DataComp ship, matched to the shards' samples; and the run's embeddings exported in
clip-retrieval's layout for other tools.

- **clip-retrieval**: `PATH/img_emb/img_emb_N.npy` row-aligned with
  `PATH/metadata/metadata_N.parquet`, whose `key` (or `image_path`, as clip-retrieval names the
  webdataset key; or `url`, matched to the json `url` of a sample) says which sample a row is.
  Optional `PATH/text_emb/text_emb_N.npy` gives the captions' embeddings (for the CLIP-score
  filter). The files need not follow the shards: an index (stages `emb_parts`, one unit per
  metadata file, and `emb_index`, one unit per hash bucket) maps each key's 128-bit hash to its
  (file, row), sorted per bucket; an embed unit looks its keys up by binary search in the
  memory-mapped bucket files, so no unit holds the whole index.
- **DataComp**: a `<shard>.npz` per shard in PATH (the shards' own folder, where DataComp puts
  them) holding `--embedding-field` (`b32_img`, `l14_img`...) row-aligned with the `uid`s of the
  npz, or of the `<shard>.parquet` beside it; samples match by the json `uid`.

A sample without an embedding fails with that reason; a run where the first samples match none
is refused before it starts, naming the keys on both sides.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass

import numpy as np

from curation import parquet, progress
from curation.errors import CurateError
from curation.stage import Context
from curation.storage import Folder, filesystem
from pipelines.data_pruning import schema
from pipelines.data_pruning.rows import content_tables, row_stats, sample_row, shard_content
from shards.copier import record_layout
from shards.paths import is_url, open_shard
from shards.tario import Sample, ShardFormatError, iter_samples

CLIP_RETRIEVAL, DATACOMP = "clip-retrieval", "datacomp"
MATCH_COLUMNS = ("key", "image_path", "url")  # in the order a metadata column is chosen
BUCKET_BITS = 6  # 64 hash buckets in the index
_NUMBERED = re.compile(r"_(\d+)\.(npy|parquet)$")


@dataclass(frozen=True)
class Layout:
    kind: str
    root: Folder
    files: list[str]  # clip-retrieval: the N of every img_emb_N.npy, sorted numerically

    def embeddings(self, n: str) -> str:
        return self.root.url_of("img_emb", f"img_emb_{n}.npy")

    def texts(self, n: str) -> str:
        return self.root.url_of("text_emb", f"text_emb_{n}.npy")

    def metadata(self, n: str) -> str:
        return self.root.url_of("metadata", f"metadata_{n}.parquet")


def layout(path: str, storage_options: dict) -> Layout:
    """Which layout PATH holds; a user error when neither."""
    root = Folder(path, storage_options)
    if root.exists("img_emb") and root.exists("metadata"):
        numbers = sorted((m.group(1) for n in root.listdir("img_emb")
                          if (m := _NUMBERED.search(n))), key=int)  # fmt: skip
        if not numbers:
            raise CurateError(f"--embeddings {path}: img_emb/ holds no img_emb_N.npy")
        return Layout(CLIP_RETRIEVAL, root, numbers)
    if any(n.endswith(".npz") for n in root.listdir()):
        return Layout(DATACOMP, root, [])
    raise CurateError(
        f"--embeddings {path} holds neither clip-retrieval's img_emb/ and metadata/ folders nor "
        "DataComp's .npz files beside the shards"
    )


def _vectors_shape(url: str, storage_options: dict) -> tuple[int, ...]:
    """The shape of a clip-retrieval `.npy` (listed in `img_emb/`), from its header alone; a
    user error naming the file when it is not a C-ordered 2-D array of floats."""
    fs, path = filesystem(url, storage_options)
    try:
        with fs.open(path, "rb") as f:
            shape, fortran, dtype = schema.npy_header(f)
    except ValueError as exc:
        raise CurateError(f"{url} is not a .npy array ({exc})") from None
    if fortran or len(shape) != 2 or dtype.kind != "f":
        order = "Fortran" if fortran else "C"
        raise CurateError(f"{url} holds a {_shape(shape)} {dtype} array in {order} order, not "
                          f"C-ordered rows of float vectors")  # fmt: skip
    return shape


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def check_vectors(found: Layout, n: str, rows: int, storage_options: dict) -> None:
    """`img_emb_N.npy` has a vector for each row of `metadata_N.parquet`, as wide as the
    first file's: a file that does not is named before any of it is read."""
    shape = _vectors_shape(found.embeddings(n), storage_options)
    if shape[0] != rows:
        raise CurateError(f"{found.embeddings(n)} has {shape[0]} vectors, but "
                          f"{found.metadata(n)} has {rows} rows")  # fmt: skip
    first = found.files[0]
    width = _vectors_shape(found.embeddings(first), storage_options)[1] if n != first else shape[1]
    if shape[1] != width:
        raise CurateError(f"{found.embeddings(n)} holds vectors of {shape[1]} values, "
                          f"{found.embeddings(first)} of {width}")  # fmt: skip


def _hash128(values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Two uint64 halves of each value's BLAKE2b-128: collisions are negligible at 10^10 keys."""
    digests = b"".join(hashlib.blake2b(v.encode("utf-8", "surrogateescape"), digest_size=16)
                       .digest() for v in values)  # fmt: skip
    halves = np.frombuffer(digests, dtype=">u8").reshape(-1, 2).astype(np.uint64)
    return halves[:, 0].copy(), halves[:, 1].copy()


def _bucket(high: np.ndarray) -> np.ndarray:
    return (high >> np.uint64(64 - BUCKET_BITS)).astype(np.int64)


def _match_column(names: list[str], where: str) -> str:
    for column in MATCH_COLUMNS:
        if column in names:
            return column
    raise CurateError(f"{where} has none of the columns {', '.join(MATCH_COLUMNS)} to match "
                      f"samples by (it has {', '.join(names)})")  # fmt: skip


def match_column(found: Layout, n: str, storage_options: dict) -> str:
    """The column of metadata file `n` that samples are matched by (each file's own)."""
    url = found.metadata(n)
    return _match_column(parquet.read_schema(*filesystem(url, storage_options)).names, url)


def _sample_url(sample: Sample) -> str:
    meta = sample.get("json")
    try:
        record = json.loads(bytes(meta.data)) if meta is not None else {}
    except (ValueError, RecursionError):
        return ""
    return str(record.get("url", "")) if isinstance(record, dict) else ""


def match_values(found: Layout, samples: list[Sample], storage_options: dict) -> list[str]:
    """What each sample is known by in the metadata: its key, or its json url."""
    if match_column(found, found.files[0], storage_options) == "url":
        return [_sample_url(s) for s in samples]
    return [s.key for s in samples]


def _read_parquet(url: str, storage_options: dict, columns: list[str] | None = None):
    fs, path = filesystem(url, storage_options)
    return parquet.read_table(fs, path, columns)


# The clip-retrieval index


def index_units(ctx: Context) -> list[str]:
    """A unit per metadata file of clip-retrieval's layout; none for DataComp's (per shard)."""
    return layout(ctx.config.embeddings, ctx.config.storage_options).files


def bucket_units(ctx: Context) -> list[str]:
    if layout(ctx.config.embeddings, ctx.config.storage_options).kind == DATACOMP:
        return []
    return [f"{b:03d}" for b in range(1 << BUCKET_BITS)]


def index_part(ctx: Context, unit: str) -> dict:
    """One metadata file's keys, hashed and split by bucket."""
    found = layout(ctx.config.embeddings, ctx.config.storage_options)
    column = match_column(found, unit, ctx.config.storage_options)
    keys = _read_parquet(found.metadata(unit), ctx.config.storage_options, [column])[column]
    keys = keys.to_pylist()
    check_vectors(found, unit, len(keys), ctx.config.storage_options)
    high, low = _hash128([str(k) for k in keys])
    rows = np.arange(len(keys), dtype=np.int64)
    bucket = _bucket(high)
    for b in np.unique(bucket):
        mine = bucket == b
        part = np.stack([high[mine], low[mine], rows[mine].astype(np.uint64)])
        schema.save_array(ctx.run, part, "emb_parts", f"{b:03d}", f"{unit}.npy")
    return {"samples": len(keys), "match": column}


def index_bucket(ctx: Context, unit: str) -> dict:
    """A bucket's keys sorted by hash, with the file and row of each (the first of repeats)."""
    parts = [(int(name.removesuffix(".npy")),
              schema.load_array(ctx.run, "emb_parts", unit, name))
             for name in ctx.run.listdir("emb_parts", unit) if name.endswith(".npy")]  # fmt: skip
    if parts:
        high = np.concatenate([p[0] for _, p in parts])
        low = np.concatenate([p[1] for _, p in parts])
        row = np.concatenate([p[2] for _, p in parts]).astype(np.int64)
        file = np.concatenate([np.full(p.shape[1], n, dtype=np.int64) for n, p in parts])
    else:
        high = low = np.zeros(0, np.uint64)
        row = file = np.zeros(0, np.int64)
    order = np.lexsort((row, file, low, high))
    high, low, file, row = high[order], low[order], file[order], row[order]
    first = np.ones(len(high), dtype=bool)
    first[1:] = (high[1:] != high[:-1]) | (low[1:] != low[:-1])
    for name, values in (("high", high), ("low", low), ("file", file), ("row", row)):
        schema.save_array(ctx.run, values[first], "emb_index", f"{unit}.{name}.npy")
    return {"samples": int(first.sum()), "repeated_keys": int((~first).sum())}


def _lookup(run: Folder, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(file, row) of each key in the index, -1 where it has none."""
    high, low = _hash128(keys)
    file, row = np.full(len(keys), -1, np.int64), np.full(len(keys), -1, np.int64)
    bucket = _bucket(high)
    for b in np.unique(bucket):
        index = {name: _mapped(run, "emb_index", f"{b:03d}.{name}.npy")
                 for name in ("high", "low", "file", "row")}  # fmt: skip
        mine = np.flatnonzero(bucket == b)
        start = np.searchsorted(index["high"], high[mine], side="left")
        end = np.searchsorted(index["high"], high[mine], side="right")
        for i, s, e in zip(mine, start, end, strict=True):
            for j in range(s, e):  # almost always one candidate
                if index["low"][j] == low[i]:
                    file[i], row[i] = index["file"][j], index["row"][j]
                    break
    return file, row


def _mapped(run: Folder, *parts: str) -> np.ndarray:
    """A local index file memory-mapped (pages shared by every worker), a remote one read."""
    if is_url(run.url) and not run.url.startswith("file://"):
        return schema.load_array(run, *parts)
    return np.load(run.path(*parts), mmap_mode="r")


def npy_rows(url: str, rows: np.ndarray, storage_options: dict) -> np.ndarray:
    """`rows` of a 2-D .npy file: memory-mapped locally, ranged reads of a remote file."""
    if not is_url(url) or url.startswith("file://"):
        return np.asarray(np.load(url.removeprefix("file://"), mmap_mode="r")[rows])
    fs, path = filesystem(url, storage_options)
    with fs.open(path, "rb") as f:
        shape, fortran, dtype = schema.npy_header(f)
        offset = f.tell()
    if fortran or len(shape) != 2:
        raise CurateError(f"{url} is not a C-ordered 2-D array")
    width = shape[1] * dtype.itemsize
    starts = [offset + int(r) * width for r in rows]
    chunks = fs.cat_ranges([path] * len(rows), starts, [s + width for s in starts])
    return np.frombuffer(b"".join(chunks), dtype=dtype).reshape(len(rows), shape[1])


def first_file_matches(found: Layout, values: list[str], storage_options: dict) -> list:
    """Whether each value is in one of the first metadata files (a cheap check before a run:
    the index over every file is built by the run itself)."""
    known: set[str] = set()
    for n in found.files[:4]:
        column = match_column(found, n, storage_options)
        table = _read_parquet(found.metadata(n), storage_options, [column])
        known |= {str(k) for k in table[column].to_pylist()}
    return [True if v in known else None for v in values]


def describe_keys(found: Layout, config) -> str:
    """A few of the embeddings' own keys, for an error message."""
    if found.kind == DATACOMP:
        return f"DataComp .npz files in {config.embeddings}"
    column = match_column(found, found.files[0], config.storage_options)
    url = found.metadata(found.files[0])
    keys = _read_parquet(url, config.storage_options, [column])[column].to_pylist()[:3]
    return f"{url} has {column} {', '.join(map(str, keys))}"


# The embed stage, from precomputed embeddings


UNIT_TOLERANCE = 2.0**-10  # float16's precision: a vector stored unit-length is taken as it is


def _normalised(vectors: np.ndarray) -> np.ndarray:
    """L2-normalised float32 rows; rows already of unit length (to float16 precision, as
    clip-retrieval and curate store them) are left as they are, so pruning from exported
    embeddings gives the bytes pruning from the images gave."""
    v = vectors.astype(np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    unit = np.abs(norms - 1.0) <= UNIT_TOLERANCE
    return np.where(unit, v, v / np.maximum(norms, 1e-12))


def _samples(url: str, storage_options: dict) -> tuple[list[Sample], str | None]:
    found: list[Sample] = []
    with open_shard(url, storage_options) as stream:
        try:
            for sample in iter_samples(stream):
                found.append(sample)
        except ShardFormatError as exc:
            return found, str(exc)
    return found, None


def datacomp_vectors(cfg, url: str, uids: list[str | None]) -> tuple[list, np.ndarray | None]:
    """Each sample's image (and caption) embedding from the npz beside its shard, by uid."""
    root = Folder(cfg.embeddings, cfg.storage_options)
    stem = url.rsplit("/", 1)[-1].removesuffix(".tar")
    if not root.exists(f"{stem}.npz"):
        raise CurateError(f"--embeddings {cfg.embeddings}: no {stem}.npz for the shard {url}")
    where_npz = root.url_of(f"{stem}.npz")
    try:
        with np.load(io.BytesIO(root.read_bytes(f"{stem}.npz")), allow_pickle=False) as npz:
            if cfg.embedding_field not in npz:
                raise CurateError(f"{stem}.npz has no {cfg.embedding_field!r} (it has "
                                  f"{', '.join(npz.files)}): see --embedding-field")  # fmt: skip
            images = npz[cfg.embedding_field]
            text_field = cfg.embedding_field.replace("_img", "_txt")
            texts = npz[text_field] if cfg.needs_captions and text_field in npz else None
            known = npz["uid"].tolist() if "uid" in npz else None
    except (ValueError, OSError, zipfile.BadZipFile) as exc:  # not an npz of plain arrays
        raise CurateError(f"{where_npz} is not a readable .npz of arrays ({exc})") from None
    if known is None:
        known = _read_parquet(root.url_of(f"{stem}.parquet"), cfg.storage_options,
                              ["uid"])["uid"].to_pylist()  # fmt: skip
    if images.ndim != 2 or images.dtype.kind != "f" or len(images) != len(known):
        raise CurateError(f"{where_npz}: {cfg.embedding_field} is a "
                          f"{_shape(images.shape)} {images.dtype} array, not a float "
                          f"vector for each of its {len(known)} uids")  # fmt: skip
    where = {str(u): i for i, u in enumerate(known)}
    rows = [where.get(u) if u else None for u in uids]
    found = [None if r is None else _normalised(images[r : r + 1])[0] for r in rows]
    scores = None
    if texts is not None:
        scores = np.array([np.nan if r is None else float(_normalised(texts[r : r + 1])[0]
                           @ found[i]) for i, r in enumerate(rows)])  # fmt: skip
    return found, scores


def _clip_retrieval_vectors(ctx: Context, samples: list[Sample]) -> tuple[list, np.ndarray | None]:
    cfg = ctx.config
    found = layout(cfg.embeddings, cfg.storage_options)
    keys = match_values(found, samples, cfg.storage_options)
    file, row = _lookup(ctx.run, keys)
    vectors: list = [None] * len(keys)
    scores = np.full(len(keys), np.nan) if cfg.needs_captions else None
    for n in np.unique(file[file >= 0]):
        mine = np.flatnonzero(file == n)
        images = _normalised(npy_rows(found.embeddings(str(n)), row[mine], cfg.storage_options))
        for i, v in zip(mine, images, strict=True):
            vectors[i] = v
        if scores is not None:
            texts = _normalised(npy_rows(found.texts(str(n)), row[mine], cfg.storage_options))
            scores[mine] = np.einsum("nd,nd->n", images, texts)
    return vectors, scores


def embed_precomputed(ctx: Context, unit: str) -> dict:
    """The embed stage's outputs for one shard, its vectors read instead of computed."""
    cfg = ctx.config
    url, content, new = shard_content(ctx, unit)
    if new:
        samples, shard_error = _samples(url, cfg.storage_options)
        rows = [sample_row(s, cfg) for s in samples]
        kind = layout(cfg.embeddings, cfg.storage_options).kind
        if kind == DATACOMP:
            vectors, scores = datacomp_vectors(cfg, url, [r.uid for r in rows])
        else:
            vectors, scores = _clip_retrieval_vectors(ctx, samples)
        for i, (r, v) in enumerate(zip(rows, vectors, strict=True)):
            if r.error is None and v is None:
                r.error = f"no precomputed embedding for this sample in {cfg.embeddings} " + (
                    f"(uid {r.uid})" if kind == DATACOMP else f"(key {r.key})")  # fmt: skip
            if scores is not None:
                r.clip_score = float(scores[i])
        vectors = [v if r.error is None else None for r, v in zip(rows, vectors, strict=True)]
        progress.advance(len(rows), 1.0)
        schema.write_content(ctx.run, content, *content_tables(rows, vectors),
                             row_stats(rows, shard_error), record_layout(url))  # fmt: skip
    return schema.link_content(ctx.run, unit, int(unit), content)


# Export


def export(run: Folder, units: list[str], out: Folder) -> dict:
    """The run's embeddings in clip-retrieval's layout: `img_emb/img_emb_N.npy` (float16, unit
    length) and `metadata/metadata_N.parquet` (key, and uid, label, caption when present), one
    pair per input shard, the embedded samples only."""
    if out.exists() and out.listdir():
        raise CurateError(f"{out.url} is not empty: export into a new folder")
    total = 0
    for n, unit in enumerate(units):
        rows = schema.read_rows(run, unit)
        valid = np.flatnonzero(schema.valid_mask(rows["status"]))
        schema.save_array(out, schema.read_embeddings(run, unit)[valid], "img_emb",
                          f"img_emb_{n}.npy")  # fmt: skip
        columns = ["key", "uid", "label", "caption"]
        meta = rows.select(columns).take(valid).rename_columns(["key", "uid", "label", "caption"])
        schema.write_table(out, meta, "metadata", f"metadata_{n}.parquet")
        total += len(valid)
    return {"samples": total, "files": len(units)}
