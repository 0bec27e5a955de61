import numpy as np
import pytest

from medviewer.core import Volume
from medviewer.segmentation.guidance import (
    click_map, corrective_click, deepest_point, dice, network_input, network_windows, pad_to_multiple,
    resample_to_spacing, window_bounds)


def ball(shape, centre, radius):
    zz, yy, xx = np.ogrid[:shape[0], :shape[1], :shape[2]]
    return (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= radius ** 2


def test_window_stays_inside_the_volume():
    lower, upper = window_bounds((30, 40, 50), (2, 20, 49), (16, 32, 32))
    assert tuple(lower) == (0, 4, 18) and tuple(upper) == (16, 36, 50)  # shifted in, not padded
    lower, upper = window_bounds((10, 40, 50), (5, 20, 25), (16, 32, 32))
    assert tuple(upper - lower) == (10, 32, 32)  # never larger than the volume


def test_a_window_for_each_click_the_windows_so_far_do_not_see():
    shape, size = (100, 40, 40), (16, 32, 32)
    windows = network_windows(shape, [(20, 20, 20), (22, 18, 22), (80, 20, 20), (77, 20, 20)], size)
    assert [tuple(lo) for lo, hi in windows] == [(12, 4, 4), (72, 4, 4)]  # the 2nd and 4th are seen
    assert len(network_windows(shape, [(20, 20, 20), (26, 20, 20)], size, margin=0)) == 1
    # 2 voxels from the first window's edge there is too little context: it gets its own window
    assert len(network_windows(shape, [(20, 20, 20), (26, 20, 20)], size, margin=4)) == 2
    assert all(np.all(hi - lo == size) for lo, hi in network_windows(shape, [(0, 0, 0), (99, 39, 39)], size))


def test_pad_to_multiple_repeats_the_edge():
    a = np.arange(2 * 3 * 17, dtype=float).reshape(1, 2, 3, 17)
    out = pad_to_multiple(a, 16)
    assert out.shape == (1, 16, 16, 32)
    assert np.array_equal(out[:, :2, :3, :17], a) and out[0, 15, 15, 31] == a[0, 1, 2, 16]


def test_click_map_peaks_at_clicks():
    m = click_map((9, 9, 9), [(4, 4, 4), (0, 8, 1)], sigma_vox=1.5)
    assert m[4, 4, 4] == pytest.approx(1.0) and m[0, 8, 1] == pytest.approx(1.0)
    assert 0 < m[4, 4, 6] < 1 and m[8, 0, 8] < 1e-3
    x = network_input(np.full((9, 9, 9), 50.0, np.float32), [(4, 4, 4)], [], 1.5)
    assert x.shape == (3, 9, 9, 9) and x[2].max() == 0 and x[0].max() == pytest.approx(0.0)


def test_deepest_point_and_robot_click():
    truth = ball((20, 20, 20), (10, 10, 10), 6)
    zyx, depth = deepest_point(truth)
    assert np.abs(zyx - 10).max() <= 1 and depth >= 4
    # prediction missing a big part -> positive click inside the missed part
    pred = truth.copy()
    pred[:, :, 10:] = False
    zyx, positive = corrective_click(pred, truth)
    assert positive and truth[tuple(zyx)] and not pred[tuple(zyx)]
    # prediction spilling -> negative click in the spill
    spill = truth | ball((20, 20, 20), (10, 10, 2), 4)
    zyx, positive = corrective_click(spill, truth)
    assert not positive and spill[tuple(zyx)] and not truth[tuple(zyx)]
    assert corrective_click(truth, truth) is None
    assert dice(truth, truth) == 1.0 and dice(truth, ~truth) == 0.0


def test_resample_keeps_physical_extent_and_labels():
    mask = np.zeros((10, 40, 40), np.uint8)
    mask[3:7, 10:30, 10:30] = 1
    v = Volume(mask, spacing=(1.0, 1.0, 3.0), origin=(5.0, -3.0, 100.0))
    r = resample_to_spacing(v, (2.0, 2.0, 3.0), labels=True)
    assert r.shape == (10, 20, 20) and r.array.dtype == np.uint8
    assert r.array.sum() * 4 == pytest.approx(mask.sum(), rel=0.15)
    centre = v.index_to_patient((19.5, 19.5, 4.5))
    assert np.allclose(r.index_to_patient((9.5, 9.5, 4.5)), centre)


def test_keep_clicked_drops_parts_without_a_click():
    from medviewer.segmentation.guidance import keep_clicked

    mask = ball((20, 20, 40), (10, 10, 8), 4) | ball((20, 20, 40), (10, 10, 30), 4)
    kept = keep_clicked(mask, [(10.2, 9.8, 8.4)])
    assert kept.sum() == mask.sum() // 2 and kept[10, 10, 8] and not kept[10, 10, 30]
    assert not keep_clicked(mask, [(0, 0, 0)]).any()   # no part at or near the click: nothing


def test_an_axial_grid_for_a_sagittal_or_feet_first_series():
    """The learned engine's model grid runs along L, P, S whatever the source's own order: a
    sagittal series (index axes P, S, L) or a feet-first one (flipped S) resamples onto the same
    grid as the axial original, voxel for voxel."""
    import SimpleITK as sitk

    from medviewer.segmentation.guidance import axial_axes

    rng = np.random.default_rng(1)
    axial = Volume(rng.normal(0, 100, (12, 30, 40)).astype(np.float32), spacing=(1.0, 1.5, 3.0),
                   origin=(5.0, -3.0, 100.0))
    want = resample_to_spacing(axial, (3.0, 3.0, 4.0), axial=True)
    assert np.array_equal(want.array, resample_to_spacing(axial, (3.0, 3.0, 4.0)).array)  # axial: same
    for image in (sitk.PermuteAxes(axial.to_sitk(), [1, 2, 0]), sitk.Flip(axial.to_sitk(), [True, False, True])):
        other = Volume.from_sitk(image)
        got = resample_to_spacing(other, (3.0, 3.0, 4.0), axial=True)
        assert got.shape == want.shape and np.allclose(got.direction, np.eye(3))
        assert np.allclose(got.origin, want.origin, atol=1e-6)
        assert np.allclose(got.array, want.array, atol=1e-3)
    # a gantry tilted by 10 degrees stays in its own planes (no padding), axes in L, P, S order
    tilt = np.radians(10)
    d = np.array([[0, 0, -1], [np.cos(tilt), np.sin(tilt), 0], [-np.sin(tilt), np.cos(tilt), 0]])  # P, S, R
    order, signs = axial_axes(d)
    assert list(order) == [2, 0, 1] and list(signs) == [-1, 1, 1]


def test_keep_clicked_takes_the_nearest_part_a_voxel_or_two_from_the_click():
    """A small nodule's mask may miss the voxel clicked on its edge: the part within two voxels
    is the clicked lesion; one farther away is not."""
    from medviewer.segmentation.guidance import keep_clicked

    mask = ball((20, 20, 40), (10, 10, 8), 3) | ball((20, 20, 40), (10, 10, 30), 3)
    kept = keep_clicked(mask, [(10, 10, 12.6)])          # two voxels beyond the first ball's edge
    assert kept[10, 10, 8] and not kept[10, 10, 30]
    assert not keep_clicked(mask, [(10, 10, 15)]).any()   # four voxels off: nothing there
