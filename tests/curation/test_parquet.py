"""Parquet reads give Arrow only what it owns: a local path, or bytes of a remote file (all of
it for a whole table, its footer and the chunks of the columns named, its last bytes for the
footer alone)."""

from __future__ import annotations

import io

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.local import LocalFileSystem

from curation import parquet
from curation.errors import CurateError

TABLE = pa.table({
    "key": [f"k{i}" for i in range(3000)], "n": list(range(3000)),
    "caption": [np.random.default_rng(i).bytes(100).hex() for i in range(3000)],  # wide
})  # fmt: skip


@pytest.fixture
def remote():
    """A parquet file on fsspec's in-memory filesystem (not local: read as bytes), counting
    the bytes each read fetched."""
    fs = fsspec.filesystem("memory")
    buffer = io.BytesIO()
    pq.write_table(TABLE, buffer, row_group_size=1000)  # three row groups
    fs.pipe_file("/bucket/t.parquet", buffer.getvalue())
    fetched = []
    cat_file = fs.cat_file

    def counted(path, start=None, end=None, **kwargs):
        data = cat_file(path, start=start, end=end, **kwargs)
        fetched.append(len(data))
        return data

    fs.cat_file = counted
    yield fs, "/bucket/t.parquet", fetched, len(buffer.getvalue())
    fs.rm("/bucket", recursive=True)


def test_local_and_remote_read_the_same(tmp_path, remote):
    fs, path, fetched, size = remote
    pq.write_table(TABLE, tmp_path / "t.parquet", row_group_size=1000)
    local = LocalFileSystem(), str(tmp_path / "t.parquet")
    assert parquet.read_table(*local) == TABLE
    assert parquet.read_table(fs, path) == TABLE
    assert fetched == [size]
    assert parquet.read_schema(*local) == parquet.read_schema(fs, path) == TABLE.schema
    assert parquet.read_metadata(fs, path).num_rows == 3000


def test_a_remote_read_of_columns_fetches_their_chunks_alone(remote):
    fs, path, fetched, size = remote
    for columns in (["n"], ["key", "n"], ["caption"]):
        fetched.clear()
        assert parquet.read_table(fs, path, columns) == TABLE.select(columns)
        if "caption" not in columns:
            assert sum(fetched) < size / 4, (columns, fetched, size)


def test_a_remote_footer_is_read_from_the_end_alone(remote):
    fs, path, fetched, size = remote
    assert parquet.read_metadata(fs, path).num_rows == 3000
    assert fetched[0] == 8 and sum(fetched) < size / 4


def test_a_file_that_is_not_parquet_is_a_user_error_naming_it(tmp_path, remote):
    fs = remote[0]
    fs.pipe_file("/bucket/not.parquet", b"a,b\n1,2\n")
    (tmp_path / "not.parquet").write_bytes(b"a,b\n1,2\n")
    for where in ((fs, "/bucket/not.parquet"), (LocalFileSystem(), str(tmp_path / "not.parquet"))):
        for read in (parquet.read_table, parquet.read_metadata, parquet.read_schema):
            with pytest.raises(CurateError, match=r"not\.parquet is not a parquet file"):
                read(*where)
    with pytest.raises(CurateError, match=r"x\.parquet is not a parquet file"):
        parquet.table_from_bytes(b"PAR1 and then nothing", "x.parquet")
