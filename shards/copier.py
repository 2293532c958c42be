"""Copy the kept samples of a shard into an output tar at the speed the bytes move.

The output, whichever path writes it: for each kept sample in position order, each of its
members in archive order, written as `shards.tario.TarWriter` writes it (`ustar_header(name,
size)`, or `tarfile`'s pax header for a name or size ustar cannot hold; the data; NUL padding
to 512 bytes), then two zero blocks and NUL padding to a multiple of 10240 bytes. Nothing else
of the input reaches the output (mtimes, owners, modes, pax records, padding bytes,
directories), so the same kept samples give the same bytes whoever wrote the input, and a unit
killed and run again writes the same bytes again.

Two paths to those bytes:
- A local plain tar is memory-mapped and indexed (`shards.tarindex`). Headers for the kept
  members are built in bulk, and the output is written with `os.writev` straight from the map:
  per member our header, then a view of its data. A run of consecutive kept members whose input
  bytes already are what we write (shards curate wrote) goes out as a single view. On a plain
  local output file the kernel then moves the data from the page cache once, as `cp` does.
- Compressed and remote shards, and shards the index declines, go through the per-sample
  reader and `TarWriter` (`copy_samples`), streamed or over views of the map.
"""

from __future__ import annotations

import errno
import io
import mmap
import os
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from curation.errors import CurateError
from shards.compression import MAGIC_BYTES, compression_of
from shards.paths import is_url, open_shard
from shards.tarheader import BLOCK
from shards.tarindex import Layout, index_shard, ustar_headers
from shards.tario import RECORD, MemoryReader, ShardFormatError, TarWriter, iter_samples

_MAX_BUFFERS = min(os.sysconf("SC_IOV_MAX"), 1024)
_WRITE_BATCH = 4 << 20  # bytes gathered before a write, when joining (no descriptor)
_CHUNK = 8192  # kept members whose headers are built at once
_PADS = tuple(bytes(n) for n in range(BLOCK))


@dataclass(frozen=True)
class CopyStats:
    samples_read: int  # up to the last kept one (the index has looked at every sample)
    samples_copied: int
    bytes_written: int
    method: str  # "index" or "per-sample"


def copy_kept(source: str, keep_positions: np.ndarray, out: BinaryIO,
              storage_options: dict | None = None) -> CopyStats:  # fmt: skip
    """Write the samples of shard `source` at `keep_positions` to `out` as a complete tar
    (`storage_options` for a URL source).

    Raises CurateError when a kept sample is missing or now fails (the shard changed since it
    was embedded), and OSError naming the output when writing fails (a full disk)."""
    keep = np.unique(np.asarray(keep_positions, dtype=np.int64))
    with _opened(source, storage_options) as opened:
        if not isinstance(opened, mmap.mmap):
            stats = copy_samples(opened, keep, out)
        elif (layout := index_shard(opened)) is not None:
            stats = _copy_indexed(opened, layout, keep, out)
        else:
            stats = _copy_mapped_samples(opened, keep, out)
    if stats.samples_copied != len(keep):
        raise CurateError(
            f"shard {source} changed since it was embedded: "
            f"{len(keep) - stats.samples_copied} kept samples are missing"
        )
    return stats


@contextmanager
def _opened(source: str, storage_options: dict | None) -> Iterator[BinaryIO | mmap.mmap]:
    """A local plain tar as a memory map, anything else as a stream. On error the locals of
    the frames it passed through are cleared, so no view keeps the map from closing."""
    if is_url(source):
        with open_shard(source, storage_options) as stream:
            yield stream
        return
    with open(source, "rb") as f:
        if compression_of(f.read(MAGIC_BYTES)) is not None or os.fstat(f.fileno()).st_size == 0:
            f.seek(0)
            yield f
            return
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        yield mapped
    except BaseException as exc:
        _clear_frames(exc)
        raise
    finally:
        mapped.close()


def _clear_frames(exc: BaseException) -> None:
    """Clear the locals of every finished frame the error (and the errors it came from)
    passed through: views into the map held there would keep it from closing."""
    pending, seen = [exc], set()
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        pending += [error.__cause__, error.__context__]


