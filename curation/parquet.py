"""Reading parquet, one way for every reader in curate: Arrow is given only what it owns.

A Python file object or a buffer of Python bytes, handed to Arrow, is read and released by
Arrow's own threads, which take the GIL to do it; one still at it as the interpreter exits
aborts the process ("terminate called without an active exception", exit status 134 instead
of the command's: apache/arrow#34314, #50482). Measured: 35 of 300 processes that read a small
file through a Python file object aborted, 2 of 300 through a buffer of Python bytes, none given
a path. So a local file goes to Arrow as its path, and a remote one as bytes copied into an
Arrow buffer; reads are not threaded (a shard's rows, read one file at a time, gain nothing).
And through `ParquetFile`: `pq.read_table` imports `pyarrow.dataset`, and with it pandas
(0.35 s), for nothing."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

_FOOTER_TAIL = 8  # a parquet file ends with its footer's length (4 bytes) and b"PAR1"


def read_table(fs: AbstractFileSystem, path: str, columns: list[str] | None = None) -> pa.Table:
    """The table at `path` on `fs` (only `columns`, when given)."""
    return pq.ParquetFile(_native(fs, path)).read(columns=columns, use_threads=False)


def table_from_bytes(data: bytes, columns: list[str] | None = None) -> pa.Table:
    """The table in a parquet file's bytes."""
    return pq.ParquetFile(arrow_buffer(data)).read(columns=columns, use_threads=False)


def read_metadata(fs: AbstractFileSystem, path: str) -> pq.FileMetaData:
    """The footer alone (schema, row count): from a remote file, its last bytes only."""
    if isinstance(fs, LocalFileSystem):
        return pq.read_metadata(path)
    size = fs.size(path)
    tail = fs.cat_file(path, start=max(size - _FOOTER_TAIL, 0), end=size)
    length = int.from_bytes(tail[:4], "little") + _FOOTER_TAIL
    if len(tail) < _FOOTER_TAIL or tail[4:] != b"PAR1" or length > size:
        raise pa.ArrowInvalid(f"{path} is not a parquet file (no parquet footer at its end)")
    return pq.read_metadata(arrow_buffer(fs.cat_file(path, start=size - length, end=size)))


def read_schema(fs: AbstractFileSystem, path: str) -> pa.Schema:
    return read_metadata(fs, path).schema.to_arrow_schema()


def _native(fs: AbstractFileSystem, path: str) -> str | pa.BufferReader:
    return path if isinstance(fs, LocalFileSystem) else arrow_buffer(fs.cat_file(path))


def arrow_buffer(data: bytes) -> pa.BufferReader:
    """`data` copied into memory Arrow owns, to read from."""
    sink = pa.BufferOutputStream()
    sink.write(data)
    return pa.BufferReader(sink.getvalue())
