import numpy as np
import pytest

from medviewer.core.errors import MedviewerError
from medviewer.core.measures import measure_segments, slice_diameters
from medviewer.core.volume import Volume


def _grid(array, spacing=(0.5, 0.5, 2.0)):
    return Volume(np.asarray(array), spacing=spacing, origin=(-10.0, 5.0, 30.0))


def test_rectangle_diameters_volume_and_hu():
    image = np.full((5, 40, 40), -1000.0)
    labels = np.zeros((5, 40, 40), np.uint8)
    labels[1:4, 10:16, 5:25] = 1  # 6 rows x 20 columns, 3 slices
    image[labels == 1] = 40.0
    image[2, 12, 10] = 100.0
    img, lab = _grid(image), _grid(labels)
    (m,) = measure_segments(img, lab)
    assert m.voxel_count == 3 * 6 * 20
    assert m.volume_ml == pytest.approx(360 * 0.5 * 0.5 * 2.0 / 1000)
    assert m.maximum == 100.0 and m.minimum == 40.0
    assert m.mean == pytest.approx((359 * 40 + 100) / 360)
    # corners: 20 x 0.5 = 10 mm wide, 6 x 0.5 = 3 mm high: the diagonal is the longest chord
    assert m.long_axis_mm == pytest.approx(np.hypot(10, 3))
    assert m.bbox_min_zyx == (1, 10, 5) and m.bbox_max_zyx == (3, 15, 24)
    assert m.bbox_min_mm[0] == pytest.approx(-10 + 4.5 * 0.5)
    assert m.bbox_max_mm[2] == pytest.approx(30 + 3.5 * 2.0)


def test_disc_diameter_close_to_true_diameter():
    yy, xx = np.mgrid[:101, :101]
    disc = (yy - 50) ** 2 + (xx - 50) ** 2 <= 40 ** 2  # diameter 81 pixels of centres
    long_axis, short_axis, _ = slice_diameters(disc, (1.0, 1.0))
    assert 81 <= long_axis <= 82.5
    assert 80 <= short_axis <= 82.5


def test_two_labels_and_empty_label():
    labels = np.zeros((3, 10, 10), np.uint8)
    labels[1, 2:4, 2:4] = 1
    labels[1, 6:9, 6:9] = 2
    ms = measure_segments(_grid(np.zeros_like(labels, float)), _grid(labels))
    assert [m.label for m in ms] == [1, 2]
    assert [m.voxel_count for m in ms] == [4, 9]
    with pytest.raises(MedviewerError):
        measure_segments(_grid(np.zeros_like(labels, float)), _grid(labels), [3])


def test_grid_mismatch_is_refused():
    with pytest.raises(MedviewerError):
        measure_segments(_grid(np.zeros((3, 10, 10))), _grid(np.zeros((3, 10, 11))))


def test_the_axial_diameter_of_a_sagittal_or_coronal_series():
    """RECIST's long axis is axial. A lesion long from head to foot, stored as a sagittal or a
    coronal series, is measured in its axial planes as in the axial original: it was measured in
    the series' own planes, where its head-foot length (30 mm here) came out as the long axis."""
    import SimpleITK as sitk

    zz, yy, xx = np.mgrid[:20, :30, :30]
    lesion = ((zz - 10) / 7.5) ** 2 + ((yy - 15) / 6) ** 2 + ((xx - 14) / 10) ** 2 <= 1  # 30 x 12 x 20 mm
    axial = Volume(lesion.astype(np.uint8), spacing=(1.0, 1.0, 2.0), origin=(-10.0, 5.0, 30.0))
    (want,) = measure_segments(axial, axial)
    assert want.long_axis_mm == pytest.approx(20, abs=1.5) and want.short_axis_mm == pytest.approx(12, abs=1.5)
    for order in ([1, 2, 0], [2, 0, 1]):  # index axes (P, S, L): sagittal; (S, L, P)
        other = Volume.from_sitk(sitk.PermuteAxes(axial.to_sitk(), order))
        (got,) = measure_segments(other, other)
        assert got.volume_ml == pytest.approx(want.volume_ml)
        assert got.long_axis_mm == pytest.approx(want.long_axis_mm)
        assert got.short_axis_mm == pytest.approx(want.short_axis_mm)
        assert np.allclose(sorted(got.long_axis_endpoints_mm), sorted(want.long_axis_endpoints_mm))
        assert got.bbox_min_mm == pytest.approx(want.bbox_min_mm)
