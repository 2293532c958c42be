"""matplotlib without a display: figures rendered to PNG bytes."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt


def new_figure(width: float = 6.4, height: float = 4.0):
    return plt.subplots(figsize=(width, height), dpi=100)


def png_bytes(figure) -> bytes:
    """The figure as PNG (tight bounding box); the figure is closed."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()
