"""Tar members and webdataset samples: webdataset's naming rule, the size limits a member is
read under, and names made safe to show.

Names are kept exactly: bytes that are not UTF-8 (latin-1 names from old tars) decode with
`surrogateescape`, so a member is written back under the bytes it was read with. Such a str
cannot go into UTF-8 text (a parquet column, a JSON report): `display_name` shows those bytes as
`\\xNN` escapes, and `Sample.key` is already shown that way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FILE = "file"
DIRECTORY = "directory"
SPARSE = "GNU sparse file"

MiB = 1 << 20
# Members above these sizes fail their sample and their data are skipped, never held in
# memory. Text-like members (captions, metadata, labels) are small in any real dataset;
# images and other members (the image decoder bounds pixels separately) get room for large ones.
TEXT_SUFFIXES = frozenset({"txt", "text", "json", "cls", "cls2", "caption"})
TEXT_LIMIT = 16 * MiB
OTHER_LIMIT = 256 * MiB

# webdataset 0.2.x (tariterators): `base_plus_ext` splits a name into key and suffix; names it
# cannot split, and names matching its metadata pattern, never reach a sample.
_KEY_RE = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")
_META_RE = re.compile(r"__[^/]*__($|/)")
# Fields webdataset stores in the sample dict beside the members' suffixes.
RESERVED_SUFFIXES = frozenset({"__key__", "__url__", "__local_path__", "__bad__"})


@dataclass(frozen=True)
class Member:
    """One member of a tar, as `tarfile` lists it. `data` holds a regular file's bytes unless
    `problem` says why not (over its size limit: skipped unread); other kinds hold none."""

    name: str
    data: bytes
    kind: str = FILE  # FILE, DIRECTORY, SPARSE, "symbolic link", "hard link", ...
    size: int = -1  # the size `tarfile` reports; len(data) when not given
    problem: str | None = None  # why this member fails its sample

    def __post_init__(self) -> None:
        if self.size < 0:
            object.__setattr__(self, "size", len(self.data))


@dataclass
class Sample:
    """The members sharing one webdataset key, in archive order."""

    key: str  # display-safe (see `display_name`)
    position: int
    members: list[Member] = field(default_factory=list)
    error: str | None = None

    def get(self, *extensions: str) -> Member | None:
        """The first member whose (lower-cased) last suffix is one of `extensions`: a key
        with dots (`photo.v2.jpg` is key `photo`, extension `v2.jpg`) still has its image
        found, as webdataset's decoders dispatch on the last suffix."""
        wanted = {e.lower() for e in extensions}
        for member in self.members:
            if split_key(member.name)[1].lower().rsplit(".", 1)[-1] in wanted:
                return member
        return None

    @property
    def unsafe_names(self) -> list[str]:
        return [m.name for m in self.members if not is_safe_name(m.name)]

    @property
    def nbytes(self) -> int:
        return sum(m.size for m in self.members)


def split_key(name: str) -> tuple[str, str]:
    """webdataset's rule: the key is the path up to the first dot of the file name."""
    match = _KEY_RE.match(name)
    if match is None:
        return name, ""
    return match.group(1), match.group(2)


def sample_key(name: str) -> tuple[str, str] | None:
    """(key, suffix) of a member webdataset puts into a sample, or None for one it skips: a
    name `base_plus_ext` cannot split (no dot in its last part, or nothing before the dot:
    `.hidden`; but `dir/.hidden` is key `dir/`), or a `__meta__` name."""
    if _META_RE.match(name) or ("/" not in name and name.startswith("__") and name.endswith("__")):
        return None
    match = _KEY_RE.match(name)
    return None if match is None else (match.group(1), match.group(2))


def size_limit(name: str) -> int:
    """The most data bytes a member of this name is read with."""
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return TEXT_LIMIT if suffix in TEXT_SUFFIXES else OTHER_LIMIT


def limit_problem(name: str, size: int) -> str | None:
    limit = size_limit(name)
    if size <= limit:
        return None
    kind = "text" if limit == TEXT_LIMIT else "non-text"
    return (
        f"member {display_name(name)} is {size:,} bytes, "
        f"over the {limit // MiB} MiB limit for {kind} members"
    )


def is_safe_name(name: str) -> bool:
    """A relative path that stays inside the folder it is extracted to: no absolute path,
    no `..` component. Members named otherwise are never copied into an output shard."""
    return (
        bool(name) and not name.startswith("/") and "\0" not in name
        and ".." not in name.split("/")
    )  # fmt: skip


def display_name(name: str) -> str:
    """`name` as valid UTF-8 text: bytes that were not UTF-8 shown as `\\xNN` escapes (not
    decoded as latin-1, which would make them look like other, valid names)."""
    if name.isascii():
        return name
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
