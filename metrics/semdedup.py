"""SemDeDup duplicate flags within one cluster (Abbas et al. 2023, "SemDeDup").

Rule (ALGORITHMS.md, SemDeDup): order the members of a cluster by cosine distance to the
centroid, farthest first, ties by ascending id. The member at position j is a duplicate when its
cosine similarity to any earlier member (positions < j) exceeds ``1 - eps`` strictly, whether or
not that earlier member was itself removed. This is the reference's column maximum of the strict
upper triangle of the sorted similarity matrix: order-dependent and not transitive.

The n x n similarity matrix is never held whole: it is computed in tiles of at most
``block_size x block_size``, so huge clusters fit in memory without splitting them (splitting
would miss duplicates across the parts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SemDeDupResult:
    """Per-member outcome, every array in the input order (not the sorted order).

    - ``duplicate``: bool (n,), the member is a duplicate of an earlier member.
    - ``duplicate_of``: int64 (n,), id of the earlier member with the highest similarity (ties:
      the earliest in the order); -1 when not a duplicate.
    - ``max_similarity``: float32 (n,), highest similarity to any earlier member; ``-inf`` for the
      first member in the order (it has no earlier member). ``duplicate`` is exactly
      ``max_similarity > 1 - eps``.
    """

    duplicate: np.ndarray
    duplicate_of: np.ndarray
    max_similarity: np.ndarray


def semdedup(
    embeddings: np.ndarray,
    distances: np.ndarray,
    ids: np.ndarray,
    eps: float,
    block_size: int = 4096,
) -> SemDeDupResult:
    """Flag the semantic duplicates among the members of one cluster.

    ``embeddings`` (n, d) are L2-normalised (float16 or float32; the caller normalises, as
    ALGORITHMS.md requires before anything else), ``distances`` (n,) their cosine distance to the
    centroid, ``ids`` (n,) their int64 ids (unique).

    Similarities are dot products of the float32 inputs accumulated in float64 (the products are
    exact there) and rounded to float32. A float32 matrix product gives results that depend on
    the tile shape at the last bit; this way the outcome is the same for every ``block_size``.
    """
    emb, dist, ids = _validate(embeddings, distances, ids, block_size)
    n = len(ids)
    order = np.lexsort((ids, -dist))
    best, best_pos = _max_earlier_similarity(emb[order], block_size)

    duplicate_sorted = best.astype(np.float64) > 1.0 - eps
    dup_of_sorted = np.where(duplicate_sorted, ids[order][best_pos], -1)

    duplicate = np.empty(n, dtype=bool)
    duplicate_of = np.empty(n, dtype=np.int64)
    max_similarity = np.empty(n, dtype=np.float32)
    duplicate[order] = duplicate_sorted
    duplicate_of[order] = dup_of_sorted
    max_similarity[order] = best
    return SemDeDupResult(duplicate, duplicate_of, max_similarity)


def _validate(
    embeddings: np.ndarray, distances: np.ndarray, ids: np.ndarray, block_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    emb = np.asarray(embeddings)
    dist = np.asarray(distances, dtype=np.float64)
    ids = np.asarray(ids, dtype=np.int64)
    if emb.ndim != 2 or dist.shape != (len(emb),) or ids.shape != (len(emb),):
        raise ValueError(
            f"expected embeddings (n, d), distances (n,), ids (n,); got {emb.shape}, "
            f"{dist.shape}, {ids.shape}"
        )
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    emb = emb.astype(np.float32, copy=False)
    if not (np.isfinite(dist).all() and np.isfinite(emb).all()):
        raise ValueError("embeddings and distances must be finite")
    return emb, dist, ids


def _max_earlier_similarity(emb: np.ndarray, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """For each row of the sorted embeddings: max similarity to an earlier row and its position.

    Tiles are visited row block by row block in ascending order and a maximum is replaced only by
    a strictly larger one, so ties resolve to the earliest position, as within a tile (argmax).
    """
    n = len(emb)
    best = np.full(n, -np.inf, dtype=np.float32)
    best_pos = np.zeros(n, dtype=np.int64)
    for j0 in range(0, n, block_size):
        j1 = min(j0 + block_size, n)
        cols = emb[j0:j1].astype(np.float64)
        for i0 in range(0, j1 - 1, block_size):
            i1 = min(i0 + block_size, n)
            sim = (emb[i0:i1].astype(np.float64) @ cols.T).astype(np.float32)
            if i0 == j0:  # diagonal tile: keep only earlier rows (strict upper triangle)
                sim[np.tri(j1 - j0, dtype=bool)] = -np.inf
            tile_pos = sim.argmax(axis=0)
            tile_max = sim[tile_pos, np.arange(j1 - j0)]
            better = tile_max > best[j0:j1]
            best[j0:j1][better] = tile_max[better]
            best_pos[j0:j1][better] = tile_pos[better] + i0
    return best, best_pos
