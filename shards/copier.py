"""Copy the kept samples of a shard into an output tar at the speed the bytes move.

The output rule, whichever path writes it: for each kept sample in position order, each of its
members in archive order, then two zero blocks and NUL padding to a multiple of 10240 bytes.
A member the index finds safe to copy verbatim (`shards.tarindex`, whose docstring states the
rule: a regular member with a safe name, number fields as `tarfile` writes them, no setuid
bit, NUL padding, and no pax records but `mtime`/`atime`/`ctime` and a `path`/`size` equal to
the ustar fields) goes out as its exact input bytes: its pax header if any, its ustar header,
its data, its padding. Every other member is normalised: written as `shards.tario.TarWriter`
writes it (`ustar_header(name, size)`, or `tarfile`'s pax header for a name or size ustar
cannot hold; the data; NUL padding), so nothing else of it reaches the output (its mtime,
owner, mode, pax records, padding bytes); directories never do. Shards the index declines
(compressed; remote, a URL other than `file://`; irregular) are normalised whole. So the same
input gives the same bytes, and a unit killed and run again writes the same bytes again; a
shard curate wrote comes out identical when all is kept; a shard webdataset wrote (a pax
`mtime` header per member) kept whole comes out as its own member bytes followed by our
end-of-archive blocks.

Two paths to those bytes:
- A local plain tar is indexed (`shards.tarindex`), or its layout recorded at embed is trusted
  (checked against the header at the start of every run of kept members). Each run of
  consecutive verbatim members goes out as one byte range. Where the shard is in the page
  cache (non-blocking one-byte reads at 8 places in the kept bytes all succeed), the kept
  ranges are faulted into its memory map, one call each (`MADV_POPULATE_READ`), and written
  as views of the map with `os.writev`, hundreds of ranges a call, 64 MB at a time (then
  dropped from the process: RSS grows by a window, not the shard): faster than a
  `copy_file_range` per range, each a trip through the kernel's splice machinery
  (`docs/benchmarks.md`). From disk, the kernel is asked to read every kept range at once
  (`POSIX_FADV_WILLNEED`), then each range goes by `os.copy_file_range` into a plain local
  output file (as `cp` copies; faster from disk than faulting a map; `sendfile`, then reads,
  where the filesystems do not support it): such a copy of verbatim members alone maps
  nothing. Into any other output the ranges go as views of the map. Normalised members get
  our headers built in bulk, written with `os.writev` with views of their data in the map.
- Compressed and remote shards, and shards the index declines, go through the per-sample
  reader and `TarWriter` (`copy_samples`), streamed or over views of the map.
"""

from __future__ import annotations

import contextlib
import errno
import io
import itertools
import mmap
import os
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

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
_RANGE_BATCH = 1 << 30  # bytes asked of one copy_file_range or sendfile call
_FILE_URL = "file://"
_NO_RANGE_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF}
POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)  # Linux 5.14; not named by mmap here
_PROBES = 8  # bytes read to tell whether a shard is in the page cache
_WINDOW = 64 << 20  # kept bytes faulted into the map at a time (they count in the RSS)
_NAME_FIELD, _SUM_FIELD, _MAGIC_FIELD = slice(0, 100), slice(148, 154), slice(257, 262)
_MAGIC = np.frombuffer(b"ustar", np.uint8)


@dataclass(frozen=True)
class CopyStats:
    samples_read: int  # up to the last kept one (the index has looked at every sample)
    samples_copied: int
    bytes_written: int
    method: str  # "index", "recorded" (the layout recorded at embed) or "per-sample"


