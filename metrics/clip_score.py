"""CLIP image-text score (DataComp CLIP-score filtering baseline).

ALGORITHMS.md, CLIP image-text score: ``s_i = <img_i, txt_i>`` with both normalised.
"""

from __future__ import annotations

import numpy as np


def clip_score(image: np.ndarray, text: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of image and text embeddings, float32 (n,).

    Both are re-normalised in float32 (embeddings stored in float16 are only nearly unit
    length). A zero row has no direction: its score is nan, which fails any threshold.
    """
    image = np.asarray(image, dtype=np.float32)
    text = np.asarray(text, dtype=np.float32)
    if image.ndim != 2 or image.shape != text.shape:
        raise ValueError(f"image {image.shape} and text {text.shape} must both be (n, d)")
    dot = np.einsum("ij,ij->i", image, text)
    norms = np.linalg.norm(image, axis=1) * np.linalg.norm(text, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, dot / norms, np.nan).astype(np.float32)
