"""DataComp's uid keep-lists: the format its resharder reads, written beside the pruned shards.

A keep-list is a NumPy array of dtype `u8,u8` (each 128-bit uid, given as 32 hex digits in the
samples' json, split into two unsigned 64-bit halves), in lexicographic order, saved as .npy.
It is written in bounded memory: each shard's kept uids are sorted once, then the list is
assembled one bucket of the first byte at a time."""

from __future__ import annotations

import numpy as np

from curation.storage import Folder

UID_DTYPE = np.dtype("u8,u8")
BUCKETS = 256


def uid_array(uids: list[str]) -> np.ndarray:
    """Hex uids as a sorted `u8,u8` array (a malformed uid is a ValueError)."""
    found = np.array([(int(u[:16], 16), int(u[16:32], 16)) for u in uids], dtype=UID_DTYPE)
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