def copy_kept(source: str, keep_positions: np.ndarray, out: BinaryIO,
              storage_options: dict | None = None,
              layout: Layout | None = None) -> CopyStats:  # fmt: skip
    """Write the samples of shard `source` at `keep_positions` to `out` as a complete tar
    (`storage_options` for a URL source). `layout`: what `record_layout` gave for this shard
    when it was read before (at embed), trusted for a local plain tar so that the shard is not
    indexed again; the header at the start of each copied run is checked against it.

    Raises CurateError when a kept sample is missing or now fails, or the shard no longer
    matches `layout` (the shard changed since it was embedded), and OSError naming the output
    when writing fails (a full disk)."""
    keep = np.unique(np.asarray(keep_positions, dtype=np.int64))
    with _opened(source, storage_options) as opened:
        if not isinstance(opened, _LocalTar):
            stats = copy_samples(opened, keep, out)
        elif layout is not None:
            stats = _copy_indexed(opened, layout, keep, out, "recorded")
        elif (found := index_shard(opened.mapped())) is not None:
            stats = _copy_indexed(opened, found, keep, out, "index")
        else:
            stats = _copy_mapped_samples(opened.mapped(), keep, out)
    if stats.samples_copied != len(keep):
        raise CurateError(
            f"shard {source} changed since it was embedded: "
            f"{len(keep) - stats.samples_copied} kept samples are missing"
        )
    return stats


def record_layout(source: str) -> Layout | None:
    """The layout of a local plain tar in the common form, for `copy_kept` to trust later;
    None for any other shard (compressed, remote, declined by the index)."""
    if _local_path(source) is None:
        return None
    with _opened(source, None) as opened:
        return index_shard(opened.mapped()) if isinstance(opened, _LocalTar) else None


class _LocalTar:
    """A local plain tar: its descriptor, and a memory map made the first time one is asked
    for (a copy of verbatim members alone needs none)."""

    def __init__(self, fd: int, name: str):
        self.fd, self.name = fd, name
        self._map: mmap.mmap | None = None

    def mapped(self) -> mmap.mmap:
        if self._map is None:
            self._map = mmap.mmap(self.fd, 0, access=mmap.ACCESS_READ)
        return self._map

    def populate(self, begins: list, ends: list) -> None:
        """Fault the pages of bytes [begin, end) into the map, one call per range, so that
        writing from the map does not stop at every page. Where the kernel cannot (before
        Linux 5.14), the pages fault in as they are read: slower, the same bytes. A range
        past the file's end (the shard cut short since it was checked) is a CurateError
        here, where reading it would kill the process (SIGBUS)."""
        mapped = self.mapped()
        for begin, end in zip(begins, ends, strict=True):
            low = begin - begin % mmap.PAGESIZE
            try:
                mapped.madvise(POPULATE_READ, low, end - low)
            except OSError as exc:
                if exc.errno == errno.EFAULT:
                    raise CurateError(
                        f"shard {self.name} changed while it was copied: it now ends before "
                        f"byte {end}"
                    ) from None
                return

    def release(self, begin: int, end: int) -> None:
        """Drop the map's pages of bytes [begin, end) from this process (`MADV_DONTNEED`; the
        page cache keeps them): what was copied no longer counts in its RSS, as a Dask
        worker's memory limit reads it."""
        low = begin - begin % mmap.PAGESIZE
        self.mapped().madvise(mmap.MADV_DONTNEED, low, end - low)

    def read_ahead(self, begins: list, ends: list) -> None:
        """Have the kernel start reading bytes [begin, end) from disk now, every range at
        once: the header checks and range copies then find reads under way, not one at a
        time (from disk, keep half: about 1.7x faster)."""
        if hasattr(os, "posix_fadvise"):
            for begin, end in zip(begins, ends, strict=True):
                os.posix_fadvise(self.fd, begin, end - begin, os.POSIX_FADV_WILLNEED)

    def close(self) -> None:
        """Unmap now, unless a view of the map is still alive elsewhere: a dask worker's
        sampling profiler holds finished frames, with their numpy views, a moment longer.
        Then the map is unmapped when its last view goes (it is read-only: nothing is lost)."""
        if self._map is not None:
            with contextlib.suppress(BufferError):
                self._map.close()
            self._map = None


