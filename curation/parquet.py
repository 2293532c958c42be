"""Reading parquet, one way for every reader in curate: Arrow is given only what it owns.

A Python file object or a buffer of Python bytes, handed to Arrow, is read and released by
Arrow's own threads, which take the GIL to do it; one still at it as the interpreter exits
aborts the process ("terminate called without an active exception", exit status 134 instead
of the command's: apache/arrow#34314, #50482). Measured: 35 of 300 processes that read a small
file through a Python file object aborted, 2 of 300 through a buffer of Python bytes, none given
a path. So a local file goes to Arrow as its path, and a remote one as bytes copied into an
Arrow buffer (only its footer and the chunks of the columns asked for, when a read names
columns); reads are not threaded (a shard's rows, read one file at a time, gain nothing).
And through `ParquetFile`: `pq.read_table` imports `pyarrow.dataset`, and with it pandas
(0.35 s), for nothing."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from curation.errors import CurateError

_FOOTER_TAIL = 8  # a parquet file ends with its footer's length (4 bytes) and b"PAR1"


def _named(read: Callable) -> Callable:
    """A file Arrow cannot read, or without a column asked for, is a user error naming it,
    not a traceback."""

    @functools.wraps(read)
    def wrapper(fs: AbstractFileSystem, path: str, *args):
        try:
            return read(fs, path, *args)
        except pa.ArrowInvalid as exc:
            raise _unreadable(path, exc) from None
        except KeyError as exc:  # a column asked for that the file lacks
            raise CurateError(f"{path}: {exc.args[0]}") from None

    return wrapper


def _unreadable(name: str, exc: pa.ArrowInvalid) -> CurateError:
    return CurateError(f"{name} is not a parquet file Arrow can read: {exc}")


@_named
def read_table(fs: AbstractFileSystem, path: str, columns: list[str] | None = None) -> pa.Table:
    """The table at `path` on `fs` (only `columns`, when given)."""
    if isinstance(fs, LocalFileSystem):
        source = path
    elif columns is None:
        source = arrow_buffer(fs.cat_file(path))
    else:
        source = _columns_only(fs, path, columns)
    return pq.ParquetFile(source).read(columns=columns, use_threads=False)


def table_from_bytes(data: bytes, name: str) -> pa.Table:
    """The table in the bytes of parquet file `name`."""
    try:
        return pq.ParquetFile(arrow_buffer(data)).read(use_threads=False)
    except pa.ArrowInvalid as exc:
        raise _unreadable(name, exc) from None


@_named
def read_metadata(fs: AbstractFileSystem, path: str) -> pq.FileMetaData:
    """The footer alone (schema, row count): from a remote file, its last bytes only."""
    if isinstance(fs, LocalFileSystem):
        return pq.read_metadata(path)
    return pq.read_metadata(arrow_buffer(_footer(fs, path)[1]))


def _footer(fs: AbstractFileSystem, path: str) -> tuple[int, bytes]:
    """A remote file's size and its footer's bytes, read from its end."""
    size = fs.size(path)
    tail = fs.cat_file(path, start=max(size - _FOOTER_TAIL, 0), end=size)
    length = int.from_bytes(tail[:4], "little") + _FOOTER_TAIL
    if len(tail) < _FOOTER_TAIL or tail[4:] != b"PAR1" or length > size:
        raise pa.ArrowInvalid("no parquet footer at its end")
    return size, fs.cat_file(path, start=size - length, end=size)


def _columns_only(fs: AbstractFileSystem, path: str, columns: list[str]) -> pa.BufferReader:
    """A remote file as Arrow reads it for `columns`: a buffer of the file's size, zeros but
    for the footer and those columns' chunks, fetched at their offsets (one column of a wide
    metadata file is a fraction of it)."""
    size, footer = _footer(fs, path)
    meta = pq.read_metadata(arrow_buffer(footer))
    wanted = [i for i in range(meta.num_columns)
              if meta.schema.column(i).path.split(".")[0] in columns]  # fmt: skip
    starts, ends = [], []
    for group in map(meta.row_group, range(meta.num_row_groups)):
        for chunk in map(group.column, wanted):
            first = chunk.data_page_offset
            if chunk.has_dictionary_page and chunk.dictionary_page_offset:
                first = min(first, chunk.dictionary_page_offset)
            starts.append(first)
            ends.append(first + chunk.total_compressed_size)
    buffer = pa.allocate_buffer(size)
    view = np.frombuffer(buffer, dtype=np.uint8)
    view[:] = 0
    for start, data in zip(starts, fs.cat_ranges([path] * len(starts), starts, ends), strict=True):
        view[start : start + len(data)] = np.frombuffer(data, dtype=np.uint8)
    view[size - len(footer) :] = np.frombuffer(footer, dtype=np.uint8)
    del view  # the buffer is Arrow's alone from here
    return pa.BufferReader(buffer)


def read_schema(fs: AbstractFileSystem, path: str) -> pa.Schema:
    return read_metadata(fs, path).schema.to_arrow_schema()


def arrow_buffer(data: bytes) -> pa.BufferReader:
    """`data` copied into memory Arrow owns, to read from."""
    sink = pa.BufferOutputStream()
    sink.write(data)
    return pa.BufferReader(sink.getvalue())
