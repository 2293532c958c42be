"""A sample's class label, as webdataset datasets store it: a `.cls` member holding the class
index as text, or a field of the `.json` member.

A label must be a small non-negative integer (a class index below MAX_CLASSES); anything else
(`1e999`, `[1]`, `{}`, `1e23`, a 23-digit number, text that is not a number, a json too deeply
nested to parse) is refused for that sample with the reason, rather than read as "no label" or
allowed to size a classifier head.
"""

from __future__ import annotations

import json
import math

from shards.tario import Sample

MAX_CLASSES = 1 << 20  # above the 21,841 classes of ImageNet-21k, far below a memory problem


class LabelError(ValueError):
    """The sample has a label that is not a class index."""


def _index(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise LabelError(f"{where} is {type(value).__name__}, not a class index")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise LabelError(f"{where} {value!r} is not a class index")
        value = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text.isascii() or not text.isdigit():
            raise LabelError(f"{where} {value[:40]!r} is not a class index")
        if len(text) > len(str(MAX_CLASSES)):
            raise LabelError(f"{where} {text[:40]} is not a class index below {MAX_CLASSES:,}")
        value = int(text)
    if not 0 <= value < MAX_CLASSES:
        raise LabelError(f"{where} {value} is not a class index in [0, {MAX_CLASSES:,})")
    return value


def sample_label(sample: Sample, field: str) -> int | None:
    """The class index, None when the sample has no label; LabelError for a bad one."""
    cls = sample.get("cls")
    if cls is not None:
        try:
            text = bytes(cls.data).decode("ascii")
        except UnicodeDecodeError:
            raise LabelError(f"{cls.name} is not ASCII text") from None
        return _index(text, f"label in {cls.name}")
    meta = sample.get("json")
    if meta is None:
        return None
    try:
        record = json.loads(bytes(meta.data))
    except (ValueError, RecursionError) as exc:
        raise LabelError(f"{meta.name} is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(record, dict) or record.get(field) is None:
        return None
    return _index(record[field], f"label {field!r} in {meta.name}")