@contextmanager
def _opened(source: str, storage_options: dict | None) -> Iterator[BinaryIO | _LocalTar]:
    """A local plain tar as a `_LocalTar`, anything else as a stream. On error the locals of
    the frames it passed through are cleared, so no view keeps the map from closing."""
    path = _local_path(source)
    if path is None:
        with open_shard(source, storage_options) as stream:
            yield stream
        return
    with open(path, "rb") as f:
        if compression_of(f.read(MAGIC_BYTES)) is not None or os.fstat(f.fileno()).st_size == 0:
            f.seek(0)
            yield f
            return
        local = _LocalTar(f.fileno(), source)
        try:
            yield local
        except BaseException as exc:
            _clear_frames(exc)
            raise
        finally:
            local.close()


def _local_path(source: str) -> str | None:
    """The path of a shard on this machine (a path, or a `file://` URL: both give the same
    bytes); None for any other URL."""
    if source.startswith(_FILE_URL):
        return source[len(_FILE_URL) :]
    return None if is_url(source) else source


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


def _copy_indexed(
    local: _LocalTar, layout: Layout, keep: np.ndarray, out: BinaryIO, method: str
) -> CopyStats:
    """Verbatim runs as byte ranges, our headers for the other members with their data as
    views of the map; a recorded layout is checked at the start of every run of kept members
    before that run is written."""
    present = keep[(keep >= 0) & (keep < layout.samples)]
    kept = np.zeros(layout.samples, dtype=bool)
    kept[present] = True
    members = np.flatnonzero(kept[layout.sample])
    starts, ends = layout.start[members], layout.end[members]
    firsts = np.flatnonzero(np.append(len(members) > 0, starts[1:] != ends[:-1]))  # runs
    begins, finals = starts[firsts], np.append(ends[firsts[1:] - 1], ends[-1:])
    check = method == "recorded"
    sink = _Sink(out, local, _in_page_cache(local.fd, _spread(begins, finals)))
    if check and len(members):  # the map's length where it is read: a view past it is short
        size = len(local.mapped()) if sink.by_map else os.fstat(local.fd).st_size
        if size < finals[-1]:
            raise CurateError(
                f"shard {local.name} changed since it was embedded: it ends before its kept members"
            )
    if not sink.by_map:
        local.read_ahead(begins.tolist(), finals.tolist())
        if check:
            _check_runs(local, layout, members[firsts], by_map=False)
    view = memoryview(local.mapped()) if sink.by_map or not layout.verbatim[members].all() else None
    bounds = np.append(firsts, len(members))  # where each run's members start, then the end
    try:
        for low, high in _windows(finals - begins):
            if sink.by_map:  # fault in, check, write, let go: RSS grows by a window at most
                local.populate(begins[low:high].tolist(), finals[low:high].tolist())
                if check:
                    _check_runs(local, layout, members[firsts[low:high]], by_map=True)
            for first in range(bounds[low], bounds[high], _CHUNK):
                _write_members(
                    sink, view, layout, members[first : min(first + _CHUNK, bounds[high])]
                )
            if sink.by_map:
                sink.flush()
                local.release(int(begins[low]), int(finals[high - 1]))
        end = bytes(2 * BLOCK + -(sink.bytes_written + 2 * BLOCK) % RECORD)
        sink.extend([end], len(end))
        sink.flush()
    finally:
        sink.discard()
        if view is not None:
            view.release()
    read = int(present[-1]) + 1 if len(present) else 0
    return CopyStats(read, len(present), sink.bytes_written, method)


