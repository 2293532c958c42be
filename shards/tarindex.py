"""Where each member of a memory-mapped plain tar lies, found by a lean walk over its headers,
for shards in the common form, so that the reshard copy needs no per-member reader.

The common form is what webdataset, img2dataset, `tarfile` and curate write: regular members,
each perhaps after one pax header whose records change nothing the reader reports (webdataset
writes one with `mtime` for every member), directories, then the end. Names are printable
ASCII in the 100-byte name field (no ustar prefix) and every one has a webdataset key; and
nothing in the shard calls for a rule of `shards.grouping` or a limit of `shards.members`: no
repeated key or suffix (in any case), no `..`, no `__`, no member over the smallest size limit.
`index_shard` returns None for anything else (the caller then reads the shard with
`shards.tario`); where it returns a layout, its samples are those `iter_samples` yields.

The walk takes one Python step per header (type flag and size); everything else (checksums,
field formats, names, keys, sample boundaries, whether a member is already in our form) is
numpy over the gathered header blocks, in chunks of members.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shards.members import TEXT_LIMIT
from shards.tarheader import BLOCK, ZERO_BLOCK, PaxError, parse_pax, relevant
from shards.tario import ustar_header

CHUNK = 8192  # members per vectorised step
_NAME = 100
_REG, _PAX, _DIR = ord("0"), ord("x"), ord("5")
_TEMPLATE = np.frombuffer(ustar_header("", 0), np.uint8).copy()
_TEMPLATE[148:156] = ord(" ")  # the checksum is summed over spaces in its field
_TEMPLATE_SUM = int(_TEMPLATE.sum()) - int(_TEMPLATE[124:135].sum())  # without name and size
_MAGIC_TAIL = np.frombuffer(b"star", np.uint8)
_HASH = np.random.default_rng(0x7A12).integers(1, 2**63, _NAME, dtype=np.uint64) | np.uint64(1)


@dataclass(frozen=True)
class Layout:
    """The regular members of a shard in archive order, and the samples they form."""

    start: np.ndarray  # int64: offset of the member's first header (its pax header, if any)
    header: np.ndarray  # int64: offset of its ustar header
    size: np.ndarray  # int64: data bytes
    sample: np.ndarray  # int64: position of its sample (non-decreasing)
    normal: np.ndarray  # bool: its input bytes are exactly what TarWriter writes for it
    names: np.ndarray  # uint8 rows of 100: its name field, NUL after the name
    samples: int

    @property
    def end(self) -> np.ndarray:
        """Offset just past each member's padded data."""
        return self.header + BLOCK + -(-self.size // BLOCK) * BLOCK


@dataclass
class _Walked:
    """Every header of the shard in archive order: regular members, pax headers (each just
    before its member), directories."""

    offset: np.ndarray  # int64
    flag: np.ndarray  # uint8
    size: np.ndarray  # int64: the size field (directories: whatever it says, no data follow)

    def valid(self) -> bool:
        """Every pax header is followed by a regular member."""
        after_pax = np.flatnonzero(self.flag == _PAX) + 1
        return not len(after_pax) or (
            after_pax[-1] < len(self.flag) and bool((self.flag[after_pax] == _REG).all())
        )


def _chain(blocks: np.ndarray, length: int) -> _Walked | None:
    """The headers found all at once: every block with the ustar magic is a candidate, and the
    candidates are the headers when each one's size leads exactly to the next, the last to the
    end. None when they do not (a v7 tar, a tar stored as a member, garbage after the end):
    then walk header by header."""
    candidates = np.flatnonzero(blocks[:, 257] == ord("u"))
    fields = blocks[candidates, 124:263]  # size to magic: one gather, three cache lines
    real = (fields[:, 134:138] == _MAGIC_TAIL).all(axis=1)
    candidates, fields = candidates[real], fields[real]
    if not len(candidates) or candidates[0] != 0:
        return None
    sizes = _octal(fields[:, :11])
    flags = fields[:, 32]
    if sizes is None or not np.isin(flags, (_REG, _PAX, _DIR)).all():
        return None
    after = candidates + 1 + np.where(flags == _DIR, 0, -(-sizes // BLOCK))
    if not np.array_equal(after[:-1], candidates[1:]):
        return None
    end = int(after[-1])
    if end * BLOCK != length and (end >= len(blocks) or blocks[end].any()):
        return None
    return _Walked(candidates * BLOCK, flags, sizes)


def _walk(mm) -> _Walked | None:
    """Header by header: one step each, reading the type flag, and the size where data follow."""
    offsets, flags, sizes = [], [], []
    n, p = len(mm), 0
    try:
        while p + BLOCK <= n:
            flag = mm[p + 156]
            if flag in (_REG, _PAX):
                size = int(mm[p + 124 : p + 135], 8)
                if size < 0:
                    return None
            elif flag == _DIR:
                size = 0  # `tarfile` reads no data after a directory, whatever the field says
            elif flag == 0 and mm[p : p + BLOCK] == ZERO_BLOCK:
                break
            else:
                return None
            offsets.append(p)
            flags.append(flag)
            sizes.append(size)
            p += BLOCK + (size + BLOCK - 1) // BLOCK * BLOCK
        else:
            if p != n:
                return None
    except ValueError:  # a size field that is not octal
        return None
    return _Walked(
        np.array(offsets, dtype=np.int64),
        np.array(flags, dtype=np.uint8),
        np.array(sizes, dtype=np.int64),
    )


def _octal(fields: np.ndarray) -> np.ndarray | None:
    """Values of fixed-width octal fields (one row each); None if any is not all digits."""
    digits = fields - np.uint8(ord("0"))  # below "0" wraps past 7
    if (digits > 7).any():
        return None
    return digits @ (8 ** np.arange(fields.shape[1] - 1, -1, -1, dtype=np.int64))


def _octal_digits(values: np.ndarray, width: int) -> np.ndarray:
    shifts = 3 * np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((values[:, None] >> shifts) & 7).astype(np.uint8) + np.uint8(ord("0"))


def _headers_ok(rows: np.ndarray, walked: _Walked, part: slice) -> bool:
    """Checksums right, no ustar prefix, and the size and checksum fields in the form
    `tarfile` writes them (11 octal digits and NUL; 6 digits, NUL, space), the size the one
    the walk read (directories aside: no data follow them)."""
    stored = _octal(rows[:, 148:154])
    size = _octal(rows[:, 124:135])
    if stored is None or size is None:
        return False
    has_data = walked.flag[part] != _DIR
    if not np.array_equal(size[has_data], walked.size[part][has_data]):
        return False
    fields = np.stack([rows[:, 135], rows[:, 154], rows[:, 155] - np.uint8(32)])
    if fields.any() or rows[:, 345:500].any():
        return False
    wide = np.uint16 if rows.max(initial=0) < 128 else np.uint32  # 512 * 127 fits 16 bits
    sums = rows.sum(axis=1, dtype=wide) - rows[:, 148:156].sum(axis=1, dtype=wide)
    return bool(np.array_equal(sums.astype(np.int64) + 8 * 32, stored))


def ustar_headers(names: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """`ustar_header(name, size)` for many members at once: one 512-byte row each, from
    NUL-padded name fields (rows of 100 bytes) and sizes below 8 GiB."""
    rows = np.empty((len(sizes), BLOCK), dtype=np.uint8)
    rows[:] = _TEMPLATE
    rows[:, :_NAME] = names
    digits = _octal_digits(sizes, 11)
    rows[:, 124:135] = digits
    checksum = (
        _TEMPLATE_SUM + names.sum(axis=1, dtype=np.int64) + digits.sum(axis=1, dtype=np.int64)
    )
    rows[:, 148:154] = _octal_digits(checksum, 6)
    rows[:, 154] = 0
    return rows


def _paxes_harmless(blocks: np.ndarray, offsets: np.ndarray, sizes: np.ndarray, mm) -> bool:
    """Every pax header is well formed and has no path, size or sparse record. The common one,
    a single `NN mtime=...` record in one block, is checked in bulk; others record by record."""
    bulk = (sizes >= 10) & (sizes <= BLOCK)
    n = sizes[bulk]
    width = int(n.max()) if len(n) else 10
    data = blocks[offsets[bulk] // BLOCK + 1, :width]
    digits = data[:, :2].astype(np.int64) - ord("0")
    inside = np.arange(width) < (n - 1)[:, None]
    common = (
        ((digits >= 0) & (digits <= 9)).all(axis=1)
        & (digits @ np.array([10, 1]) == n)
        & (data[:, 2:9] == np.frombuffer(b" mtime=", np.uint8)).all(axis=1)
        & (data[np.arange(len(n)), n - 1] == ord("\n"))
        & ~((data == ord("\n")) & inside).any(axis=1)
    )
    rest = np.concatenate([offsets[bulk][~common], offsets[~bulk]])
    rest_sizes = np.concatenate([n[~common], sizes[~bulk]])
    for p, size in zip(rest.tolist(), rest_sizes.tolist(), strict=True):
        try:
            if relevant(parse_pax(mm[p + BLOCK : p + BLOCK + size])):
                return False
        except PaxError:
            return False
    return True


@dataclass
class _Names:
    """What the index needs from a chunk of name fields."""

    fields: np.ndarray  # the name fields, NUL after the name (as TarWriter writes them)
    keys: np.ndarray  # the name fields cut at the key
    key_hash: np.ndarray  # uint64, of `keys`
    lower_hash: np.ndarray  # uint64, of the lower-cased names


def _names(fields: np.ndarray) -> _Names | None:
    """None when a name is not in the common form (see the module docstring). Works on the
    columns up to the longest name only: names are short."""
    nul = fields == 0
    length = np.where(nul.any(axis=1), nul.argmax(axis=1), _NAME)
    width = int(length.max())
    if not (length > 0).all():
        return None
    part = fields[:, :width]
    inside = np.arange(width) < length[:, None]
    if ((part[:, 0] == ord("/")) | (((part < 32) | (part > 126)) & inside).any(axis=1)).any():
        return None
    doubled = inside[:, 1:] & (part[:, 1:] == part[:, :-1])
    if (doubled & ((part[:, 1:] == ord(".")) | (part[:, 1:] == ord("_")))).any():
        return None  # "..", "__"
    slash = (part == ord("/")) & inside
    last_slash = np.where(slash.any(axis=1), width - 1 - slash[:, ::-1].argmax(axis=1), -1)
    dots = (part == ord(".")) & inside & (np.arange(width) > last_slash[:, None])
    dot = dots.argmax(axis=1)
    if not dots.any(axis=1).all() or (dot == last_slash + 1).any():
        return None  # a name webdataset gives no key
    clean = np.zeros_like(fields)
    clean[:, :width] = np.where(inside, part, 0)
    keys = np.where(np.arange(_NAME) < dot[:, None], clean, 0).astype(np.uint8)
    lower = clean[:, :width] + ((part >= ord("A")) & (part <= ord("Z")) & inside) * np.uint8(32)
    return _Names(clean, keys, keys[:, :width] @ _HASH[:width], lower @ _HASH[:width])


def _pad_is_zero(blocks: np.ndarray, header: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Whether the bytes after each member's data, up to its block end, are all NUL."""
    tail = size % BLOCK
    result = np.ones(len(size), dtype=bool)
    partial = np.flatnonzero(tail)
    if len(partial):
        last = blocks[(header[partial] + BLOCK + size[partial] - tail[partial]) // BLOCK] != 0
        last_byte = BLOCK - 1 - last[:, ::-1].argmax(axis=1)  # of the last nonzero byte
        result[partial] = last_byte < tail[partial]
    return result


def _in_our_form(rows: np.ndarray, names: np.ndarray) -> np.ndarray:
    """Whether each header is `ustar_header` of its name and size. The headers passed
    `_headers_ok` (size and checksum fields in our format, checksum right), so it is enough
    that every other byte is ours: the name field, and the template elsewhere."""
    ours = (rows[:, :_NAME] == names).all(axis=1)
    for field in (slice(100, 124), slice(136, 148), slice(156, BLOCK)):
        ours &= (rows[:, field] == _TEMPLATE[field]).all(axis=1)
    return ours


def index_shard(mm) -> Layout | None:
    """The layout of a mapped plain tar in the common form; None for any other shard."""
    whole = np.frombuffer(mm, np.uint8)
    blocks = whole[: len(whole) // BLOCK * BLOCK].reshape(-1, BLOCK)
    walked = _chain(blocks, len(mm)) or _walk(mm)
    if walked is None or not walked.valid():
        return None
    regular = walked.flag == _REG
    if regular.any() and walked.size[regular].max() > TEXT_LIMIT:
        return None
    is_pax = walked.flag == _PAX
    if not _paxes_harmless(blocks, walked.offset[is_pax], walked.size[is_pax], mm):
        return None
    return _members(blocks, walked)


def _members(blocks: np.ndarray, walked: _Walked) -> Layout | None:
    """Check every header, a chunk at a time, and lay out the regular members."""
    regular = walked.flag == _REG
    header, size = walked.offset[regular], walked.size[regular]
    pax = np.full(len(walked.flag), -1, dtype=np.int64)
    after_pax = np.flatnonzero(walked.flag == _PAX) + 1
    pax[after_pax] = walked.offset[after_pax - 1]
    pax = pax[regular]
    member_of_header = np.cumsum(regular) - 1
    fields = np.empty((len(size), _NAME), dtype=np.uint8)
    new_sample = np.empty(len(size), dtype=bool)
    normal = np.empty(len(size), dtype=bool)
    hashes = []
    previous = np.zeros((0, _NAME), dtype=np.uint8)  # the last key of the chunk before
    for first in range(0, len(walked.flag), CHUNK):
        part = slice(first, first + CHUNK)
        rows = blocks[walked.offset[part] // BLOCK]
        if not _headers_ok(rows, walked, part):
            return None
        chosen = regular[part]
        if not chosen.any():
            continue
        members = member_of_header[part][chosen]
        rows = rows[chosen]
        names = _names(rows[:, :_NAME])
        if names is None:
            return None
        keys = np.concatenate([previous, names.keys])
        starts = np.concatenate([[True], (keys[1:] != keys[:-1]).any(axis=1)])[len(previous) :]
        previous = names.keys[-1:]
        new_sample[members] = starts
        fields[members] = names.fields
        hashes += [names.key_hash[starts], names.lower_hash]
        normal[members] = (pax[members] < 0) & _in_our_form(rows, names.fields)
    normal[normal] = _pad_is_zero(blocks, header[normal], size[normal])
    if _repeats(hashes[0::2]) or _repeats(hashes[1::2]):
        return None  # a key, or a lower-cased name, occurs twice
    sample = np.cumsum(new_sample) - 1
    start = np.where(pax >= 0, pax, header)
    samples = int(sample[-1]) + 1 if len(sample) else 0
    return Layout(start, header, size, sample, normal, fields, samples)


def _repeats(hashes: list[np.ndarray]) -> bool:
    joined = np.sort(np.concatenate(hashes)) if hashes else np.zeros(0, np.uint64)
    return bool((joined[1:] == joined[:-1]).any())
