"""One seed per purpose, derived from the run's `--seed`: the draws of one purpose (k-means,
its training sample, untrained weights, probes...) never shift when another changes."""

from __future__ import annotations

import hashlib


def child_seed(seed: int, purpose: str) -> int:
    """A 31-bit seed for `purpose` (fits every library's seed argument)."""
    digest = hashlib.blake2b(f"{seed}:{purpose}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFFFFFF
