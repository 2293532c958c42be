"""Members into samples, exactly as webdataset 0.2.x groups them, and which samples cannot be
written back so that webdataset reads them.

webdataset (`tariterators.tar_file_iterator`, `group_by_keys`) sees only regular files whose
name splits into key and suffix (`members.sample_key`); it starts a sample when the key changes,
lower-cases each suffix, and raises "duplicate file name" when a suffix repeats within one.

Our rule, over the members of one shard in archive order:
- Directories, and names webdataset cannot split (`README`, `.hidden`, `__meta__/...`), are
  in no sample and do not end the current one: webdataset never sees them.
- Every other member, whatever its type, belongs to the sample of its key. A member starts a new
  sample when its key differs from the current sample's, or when its exact suffix is already in
  the current sample (so `k.jpg k.cls k.jpg k.cls` is two samples, both named `k`).
- A sample fails (`Sample.error`, the first reason found) when
  - one of its members has a problem (`Member.problem`): not a regular file (a symbolic link
    named `k.jpg` is no image, and webdataset would silently drop it), a GNU sparse file, a
    malformed pax header, over its size limit;
  - two of its suffixes are equal once lower-cased (`k.jpg`, `k.JPG`): webdataset would raise;
  - a suffix is one webdataset keeps for its own fields (`__key__`, `__url__`, ...);
  - its key is the key of an earlier sample of the shard: written next to each other (whatever
    lies between them was pruned) webdataset would merge the two or raise.
Every sample that passes can be written by `TarWriter` in any selection and read back by both
webdataset and `tarfile` as the same samples.
"""

from __future__ import annotations

from shards.members import (
    DIRECTORY,
    RESERVED_SUFFIXES,
    Member,
    Sample,
    display_name,
    sample_key,
)


class Grouper:
    """Places members one at a time; hands back each sample as the next one starts."""

    def __init__(self) -> None:
        self.current: Sample | None = None
        self._key = ""
        self._exact: set[str] = set()  # suffixes of the current sample
        self._lower: dict[str, str] = {}  # lower-cased suffix -> member name, current sample
        self._first_position: dict[str, int] = {}  # key -> position of its first sample
        self._position = -1

    def add(self, member: Member) -> Sample | None:
        """Put `member` in its sample; return the sample this closes, if any. Members that
        belong to no sample change nothing."""
        parts = None if member.kind == DIRECTORY else sample_key(member.name)
        if parts is None:
            return None
        closed = self._place(member.name, *parts)
        self.current.members.append(member)
        self._fail(member.problem)
        return closed

    def cut(self, name: str | None, reason: str) -> Sample | None:
        """The shard is damaged inside the data of member `name` (None: between members): the
        sample that member belongs to fails with `reason`, and is current. Returns the sample
        this closes, if any."""
        parts = None if name is None else sample_key(name)
        if parts is None:
            return None
        closed = self._place(name, *parts)
        self.current.error = reason
        return closed

    def finish(self) -> Sample | None:
        closed, self.current = self.current, None
        return closed

    def _place(self, name: str, key: str, suffix: str) -> Sample | None:
        closed = None
        if self.current is None or key != self._key or suffix in self._exact:
            closed = self._start(key)
        lower = suffix.lower()
        if lower in self._lower:
            self._fail(
                f"members {display_name(self._lower[lower])} and {display_name(name)} differ "
                "only in case: webdataset would reject the sample"
            )
        elif lower in RESERVED_SUFFIXES:
            self._fail(
                f"member {display_name(name)} has a suffix webdataset uses for its own field"
            )
        self._exact.add(suffix)
        self._lower.setdefault(lower, name)
        return closed

    def _start(self, key: str) -> Sample | None:
        closed = self.current
        self._position += 1
        self.current = Sample(display_name(key), self._position)
        self._key, self._exact, self._lower = key, set(), {}
        first = self._first_position.setdefault(key, self._position)
        if first != self._position:
            self._fail(
                f"repeats the key of the sample at position {first}: written next to it, "
                "webdataset would merge the two or reject them"
            )
        return closed

    def _fail(self, reason: str | None) -> None:
        if reason is not None and self.current.error is None:
            self.current.error = reason
