"""Agreement of two masks: overlap, volumes and surface distances on known shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medviewer.core.compare import compare_masks


def ball(radius, centre=(20, 20, 20), shape=(40, 40, 40), spacing=(1.0, 1.0, 1.0)):
    z, y, x = np.mgrid[:shape[0], :shape[1], :shape[2]]
    sz, sy, sx = spacing[::-1]
    return ((z - centre[0]) * sz) ** 2 + ((y - centre[1]) * sy) ** 2 + ((x - centre[2]) * sx) ** 2 < radius ** 2


def test_identical_shifted_nested_and_empty_masks():
    a = ball(10)
    same = compare_masks(a, a, (1, 1, 1))
    assert (same.dice, same.jaccard, same.hausdorff_mm, same.hd95_mm, same.mean_surface_mm) == (1, 1, 0, 0, 0)
    shifted = compare_masks(a, np.roll(a, 3, axis=2), (1, 1, 1))
    assert shifted.hausdorff_mm == pytest.approx(3.0) and shifted.volume_difference_pct == 0
    assert shifted.dice == pytest.approx(2 * (a & np.roll(a, 3, axis=2)).sum() / (2 * a.sum()))
    inner = compare_masks(ball(8), ball(11), (1, 1, 1))       # surfaces 3 mm apart, give or take a voxel
    assert 2.0 <= inner.mean_surface_mm <= 4.0 and inner.hausdorff_mm <= 4.5
    assert inner.volume_difference_pct == pytest.approx(100 * (ball(8).sum() / ball(11).sum() - 1))
    assert inner.jaccard == pytest.approx(ball(8).sum() / ball(11).sum())
    empty = compare_masks(a, np.zeros_like(a), (1, 1, 1))
    assert empty.dice == 0 and math.isnan(empty.hausdorff_mm) and math.isnan(empty.volume_difference_pct)
    with pytest.raises(ValueError):
        compare_masks(a, a[1:], (1, 1, 1))


def test_distances_are_in_millimetres_of_anisotropic_voxels():
    spacing = (0.5, 0.5, 3.0)                                  # x, y, z mm
    a = ball(12, centre=(10, 40, 40), shape=(20, 80, 80), spacing=spacing)
    b = np.roll(a, 2, axis=0)                                   # two slices: 6 mm along z
    result = compare_masks(a, b, spacing)
    assert result.hausdorff_mm == pytest.approx(6.0)
    assert result.volume_ml == pytest.approx(a.sum() * 0.75 / 1000)