def copy_samples(stream: BinaryIO | MemoryReader, keep: np.ndarray, out: BinaryIO) -> CopyStats:
    """The per-sample path: read samples with `iter_samples`, write the kept ones (`keep`:
    ascending positions) with `TarWriter`, stopping after the last kept one. Samples at or
    after damage were failed at embed time and are never kept; a kept sample that now fails
    raises CurateError."""
    writer = TarWriter(_NamedOutput(out))
    last = int(keep[-1]) if len(keep) else -1
    wanted = set(keep.tolist())
    samples = iter_samples(stream)
    read = copied = 0
    try:
        for sample in samples:
            read += 1
            if sample.position in wanted:
                reason = sample.error or (sample.unsafe_names and "unsafe member name")
                if reason:
                    raise CurateError(
                        f"kept sample {sample.position} ({sample.key}) cannot be copied: "
                        f"{reason}; the shard changed since it was embedded"
                    )
                writer.add_sample(sample)
                copied += 1
            if sample.position >= last:
                break
    except ShardFormatError:
        pass
    finally:
        samples.close()
    writer.close()
    return CopyStats(read, copied, writer.bytes_written, "per-sample")


def _copy_mapped_samples(mapped: mmap.mmap, keep: np.ndarray, out: BinaryIO) -> CopyStats:
    reader = MemoryReader(mapped)
    try:
        return copy_samples(reader, keep, out)
    finally:
        reader.release()


def _copy_indexed(mapped: mmap.mmap, layout: Layout, keep: np.ndarray, out: BinaryIO) -> CopyStats:
    """Our headers in bulk, data as views of the map, raw runs where the input is ours."""
    present = keep[(keep >= 0) & (keep < layout.samples)]
    kept = np.zeros(layout.samples, dtype=bool)
    kept[present] = True
    members = np.flatnonzero(kept[layout.sample])
    sink = _Sink(out)
    view = memoryview(mapped)
    try:
        for first in range(0, len(members), _CHUNK):
            _write_members(sink, view, layout, members[first : first + _CHUNK])
        end = bytes(2 * BLOCK + -(sink.bytes_written + 2 * BLOCK) % RECORD)
        sink.extend([end], len(end))
        sink.flush()
    finally:
        sink.discard()
        view.release()
    read = int(present[-1]) + 1 if len(present) else 0
    return CopyStats(read, len(present), sink.bytes_written, "index")


def _write_members(sink: _Sink, view: memoryview, layout: Layout, members: np.ndarray) -> None:
    """One chunk of kept members, in order, as pieces of output: a view of the input for each
    run of consecutive members already in our form; for every other member our header, a view
    of its data, its padding. Headers live in slots of `_slots`: BLOCK bytes of zeros, then
    the header, so that a header and the padding of the member before it are one buffer."""
    normal = layout.normal[members]
    starts, ends = layout.start[members], layout.end[members]
    joined = np.zeros(len(members), dtype=bool)
    joined[1:] = normal[1:] & normal[:-1] & (starts[1:] == ends[:-1])
    first = np.flatnonzero(~joined)  # the member each piece starts with
    last = np.append(first[1:] - 1, len(members) - 1)
    raw = normal[first]
    rewrite = first[~raw]
    data = layout.header[members[rewrite]] + BLOCK
    size = layout.size[members[rewrite]]
    pad = -size % BLOCK
    # Buffers per piece: a raw run 1; a rewritten member 2 (header, data), 3 when its padding
    # cannot ride with the next header (the next piece is a raw run, or in the next chunk).
    next_rewritten = np.append(~raw[1:], False)[~raw]
    alone = (pad > 0) & ~next_rewritten
    count = np.ones(len(first), dtype=np.int64)
    count[~raw] = 2 + alone
    at = np.cumsum(count) - count  # where each piece's first buffer goes
    carried = np.where(np.append(False, ~raw[:-1])[~raw], np.append(0, pad[:-1]), 0)
    slot = np.arange(len(rewrite), dtype=np.int64) * 2 * BLOCK
    input_at = np.concatenate([at[raw], at[~raw] + 1])
    input_begin = np.concatenate([starts[first[raw]], data])
    input_end = np.concatenate([ends[last[raw]], data + size])
    ours_at = np.concatenate([at[~raw], at[~raw][alone] + 2])
    ours_begin = np.concatenate([slot + BLOCK - carried, slot[alone]])
    ours_end = np.concatenate([slot + 2 * BLOCK, slot[alone] + pad[alone]])
    slots = memoryview(_slots(layout, members[rewrite]))
    pieces = [
        *map(view.__getitem__, map(slice, input_begin.tolist(), input_end.tolist())),
        *map(slots.__getitem__, map(slice, ours_begin.tolist(), ours_end.tolist())),
    ]
    order = np.argsort(np.concatenate([input_at, ours_at]), kind="stable").tolist()
    nbytes = int((input_end - input_begin).sum() + (ours_end - ours_begin).sum())
    sink.extend(list(map(pieces.__getitem__, order)), nbytes)


