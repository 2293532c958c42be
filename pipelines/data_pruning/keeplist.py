"""DataComp's uid keep-lists: the format its resharder reads, written beside the pruned shards
and read as a selection (`--keep-list`).

A keep-list is a NumPy array of dtype `u8,u8` (each 128-bit uid, given as 32 hex digits in the
samples' json, split into two unsigned 64-bit halves), in lexicographic order, saved as .npy.
It is written in bounded memory: each shard's kept uids are sorted once, then the list is
assembled one bucket of the first byte at a time.

Read, a keep-list is what DataComp's resharder accepts (a `u8,u8` .npy, or the same pairs as a
raw file without a header) and also a .npy of hex uid strings; an unsorted list is sorted."""

from __future__ import annotations

import io

import numpy as np

from curation.errors import CurateError
from curation.storage import Folder, filesystem
from pipelines.data_pruning.rows import UID

UID_DTYPE = np.dtype("u8,u8")
BUCKETS = 256
MAGIC = b"\x93NUMPY"


def uid_pairs(uids: list[str]) -> np.ndarray:
    """Hex uids as `u8,u8` pairs, in the order given (a malformed uid is a ValueError)."""
    return np.array([(int(u[:16], 16), int(u[16:32], 16)) for u in uids], dtype=UID_DTYPE)


def uid_array(uids: list[str]) -> np.ndarray:
    """Hex uids as a sorted `u8,u8` array (a malformed uid is a ValueError)."""
    found = uid_pairs(uids)
    found.sort()
    return found


def write_keep_list(out: Folder, parts: list[np.ndarray], name: str) -> int:
    """Merge sorted per-shard arrays into one sorted .npy in `out`; returns its length."""
    total = sum(len(p) for p in parts)
    header = {"descr": np.lib.format.dtype_to_descr(UID_DTYPE), "fortran_order": False,
              "shape": (total,)}  # fmt: skip
    starts = np.arange(BUCKETS, dtype=np.uint64) << np.uint64(56)
    bounds = [np.append(np.searchsorted(p["f0"], starts), len(p)) for p in parts]
    with out.open_atomic(name) as f:
        np.lib.format.write_array_header_1_0(f, header)
        for b in range(BUCKETS):
            chunk = [p[at[b] : at[b + 1]] for p, at in zip(parts, bounds, strict=True)]
            merged = np.concatenate(chunk) if chunk else np.zeros(0, UID_DTYPE)
            merged.sort()
            f.write(merged.tobytes())
    return total


def _is_sorted(pairs: np.ndarray) -> bool:
    high, low = pairs["f0"], pairs["f1"]
    after = (high[1:] > high[:-1]) | ((high[1:] == high[:-1]) & (low[1:] >= low[:-1]))
    return bool(np.all(after))


def _not_a_keep_list(where: str, found: str) -> CurateError:
    return CurateError(f"--keep-list {where}: not a DataComp keep-list (a .npy of dtype u8,u8 "
                       f"as its resharder reads, or of 32-digit hex uids): {found}")  # fmt: skip


def _pairs(array: np.ndarray, where: str) -> np.ndarray:
    """A loaded .npy as uid pairs: `u8,u8` as it is, hex strings converted."""
    if array.dtype == UID_DTYPE and array.ndim == 1:
        return array
    if array.ndim == 1 and array.dtype.kind in "US":
        texts = array.astype(str).tolist()
        if all(UID.fullmatch(t) for t in texts):
            return uid_pairs(texts)
        bad = next(t for t in texts if not UID.fullmatch(t))
        raise _not_a_keep_list(where, f"{bad!r} is not a 32-digit hex uid")
    raise _not_a_keep_list(where, f"it holds {array.dtype} of shape {array.shape}")


def _load(path: str, storage_options: dict) -> np.ndarray:
    """The file's pairs, memory-mapped when local (a DataComp list can be gigabytes)."""
    fs, local = filesystem(path, storage_options)
    if not fs.exists(local) or fs.isdir(local):
        raise CurateError(f"--keep-list {path}: no such file")
    with fs.open(local, "rb") as f:
        magic = f.read(len(MAGIC))
    mapped = "://" not in path
    try:
        if magic == MAGIC:
            array = (np.load(path, mmap_mode="r", allow_pickle=False) if mapped else
                     np.load(io.BytesIO(fs.cat_file(local)), allow_pickle=False))  # fmt: skip
            return _pairs(array, path)
    except ValueError as exc:
        raise _not_a_keep_list(path, str(exc)) from None
    size = fs.size(local)
    if size % UID_DTYPE.itemsize:
        raise _not_a_keep_list(path, f"no .npy header, and {size} bytes is not a whole number "
                                     "of 16-byte uids")  # fmt: skip
    if not size:
        return np.zeros(0, UID_DTYPE)
    return (np.memmap(path, UID_DTYPE, mode="r") if mapped else
            np.frombuffer(fs.cat_file(local), UID_DTYPE))  # fmt: skip


def read_keep_list(path: str, storage_options: dict | None = None) -> np.ndarray:
    """The keep-list at `path`, sorted (a user error naming the file when it is not one)."""
    pairs = _load(path, storage_options or {})
    return pairs if _is_sorted(pairs) else np.sort(pairs)


def listed(keep: np.ndarray, uids: np.ndarray) -> np.ndarray:
    """Which of `uids` (u8,u8 pairs) the sorted keep-list holds."""
    if not len(keep):
        return np.zeros(len(uids), bool)
    at = np.minimum(np.searchsorted(keep, uids), len(keep) - 1)
    return keep[at] == uids
