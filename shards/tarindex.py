"""Where each member of a memory-mapped plain tar lies, found without a per-member Python step,
for shards in the common form, so that the reshard copy needs no per-member reader.

The common form is what webdataset, img2dataset, `tarfile` and curate write: regular members,
each perhaps after one pax header whose records change nothing the reader reports (webdataset
writes one with `mtime` for every member), directories, then the end. Names are printable
ASCII in the 100-byte name field (no ustar prefix) and every one has a webdataset key; and
nothing in the shard calls for a rule of `shards.grouping` or a limit of `shards.members`: no
repeated key or suffix (in any case), no `..`, no `__`, no member over the smallest size limit.
`index_shard` returns None for anything else (the caller then reads the shard with
`shards.tario`); where it returns a layout, its samples are those `iter_samples` yields.

How: every block with the ustar magic is taken for a header; they are the headers when each
one's size leads exactly to the next and the last to the end (a tar stored inside a member,
a v7 tar or garbage after the end break that chain, and the shard goes to the reader). Then
checksums, field formats, names, keys, sample boundaries and which members may be copied
verbatim are numpy over the gathered header blocks, a chunk at a time, each block read once.

The verbatim rule (the one place it lives; `shards.copier` copies such members byte for byte,
pax header, ustar header, data and padding, and gives every other member our header): a member
of a shard the index takes is verbatim when
- its ustar header's number fields are in the form `tarfile` and GNU tar write them (mode,
  uid, gid: 7 octal digits and NUL; mtime: 11 and NUL; device numbers so, or all NUL), and
  the mode has no setuid, setgid or sticky bit (the name, type, checksum, size and prefix
  the index already requires);
- the bytes after its data up to the next 512-byte boundary are NUL;
- it has no pax header, or one whose name field is printable ASCII, neither absolute nor with
  `..`, whose number fields pass the same check, whose padding is NUL, and whose records are all in
  `VERBATIM_KEYWORDS`: `mtime`, `atime`, `ctime` with a value of digits and at most one `.`,
  `path` equal to the ustar name, `size` equal to the ustar size. A pax record outside that
  list (`comment`, `linkpath`, `hdrcharset`, `SCHILY.*`, `uname`...) is kept out of the output
  by normalising the member; a `path` or `size` that differs from the ustar field, or a
  `GNU.sparse.*` record, changes what the reader reports, and the index declines the shard.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field

import numpy as np

from shards.members import TEXT_LIMIT
from shards.tarheader import (
    BLOCK,
    PATH_KEYWORD,
    SIZE_KEYWORD,
    SPARSE_PREFIX,
    PaxError,
    parse_pax,
)
from shards.tario import ustar_header

CHUNK = 8192  # headers per vectorised step
_NAME = 100
_REG, _PAX, _DIR = ord("0"), ord("x"), ord("5")
_MAGIC = np.frombuffer(b"ustar", np.uint8)
_TEMPLATE = np.frombuffer(ustar_header("", 0), np.uint8).copy()
_TEMPLATE[148:156] = ord(" ")  # the checksum is summed over spaces in its field
_TEMPLATE_SUM = int(_TEMPLATE.sum()) - int(_TEMPLATE[124:135].sum())  # without name and size
_HASH = np.random.default_rng(0x7A12).integers(1, 2**63, _NAME, dtype=np.uint64) | np.uint64(1)
_MTIME_RECORD = np.frombuffer(b" mtime=", np.uint8)
_TIME_KEYWORDS = (b"mtime", b"atime", b"ctime")
VERBATIM_KEYWORDS = (*_TIME_KEYWORDS, PATH_KEYWORD, SIZE_KEYWORD)
_DIGITS = np.zeros(256, dtype=bool)
_DIGITS[ord("0") : ord("9") + 1] = True


@dataclass(frozen=True)
class Layout:
    """The regular members of a shard in archive order, and the samples they form."""

    start: np.ndarray  # int64: offset of the member's first header (its pax header, if any)
    header: np.ndarray  # int64: offset of its ustar header
    size: np.ndarray  # int64: data bytes
    sample: np.ndarray  # int64: position of its sample (non-decreasing)
    verbatim: np.ndarray  # bool: copied as its input bytes (the rule: module docstring)
    names: np.ndarray  # uint8 rows of 100: its name field, NUL after the name
    checksum: np.ndarray  # int64: its ustar header's stored checksum
    samples: int

    @property
    def end(self) -> np.ndarray:
        """Offset just past each member's padded data."""
        return self.header + BLOCK + -(-self.size // BLOCK) * BLOCK

    def records(self) -> np.ndarray:
        """The layout as one structured array, a row per member, to be stored (read back in
        one step: `from_records`); the name fields cut after the longest name."""
        width = int((self.names != 0).any(axis=0).nonzero()[0].max(initial=0)) + 1
        numbers = [(name, "<i8") for name in _STORED]
        records = np.empty(len(self.header), [*numbers, ("verbatim", "?"), ("names", "u1", width)])
        for name in (*_STORED, "verbatim"):
            records[name] = getattr(self, name)
        records["names"] = self.names[:, :width]
        return records

    @classmethod
    def from_records(cls, records: np.ndarray) -> Layout:
        """The layout `records()` gave."""
        names = np.zeros((len(records), _NAME), dtype=np.uint8)
        names[:, : records["names"].shape[1]] = records["names"]
        fields = {name: np.ascontiguousarray(records[name]) for name in (*_STORED, "verbatim")}
        return cls(**fields, names=names, samples=int(records["sample"][-1]) + 1)


_STORED = ("start", "header", "size", "sample", "checksum")


def _octal(fields: np.ndarray) -> np.ndarray | None:
    """Values of fixed-width octal fields (one row each); None if any is not all digits."""
    digits = fields - np.uint8(ord("0"))  # below "0" wraps past 7
    if (digits > 7).any():
        return None
    return digits @ (8 ** np.arange(fields.shape[1] - 1, -1, -1, dtype=np.int64))


def _octal_digits(values: np.ndarray, width: int) -> np.ndarray:
    shifts = 3 * np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((values[:, None] >> shifts) & 7).astype(np.uint8) + np.uint8(ord("0"))


def ustar_headers(
    names: np.ndarray, sizes: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """`ustar_header(name, size)` for many members at once, one 512-byte row each (into `out`
    if given), from NUL-padded name fields (rows of 100 bytes) and sizes below 8 GiB."""
    rows = np.empty((len(sizes), BLOCK), dtype=np.uint8) if out is None else out
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


def _checksums(rows: np.ndarray) -> np.ndarray | None:
    """The stored checksums, when every one is right, with no ustar prefix and the size and
    checksum fields in the form `tarfile` writes them (11 octal digits and NUL; 6 digits, NUL,
    space); else None."""
    stored = _octal(rows[:, 148:154])
    if stored is None or rows[:, 345:500].any():
        return None
    if rows[:, 135].any() or rows[:, 154].any() or (rows[:, 155] != ord(" ")).any():
        return None
    wide = np.uint16 if rows.max(initial=0) < 128 else np.uint32  # 512 * 127 fits 16 bits
    sums = rows.sum(axis=1, dtype=wide) - rows[:, 148:156].sum(axis=1, dtype=wide)
    return stored if np.array_equal(sums.astype(np.int64) + 8 * 32, stored) else None


def _fields_ok(rows: np.ndarray) -> np.ndarray:
    """Whether each header's other number fields are in the form `tarfile` and GNU tar write
    (what every reader parses): mode, uid, gid 7 octal digits and NUL, mtime 11 and NUL, the
    device numbers so or all NUL; and the mode without a setuid, setgid or sticky bit."""
    numbers = _outside(rows[:, 100:148], *_NUMBER_FIELDS)
    devices = rows[:, 329:345]
    return ~numbers & (~_outside(devices, *_DEVICE_FIELDS) | ~devices.any(axis=1))


def _outside(fields: np.ndarray, low: np.ndarray, span: np.ndarray) -> np.ndarray:
    """Whether any byte of each row is outside its position's range (compared as words)."""
    return ((fields - low) > span).view(np.uint64).any(axis=1)


def _ranges(pattern: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Per position of `pattern`, the lowest byte allowed and how many above it: `0` a zero
    digit, `7` an octal digit, `.` a NUL."""
    low = np.array([0 if c == ord(".") else ord("0") for c in pattern], dtype=np.uint8)
    span = np.array([0 if c == ord(".") else c - ord("0") for c in pattern], dtype=np.uint8)
    return low, span


# mode (no bit from the sticky bit up), uid, gid, size (checked elsewhere), mtime; devices
_NUMBER_FIELDS = _ranges(b"0000777." + b"7777777." * 2 + b"77777777777." * 2)
_DEVICE_FIELDS = _ranges(b"7777777." * 2)


def _plain_names(fields: np.ndarray) -> np.ndarray:
    """Whether each name field (of a pax header) is printable ASCII, not empty, neither
    absolute nor with `..`: safe for a reader that takes the pax header for a file. Writers
    give every pax header one name (`tarfile`: `././@PaxHeader`): then it is looked at once."""
    if len(fields) > 1 and (fields == fields[0]).all():
        return np.repeat(_plain_names(fields[:1]), len(fields))
    nul = fields == 0
    length = np.where(nul.any(axis=1), nul.argmax(axis=1), _NAME)
    inside = np.arange(_NAME) < length[:, None]
    odd = (((fields < 32) | (fields > 126)) & inside).any(axis=1)
    up = (inside[:, 1:] & (fields[:, 1:] == ord(".")) & (fields[:, :-1] == ord("."))).any(axis=1)
    return (length > 0) & (fields[:, 0] != ord("/")) & ~odd & ~up


def _time_value(value: bytes) -> bool:
    """A time record's value we copy: digits with at most one `.` (what `tarfile` writes)."""
    return value.replace(b".", b"", 1).isdigit() or value in (b"", b".")


def _records_verbatim(records: dict[bytes, bytes], header: np.ndarray) -> bool | None:
    """Whether a pax header's records let its member (ustar header `header`) be copied
    verbatim; None when a record changes what the reader reports."""
    name = bytes(header[:_NAME]).split(b"\0", 1)[0]
    size = _octal(header[None, 124:135])
    verbatim = True
    for keyword, value in records.items():
        if keyword.startswith(SPARSE_PREFIX):
            return None
        if keyword == PATH_KEYWORD and value != name:
            return None
        if keyword == SIZE_KEYWORD and not (
            value.isdigit() and size is not None and int(value) == int(size[0])
        ):
            return None
        verbatim &= keyword in VERBATIM_KEYWORDS and (
            keyword not in _TIME_KEYWORDS or _time_value(value)
        )
    return verbatim


def _pax_verbatim(
    blocks: np.ndarray, heads: np.ndarray, sizes: np.ndarray, mm: mmap.mmap
) -> np.ndarray | None:
    """Per pax header (block numbers `heads`, `sizes` data bytes), whether its member may be
    copied verbatim (the rule: module docstring); None when one is malformed or changes what
    the reader reports. The common one, a single `NN mtime=...` record in one block, is
    checked in bulk; others record by record."""
    verbatim = _plain_names(blocks[heads, :_NAME]) & _fields_ok(blocks[heads])
    verbatim &= _pad_is_zero(blocks, heads * BLOCK, sizes)
    bulk = np.flatnonzero((sizes >= 10) & (sizes <= BLOCK))
    n = sizes[bulk]
    width = int(n.max()) if len(n) else 10
    data = blocks[heads[bulk] + 1, :width]
    digits = data[:, :2] - np.uint8(ord("0"))
    column = np.arange(width)
    inside = column < (n - 1)[:, None]
    common = (
        (digits <= 9).all(axis=1)
        & (digits.astype(np.int64) @ np.array([10, 1]) == n)
        & (data[:, 2:9] == _MTIME_RECORD).all(axis=1)
        & (data[np.arange(len(n)), n - 1] == ord("\n"))
        & ~((data == ord("\n")) & inside).any(axis=1)
    )
    value = inside & (column >= 9)
    dots = ((data == ord(".")) & value).sum(axis=1)
    timely = ~(value & ~_DIGITS[data] & (data != ord("."))).any(axis=1) & (dots <= 1)
    verbatim[bulk[common]] &= timely[common]
    for i in np.concatenate([bulk[~common], np.flatnonzero((sizes < 10) | (sizes > BLOCK))]):
        start, size = int(heads[i]) * BLOCK + BLOCK, int(sizes[i])
        follower = int(heads[i]) + 1 + -(-size // BLOCK)
        if follower >= len(blocks):
            return None
        try:
            records = parse_pax(mm[start : start + size])
        except PaxError:
            return None
        found = _records_verbatim(records, blocks[follower])
        if found is None:
            return None
        verbatim[i] &= found
    return verbatim


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
    width = int(length.max(initial=0))
    if not (length > 0).all():
        return None
    part = fields[:, :width]
    column = np.arange(width)
    inside = column < length[:, None]
    if ((part[:, 0] == ord("/")) | (((part < 32) | (part > 126)) & inside).any(axis=1)).any():
        return None
    doubled = inside[:, 1:] & (part[:, 1:] == part[:, :-1])
    if (doubled & ((part[:, 1:] == ord(".")) | (part[:, 1:] == ord("_")))).any():
        return None  # "..", "__"
    slash = (part == ord("/")) & inside
    last_slash = np.where(slash.any(axis=1), width - 1 - slash[:, ::-1].argmax(axis=1), -1)
    dots = (part == ord(".")) & inside & (column > last_slash[:, None])
    dot = dots.argmax(axis=1)
    if not dots.any(axis=1).all() or (dot == last_slash + 1).any():
        return None  # a name without a webdataset key, or an odd one (`dir/.x` is key `dir/`)
    clean = np.zeros_like(fields)
    clean[:, :width] = np.where(inside, part, 0)
    keys = np.zeros_like(fields)
    keys[:, :width] = np.where(column < dot[:, None], part, 0)
    lower = clean[:, :width] + ((part >= ord("A")) & (part <= ord("Z")) & inside) * np.uint8(32)
    return _Names(clean, keys, keys[:, :width] @ _HASH[:width], lower @ _HASH[:width])


def _pad_is_zero(blocks: np.ndarray, header: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Whether the bytes after each member's data, up to its block end, are all NUL (looked
    at eight bytes at a time: whole words after the data's end, the high bytes of the word
    it ends in)."""
    tail = size % BLOCK
    result = np.ones(len(size), dtype=bool)
    partial = np.flatnonzero(tail)
    if len(partial):
        cut = tail[partial]
        words = blocks[(header[partial] + BLOCK + size[partial] - cut) // BLOCK].view("<u8")
        word = cut // 8
        beyond = ((words != 0) & (np.arange(BLOCK // 8) > word[:, None])).any(axis=1)
        shift = (8 * (cut % 8)).astype(np.uint64)
        result[partial] = ~beyond & (words[np.arange(len(cut)), word] >> shift == 0)
    return result


@dataclass
class _Index:
    """The walk over chunks of candidate headers, and what it gathered so far."""

    blocks: np.ndarray
    mm: mmap.mmap
    expected: int = 0  # the block the next header must start at
    pax_before: int = -1  # offset of a pax header ending the chunk before, or -1
    pax_before_verbatim: bool = True  # whether that pax header lets its member be verbatim
    previous_key: np.ndarray = field(default_factory=lambda: np.zeros((0, _NAME), np.uint8))
    parts: dict[str, list] = field(default_factory=dict)

    def _keep(self, **arrays: np.ndarray) -> None:
        for name, array in arrays.items():
            self.parts.setdefault(name, []).append(array)

    def add(self, heads: np.ndarray) -> bool:
        """A chunk of candidate headers (block numbers); False when the shard is not in the
        common form."""
        rows = self.blocks[heads]
        real = (rows[:, 257:262] == _MAGIC).all(axis=1)
        if not real.all():  # data that happen to hold the magic's first bytes
            rows, heads = rows[real], heads[real]
        if not len(heads):
            return True
        flags, sizes = rows[:, 156], _octal(rows[:, 124:135])
        if sizes is None:
            return False
        after = heads + 1 + np.where(flags == _DIR, 0, -(-sizes // BLOCK))  # no data: dirs
        if heads[0] != self.expected or not np.array_equal(after[:-1], heads[1:]):
            return False
        self.expected = int(after[-1])
        if self.expected > len(self.blocks):
            return False  # data past the end of the file: cut short
        is_pax, regular = flags == _PAX, flags == _REG
        checksums = _checksums(rows)
        if not (is_pax | regular | (flags == _DIR)).all() or checksums is None:
            return False
        pax_for = np.append(self.pax_before, np.where(is_pax[:-1], heads[:-1] * BLOCK, -1))
        if (~regular & (pax_for >= 0)).any():
            return False  # a pax header not followed by a regular member
        pax_verbatim = _pax_verbatim(self.blocks, heads[is_pax], sizes[is_pax], self.mm)
        if pax_verbatim is None:
            return False
        allowed = np.ones(len(heads), dtype=bool)  # by the pax header, if any, before each
        allowed[1:][is_pax[:-1]] = pax_verbatim[: int(is_pax[:-1].sum())]
        allowed[0] = self.pax_before_verbatim
        self.pax_before = int(heads[-1]) * BLOCK if is_pax[-1] else -1
        self.pax_before_verbatim = bool(pax_verbatim[-1]) if is_pax[-1] else True
        members = np.flatnonzero(regular)
        member_rows = rows if len(members) == len(rows) else rows[members]
        return self._add_members(
            member_rows,
            heads[members] * BLOCK,
            sizes[members],
            pax_for[members],
            allowed[members] & _fields_ok(member_rows),
            checksums[members],
        )

    def _add_members(
        self,
        rows: np.ndarray,
        header: np.ndarray,
        size: np.ndarray,
        pax: np.ndarray,
        verbatim: np.ndarray,
        checksum: np.ndarray,
    ) -> bool:
        """The regular members among a chunk's headers (their header blocks `rows`)."""
        if not len(rows):
            return True
        names = _names(rows[:, :_NAME])
        if names is None or size.max() > TEXT_LIMIT:
            return False
        keys = np.concatenate([self.previous_key, names.keys])
        starts = np.concatenate([[True], (keys[1:] != keys[:-1]).any(axis=1)])
        starts = starts[len(self.previous_key) :]
        self.previous_key = names.keys[-1:]
        self._keep(
            header=header,
            size=size,
            pax=pax,
            names=names.fields,
            verbatim=verbatim,
            checksum=checksum,
            new_sample=starts,
            key_hash=names.key_hash[starts],
            lower_hash=names.lower_hash,
        )
        return True

    def layout(self) -> Layout | None:
        """Once every chunk is in: None unless the archive ends where the chain does, and no
        key or lower-cased name occurs twice."""
        end = self.expected
        if self.pax_before >= 0 or (end < len(self.blocks) and self.blocks[end].any()):
            return None
        if end > len(self.blocks) or (end == len(self.blocks) and end * BLOCK != len(self.mm)):
            return None
        if "header" not in self.parts:
            return None  # no regular member: nothing to index
        joined = {name: np.concatenate(arrays) for name, arrays in self.parts.items()}
        for hashes in (joined["key_hash"], joined["lower_hash"]):
            ordered = np.sort(hashes)
            if (ordered[1:] == ordered[:-1]).any():
                return None
        header, size, pax = joined["header"], joined["size"], joined["pax"]
        verbatim = joined["verbatim"] & _pad_is_zero(self.blocks, header, size)
        sample = np.cumsum(joined["new_sample"]) - 1
        start = np.where(pax >= 0, pax, header)
        return Layout(
            start=start,
            header=header,
            size=size,
            sample=sample,
            verbatim=verbatim,
            names=joined["names"],
            checksum=joined["checksum"],
            samples=int(sample[-1]) + 1,
        )


def index_shard(mm: mmap.mmap) -> Layout | None:
    """The layout of a mapped plain tar in the common form; None for any other shard."""
    whole = np.frombuffer(mm, np.uint8)
    blocks = whole[: len(whole) // BLOCK * BLOCK].reshape(-1, BLOCK)
    heads = np.flatnonzero(blocks[:, 257] == ord("u"))  # candidates: the magic's first bytes
    heads = heads[blocks[heads, 258] == ord("s")]
    index = _Index(blocks, mm)
    for first in range(0, len(heads), CHUNK):
        if not index.add(heads[first : first + CHUNK]):
            return None
    return index.layout()