def _windows(lengths: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive runs [low, high) in order, about `_WINDOW` bytes of `lengths` each: a window
    ends with the run that reaches the next multiple of `_WINDOW` (a longer run stands alone)."""
    if not len(lengths):
        return []
    total = np.cumsum(lengths)
    reached = np.searchsorted(total, np.arange(_WINDOW, int(total[-1]), _WINDOW), side="left")
    cuts = np.unique(np.concatenate([[0], reached + 1, [len(lengths)]])).tolist()
    return list(itertools.pairwise(cuts))


def _spread(begins: np.ndarray, ends: np.ndarray) -> list:
    """`_PROBES` offsets spread evenly over the bytes of the ranges [begin, end)."""
    if not len(begins):
        return []
    lengths = ends - begins
    total = np.cumsum(lengths)
    targets = (np.arange(_PROBES) * 2 + 1) * int(total[-1]) // (2 * _PROBES)
    run = np.searchsorted(total, targets, side="right")
    return (begins[run] + targets - (total[run] - lengths[run])).tolist()


def _in_page_cache(fd: int, offsets: list) -> bool:
    """Whether a non-blocking read of one byte at every offset succeeds: the shard is then
    most likely in the page cache. (Any miss says no: faulting a map from disk is slower
    than the kernel's range copy by more than that copy is slower from the cache.)"""
    if not offsets or not hasattr(os, "RWF_NOWAIT"):
        return False
    probe = [bytearray(1)]
    for offset in offsets:
        try:
            if os.preadv(fd, probe, offset, os.RWF_NOWAIT) != 1:
                return False
        except OSError:  # EAGAIN: on disk; EOPNOTSUPP: the filesystem cannot tell
            return False
    return True


def _check_runs(local: _LocalTar, layout: Layout, firsts: np.ndarray, by_map: bool) -> None:
    """The ustar header of the first member of every run of consecutive kept members must
    still be the one recorded (magic, name, stored checksum): a shard replaced with one of
    the same size and mtime is refused, never copied as garbage. Read from the populated map,
    else one pread per run."""
    at = layout.header[firsts]
    blocks = _header_blocks(local, at, by_map)
    names = blocks[:, _NAME_FIELD]
    names = np.where(np.cumsum(names == 0, axis=1) > 0, 0, names)  # NUL after the name
    shifts = np.arange(15, -1, -3)
    sums = ((layout.checksum[firsts, None] >> shifts) & 7).astype(np.uint8) + ord("0")
    bad = np.flatnonzero(
        (blocks[:, _SUM_FIELD] != sums).any(axis=1)
        | (blocks[:, _MAGIC_FIELD] != _MAGIC).any(axis=1)
        | (names != layout.names[firsts]).any(axis=1)
    )
    if len(bad):
        name = layout.names[firsts[bad[0]]].tobytes().rstrip(b"\0").decode("ascii")
        raise CurateError(
            f"shard {local.name} changed since it was embedded: the member at byte "
            f"{at[bad[0]]} is no longer {name!r}; run the same command again to prune what "
            "it holds now"
        )


def _header_blocks(local: _LocalTar, at: np.ndarray, by_map: bool) -> np.ndarray:
    """The BLOCK bytes at each offset in `at`, a row each (the caller checked that the shard
    reaches past them)."""
    if by_map:
        return np.frombuffer(local.mapped(), np.uint8)[at[:, None] + np.arange(BLOCK)]
    data = b"".join(os.pread(local.fd, BLOCK, offset) for offset in at.tolist())
    if len(data) != len(at) * BLOCK:
        raise CurateError(
            f"shard {local.name} changed since it was embedded: it ends before its kept members"
        )
    return np.frombuffer(data, np.uint8).reshape(-1, BLOCK)


def _write_members(
    sink: _Sink, view: memoryview | None, layout: Layout, members: np.ndarray
) -> None:
    """One chunk of kept members, in order, as pieces of output: one byte range of the input
    for each run of consecutive verbatim members; for every other member our header, a view
    of its data, its padding. Headers live in slots of `_slots`: BLOCK bytes of zeros, then
    the header, so that a header and the padding of the member before it are one buffer."""
    verbatim = layout.verbatim[members]
    starts, ends = layout.start[members], layout.end[members]
    joined = np.zeros(len(members), dtype=bool)
    joined[1:] = verbatim[1:] & verbatim[:-1] & (starts[1:] == ends[:-1])
    first = np.flatnonzero(~joined)  # the member each piece starts with
    last = np.append(first[1:] - 1, len(members) - 1)
    raw = verbatim[first]
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
    runs_begin, runs_end = starts[first[raw]].tolist(), ends[last[raw]].tolist()
    ours_at = np.concatenate([at[~raw], at[~raw][alone] + 2])
    ours_begin = np.concatenate([slot + BLOCK - carried, slot[alone]])
    ours_end = np.concatenate([slot + 2 * BLOCK, slot[alone] + pad[alone]])
    pieces = sink.input_ranges(view, runs_begin, runs_end)
    if len(rewrite):
        slots = memoryview(_slots(layout, members[rewrite]))
        pieces += map(view.__getitem__, map(slice, data.tolist(), (data + size).tolist()))
        pieces += map(slots.__getitem__, map(slice, ours_begin.tolist(), ours_end.tolist()))
    order = np.argsort(np.concatenate([at[raw], at[~raw] + 1, ours_at]), kind="stable").tolist()
    nbytes = sum(runs_end) - sum(runs_begin) + int(size.sum() + (ours_end - ours_begin).sum())
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


class _Range(NamedTuple):
    """Bytes [begin, end) of the input, for the kernel to copy to the output."""

    begin: int
    end: int


class _Sink:
    """Pieces written in order and in batches: buffers with `os.writev` on a plain local file
    (the kernel copies straight from them), else `write` of about 4 MB joined at a time; byte
    ranges of the input as views of the map when the input is cached (`cached`) or the output
    is no plain local file, else with `os.copy_file_range` (or `sendfile`, or reads)."""

    def __init__(self, out: BinaryIO, source: _LocalTar, cached: bool):
        self._out = out
        self._source = source
        self.fd = _plain_descriptor(out)
        self.by_map = self.fd is None or cached  # input ranges as views of the map
        self._bufs: list = []
        self._copy = _copy_file_range
        self.bytes_written = 0  # gathered so far, written or not

    def input_ranges(self, view: memoryview | None, begins: list, ends: list) -> list:
        """Pieces for input bytes [begin, end): views of the map, or ranges for the kernel
        to copy."""
        if not self.by_map:
            return list(map(_Range, begins, ends))
        return list(map(view.__getitem__, map(slice, begins, ends)))

    def extend(self, bufs: list, nbytes: int) -> None:
        """Gather `bufs`, `nbytes` long in all; write once a batch is full."""
        self._bufs.extend(bufs)
        self.bytes_written += nbytes
        if len(self._bufs) >= _MAX_BUFFERS:
            self.flush()

    def flush(self) -> None:
        try:
            if self.fd is None:
                _write_joined(self._out, self._bufs)
            else:
                self._write_pieces()
        except OSError as exc:
            raise _named(exc, self._out) from None
        finally:
            self.discard()

    def _write_pieces(self) -> None:
        batch: list = []
        for piece in self._bufs:
            if not isinstance(piece, _Range):
                batch.append(piece)
                continue
            _writev_all(self.fd, batch)
            batch = []
            self._copy_range(*piece)
        _writev_all(self.fd, batch)

    def _copy_range(self, begin: int, end: int) -> None:
        """Every byte of the range, however many calls it takes; the next way down when the
        filesystems do not support one."""
        while begin < end:
            try:
                done = self._copy(self._source.fd, self.fd, begin, min(end - begin, _RANGE_BATCH))
            except OSError as exc:
                if exc.errno not in _NO_RANGE_COPY or self._copy is _read_and_write:
                    raise
                self._copy = _sendfile if self._copy is _copy_file_range else _read_and_write
                continue
            if done == 0:
                raise CurateError(
                    f"shard {self._source.name} changed since it was embedded: "
                    f"it ends at byte {begin}, inside a kept member"
                )
            begin += done

    def discard(self) -> None:
        """Let go of the gathered buffers (views into the map) without writing them."""
        self._bufs.clear()


def _copy_file_range(source: int, out: int, offset: int, count: int) -> int:
    return os.copy_file_range(source, out, count, offset)


def _sendfile(source: int, out: int, offset: int, count: int) -> int:
    return os.sendfile(out, source, offset, count)


def _read_and_write(source: int, out: int, offset: int, count: int) -> int:
    data = os.pread(source, min(count, _WRITE_BATCH), offset)
    _writev_all(out, [data])
    return len(data)


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
