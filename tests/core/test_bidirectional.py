"""Bidirectional measurements: the short axis drawn across the long one, and how each end moves."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.core.document import Bidirectional

AXIAL = np.array([0.0, 0.0, 1.0])


def perpendicular(b: Bidirectional) -> bool:
    e = b.ends
    return abs(np.dot(e[1] - e[0], e[3] - e[2])) < 1e-9 * max(1.0, b.long_mm * b.short_mm)


def test_drawn_across_a_long_axis_the_short_axis_is_half_as_long_through_its_middle():
    b = Bidirectional.across((0, 0, 5), (40, 0, 5), AXIAL)
    assert b.long_mm == pytest.approx(40) and b.short_mm == pytest.approx(20)
    assert perpendicular(b) and np.allclose((b.ends[2] + b.ends[3]) / 2, (20, 0, 5))
    assert np.allclose(b.ends[:, 2], 5)   # on the slice
    coronal = Bidirectional.across((0, 0, 0), (0, 0, 30), np.array([0.0, 1.0, 0.0]), ratio=1.0)
    assert coronal.short_mm == pytest.approx(30) and np.allclose(coronal.ends[:, 1], 0)


def test_moving_a_long_end_carries_the_short_axis_along_and_keeps_it_perpendicular():
    b = Bidirectional.across((0, 0, 0), (40, 0, 0), AXIAL)
    b = b.with_end_moved(3, (20, 5, 0), AXIAL)      # one short end nearer: 10 on one side, 5 on the other
    moved = b.with_end_moved(1, (0, 60, 0), AXIAL)   # the long axis now runs along y, 60 mm
    assert moved.long_mm == pytest.approx(60) and perpendicular(moved)
    # it crosses at the same fraction (the middle) and keeps its ends' distances (10 and 5)
    sides = sorted(np.linalg.norm(moved.ends[k] - (0, 30, 0)) for k in (2, 3))
    assert sides == pytest.approx([5, 10]) and moved.short_mm == pytest.approx(15)
    assert np.allclose(moved.ends[2:, 1], 30) and np.allclose(moved.ends[:, 2], 0)   # across y = 30, on the slice


def test_a_short_end_slides_on_its_line_and_stays_on_its_side():
    b = Bidirectional.across((0, 0, 0), (40, 0, 0), AXIAL)   # short axis x = 20, y from -10 to 10
    side = np.sign(b.ends[3][1])
    longer = b.with_end_moved(3, (25, side * 18, 0), AXIAL)   # off the line: only its distance counts
    assert np.allclose(longer.ends[3], (20, side * 18, 0)) and np.allclose(longer.ends[2], b.ends[2])
    assert longer.short_mm == pytest.approx(28) and perpendicular(longer)
    across = b.with_end_moved(3, (20, -side * 4, 0), AXIAL)    # past the long axis: stops at it
    assert np.sign(across.ends[3][1]) == side and abs(across.ends[3][1]) < 0.5
