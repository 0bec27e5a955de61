"""Elliptical ROI statistics: which pixels are inside, the area, and the values' statistics."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.core.document import Ellipse
from medviewer.core.errors import MedviewerError
from medviewer.core.roi_stats import ellipse_caption, ellipse_mask, ellipse_stats
from medviewer.core.volume import Volume


def ramp_volume(direction=np.eye(3), modality="CT") -> Volume:
    """Values that tell the voxel: 1000 * z + x (x, z the array's column and slice)."""
    z, y, x = np.meshgrid(np.arange(12), np.arange(60), np.arange(80), indexing="ij")
    return Volume((1000 * z + x).astype(np.int16), spacing=(0.5, 0.8, 2.5), origin=(-20.0, 10.0, 100.0),
                  direction=direction, modality=modality)


def test_a_circle_on_an_axial_slice_takes_the_pixels_whose_centres_are_inside():
    v = ramp_volume()
    centre = v.index_to_patient([40, 30, 5])
    e = Ellipse(centre, (6.0, 0.0, 0.0), (0.0, 6.0, 0.0))
    axis, index, mask = ellipse_mask(v, e)
    assert (axis, index) == (2, 5) and mask.shape == (60, 80)
    # every pixel centre decided by the distance to the centre
    rows, cols = np.nonzero(np.ones((60, 80), bool))
    d = np.hypot((cols - 40) * 0.5, (rows - 30) * 0.8).reshape(60, 80)
    assert np.array_equal(mask, d <= 6.0 + 1e-9)
    s = ellipse_stats(v, e)
    assert s.area_mm2 == pytest.approx(np.pi * 36)
    assert s.pixel_count == mask.sum() and abs(s.pixel_count * 0.4 - s.area_mm2) < 0.05 * s.area_mm2
    # symmetric about column 40 on slice 5: the mean is the centre's value
    assert s.mean == pytest.approx(5040) and s.minimum == 5040 - 12 and s.maximum == 5040 + 12
    assert s.std == pytest.approx(np.std(v.array[5][mask]))
    assert (s.unit, s.plane) == ("HU", "axial")
    text = ellipse_caption(s)
    assert text.startswith("1.13 cm\u00b2\n") and "mean 5040.0" in text and "HU" in text


def test_an_elongated_tilted_ellipse_and_a_coronal_one():
    v = ramp_volume()
    centre = v.index_to_patient([40, 30, 3])
    a = np.array([8.0, 8.0, 0.0])                   # 45 degrees, 11.3 mm semi-axis
    b = np.array([-2.0, 2.0, 0.0])                  # 2.8 mm
    _, _, mask = ellipse_mask(v, Ellipse(centre, a, b))
    rows, cols = np.nonzero(mask)
    d = np.c_[(cols - 40) * 0.5, (rows - 30) * 0.8, np.zeros(len(rows))]
    assert np.all((d @ a / (a @ a)) ** 2 + (d @ b / (b @ b)) ** 2 <= 1 + 1e-9)
    assert mask[30 + 10, 40 + 16] and not mask[30 - 10, 40 + 16]   # along a, not across it
    # a coronal ellipse (across y) spans slices: its mean is that of the pixels on the plane y = 30
    coronal = Ellipse(v.index_to_patient([40, 30, 6]), (5.0, 0.0, 0.0), (0.0, 0.0, 5.0))
    axis, index, mask = ellipse_mask(v, coronal)
    assert (axis, index) == (1, 30) and mask.shape == (12, 80)
    assert mask[6, 40] and mask[4, 40] and not mask[3, 40] and mask[6, 50] and not mask[6, 51]
    s = ellipse_stats(v, coronal)
    assert s.plane == "coronal" and s.mean == pytest.approx(v.array[:, 30][mask].mean())


def test_a_sagittally_stored_series_is_measured_on_its_own_slices():
    # index x runs P, y runs S (down the rows: -S), z runs L: the slices across z are sagittal
    direction = np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0]], dtype=float)
    v = ramp_volume(direction, modality="MR")
    centre = v.index_to_patient([40, 30, 7])
    e = Ellipse(centre, direction[:, 0] * 4.0, direction[:, 1] * 4.0)
    s = ellipse_stats(v, e)
    assert (s.axis, s.slice_index, s.plane, s.unit) == (2, 7, "sagittal", "")
    assert s.mean == pytest.approx(7040) and "HU" not in ellipse_caption(s)


def test_an_ellipse_across_the_slices_takes_the_voxels_nearest_its_plane():
    v = ramp_volume()
    centre = v.index_to_patient([40, 30, 5])
    tilted = Ellipse(centre, (8.0, 0.0, 4.0), (0.0, 6.0, 0.0))   # +-4 mm across 2.5 mm slices: 3 to 7
    with pytest.raises(MedviewerError, match="does not lie on a slice"):
        ellipse_mask(v, tilted)
    s = ellipse_stats(v, tilted)
    assert (s.plane, s.axis, s.slice_index) == ("oblique", None, None)
    assert (s.minimum // 1000, s.maximum // 1000) == (3, 7)
    assert s.mean == pytest.approx(5040, abs=30)   # symmetric about the centre voxel
    # each voxel once: about the ellipse's footprint on the slices (0.5 x 0.8 mm pixels), not its samples
    assert s.pixel_count == pytest.approx(np.pi * np.hypot(8, 4) * 6 * np.cos(np.arctan2(4, 8)) / 0.4, rel=0.15)


def test_an_ellipse_outside_is_refused_and_an_empty_one_has_no_pixels():
    v = ramp_volume()
    centre = v.index_to_patient([40, 30, 5])
    with pytest.raises(MedviewerError, match="outside the image"):
        ellipse_stats(v, Ellipse(v.index_to_patient([40, 30, 40]), (5.0, 0, 0), (0, 5.0, 0)))
    tiny = ellipse_stats(v, Ellipse(centre + [0.2, 0.3, 0.0], (0.1, 0.0, 0.0), (0.0, 0.1, 0.0)))
    assert tiny.pixel_count == 0 and np.isnan(tiny.mean) and "no pixel" in ellipse_caption(tiny)
    # an ellipse reaching past the image's edge counts the pixels inside the image
    edge = ellipse_stats(v, Ellipse(v.index_to_patient([0, 30, 5]), (5.0, 0, 0), (0, 5.0, 0)))
    assert 0 < edge.pixel_count < ellipse_stats(v, Ellipse(centre, (5.0, 0, 0), (0, 5.0, 0))).pixel_count
