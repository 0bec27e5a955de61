"""Polygons on a pixel grid: which pixel centres a closed outline holds (RTSTRUCT contours, the
segment editor's scissors)."""

from __future__ import annotations

import numpy as np


def polygon_mask(poly: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(inside by the even-odd rule, on the outline) masks of a polygon given in continuous
    (col, row) index units, for the pixel centres of a ``shape`` = (rows, cols) slice.

    Scanline fill in numpy: for each pixel row, the crossings of the polygon's edges (half-open
    rule), sorted; a centre is inside when an odd number of crossings lie to its right.
    """
    inside = np.zeros(shape, dtype=bool)
    edge = np.zeros(shape, dtype=bool)
    poly = np.asarray(poly, dtype=float)
    x1, y1 = poly[:, 0], poly[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    eps = 1e-3
    lo_y = max(int(np.ceil(poly[:, 1].min() - eps)), 0)
    hi_y = min(int(np.floor(poly[:, 1].max() + eps)), shape[0] - 1)
    cols = np.arange(shape[1], dtype=float)
    slanted = y1 != y2
    for y in range(lo_y, hi_y + 1):
        crossing = slanted & ((y1 > y) != (y2 > y))
        if crossing.any():
            xs = x1[crossing] + (y - y1[crossing]) * (x2[crossing] - x1[crossing]) / (y2[crossing] - y1[crossing])
            xs.sort()
            right = len(xs) - np.searchsorted(xs, cols, side="right")  # crossings right of each centre
            inside[y] = (right % 2) == 1
        # centres on the outline: slanted edges passing through them, horizontal edges along the row
        on = slanted & (np.minimum(y1, y2) - eps <= y) & (y <= np.maximum(y1, y2) + eps)
        if on.any():
            xs = x1[on] + (y - y1[on]) * (x2[on] - x1[on]) / (y2[on] - y1[on])
            hit = np.abs(xs - np.rint(xs)) < eps
            idx = np.rint(xs[hit]).astype(int)
            edge[y, idx[(idx >= 0) & (idx < shape[1])]] = True
        flat = ~slanted & (np.abs(y1 - y) < eps)
        for a, b in zip(np.minimum(x1[flat], x2[flat]), np.maximum(x1[flat], x2[flat])):
            edge[y, max(int(np.ceil(a - eps)), 0):min(int(np.floor(b + eps)), shape[1] - 1) + 1] = True
    return inside, edge