def _slots(layout: Layout, members: np.ndarray) -> np.ndarray:
    """Per member, BLOCK bytes of zeros (padding for the member before it) and its header."""
    slots = np.zeros((len(members), 2 * BLOCK), dtype=np.uint8)
    slots[:, BLOCK:] = ustar_headers(layout.names[members], layout.size[members])
    return slots.reshape(-1)


class _NamedOutput:
    """`out`, with write failures raised as an OSError that names it."""

    def __init__(self, out: BinaryIO):
        self._out = out

    def write(self, data: bytes) -> int:
        try:
            return self._out.write(data)
        except OSError as exc:
            raise _named(exc, self._out) from None


def _named(exc: OSError, out: BinaryIO) -> OSError:
    name = getattr(out, "name", None) or repr(out)
    return OSError(exc.errno, f"cannot write {name}: {exc.strerror or exc}")


def _plain_descriptor(out: BinaryIO) -> int | None:
    """The descriptor of a plain local file, its buffer flushed first; None for anything
    else (in memory, remote, compressed). fsspec's local files hold the file as `.f`."""
    target = getattr(out, "f", out)
    raw = getattr(target, "raw", target)
    if not isinstance(raw, io.FileIO) or not raw.writable():
        return None
    out.flush()
    return raw.fileno()


class _Sink:
    """Buffers written in order and in batches: `os.writev` on a plain local file (the kernel
    copies straight from the buffers), else `write` of about 4 MB joined at a time."""

    def __init__(self, out: BinaryIO):
        self._out = out
        self._fd = _plain_descriptor(out)
        self._bufs: list = []
        self.bytes_written = 0  # gathered so far, written or not

    def extend(self, bufs: list, nbytes: int) -> None:
        """Gather `bufs`, `nbytes` long in all; write once a batch is full."""
        self._bufs.extend(bufs)
        self.bytes_written += nbytes
        if len(self._bufs) >= _MAX_BUFFERS:
            self.flush()

    def flush(self) -> None:
        try:
            if self._fd is None:
                _write_joined(self._out, self._bufs)
            else:
                _writev_all(self._fd, self._bufs)
        except OSError as exc:
            raise _named(exc, self._out) from None
        finally:
            self.discard()

    def discard(self) -> None:
        """Let go of the gathered buffers (views into the map) without writing them."""
        self._bufs.clear()


def _write_joined(out: BinaryIO, bufs: list) -> None:
    batch, size = [], 0
    for buf in bufs:
        batch.append(buf)
        size += len(buf)
        if size >= _WRITE_BATCH:
            out.write(b"".join(batch))
            batch, size = [], 0
    out.write(b"".join(batch))


def _writev_all(fd: int, bufs: list) -> None:
    """Every byte of `bufs`, in order, however many calls the kernel takes (a short write
    continues where it stopped)."""
    first = 0
    while first < len(bufs):
        batch = bufs[first : first + _MAX_BUFFERS]
        written = os.writev(fd, batch)
        if written == sum(map(len, batch)):
            first += len(batch)
            continue
        if written == 0:
            raise OSError(errno.EIO, "the file accepted no bytes")
        for buf in batch:
            if written < len(buf):
                bufs[first] = memoryview(buf)[written:]
                break
            written -= len(buf)
            first += 1
