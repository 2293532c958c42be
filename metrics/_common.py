"""Small numeric helpers shared by the metrics."""

from __future__ import annotations

import math

# Added before flooring a product of floats, so that e.g. 0.29 * 100 (= 28.999999999999996)
# floors to 29, not 28. Far below any meaningful fraction of a sample count.
_FLOOR_SLACK = 1e-9


def robust_floor(value: float) -> int:
    """``floor(value)``, robust to a float product that lands just below an integer."""
    return math.floor(value + _FLOOR_SLACK)
