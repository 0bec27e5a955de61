"""Label-map editing: discs, paint/erase keep other segments, islands, click results, undo/redo."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.core.label_edit import (
    Clicks, EditStack, diff, disc_region, erase, paint, remove_islands, replace_segment,
)
from medviewer.core.volume import Volume


@pytest.fixture
def grid():
    return Volume(np.zeros((10, 40, 40), np.int16), spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0))


def test_disc_is_one_slice_thick_with_the_radius_in_mm(grid):
    box, mask = disc_region(grid, (20.0, 20.0, 9.0), 5.0, (0, 0, 1))   # z=9 mm: between slices 4 and 5
    full = np.zeros(grid.shape, bool)
    full[box] = mask
    zyx = np.argwhere(full)
    assert set(zyx[:, 0]) == {5}                      # one slice (halves round up)
    assert full.sum() == pytest.approx(np.pi * 25, rel=0.15)
    assert np.abs(zyx[:, 1:] - 20).max() <= 5
    # a sagittal disc (normal x): one column of x, radius over y and z (2 mm slices)
    box, mask = disc_region(grid, (20.0, 20.0, 10.0), 4.0, (1, 0, 0))
    full[:] = False
    full[box] = mask
    zyx = np.argwhere(full)
    assert set(zyx[:, 2]) == {20} and set(zyx[:, 0]) == {3, 4, 5, 6, 7}


def test_paint_erase_keep_other_segments_and_threshold():
    labels = np.zeros((1, 5, 5), np.uint8)
    labels[0, 0, :] = 2
    image = np.arange(25, dtype=np.int16).reshape(1, 5, 5)
    box = (slice(0, 1), slice(0, 5), slice(0, 5))
    everything = np.ones((1, 5, 5), bool)
    paint(labels, box, everything, 1, image, hu_range=(12, 20))
    assert (labels[0, 0] == 2).all()
    assert set(np.nonzero(labels.ravel() == 1)[0]) == set(range(12, 21))
    erase(labels, box, everything, 1)
    assert (labels == 1).sum() == 0 and (labels == 2).sum() == 5


def test_replace_segment_and_remove_islands():
    labels = np.zeros((3, 10, 10), np.uint8)
    labels[1, 0:2, 0:2] = 1           # old piece of segment 1
    labels[1, 5, 5] = 2               # another segment
    result = np.zeros_like(labels, bool)
    result[1, 4:7, 4:7] = True
    out = replace_segment(labels, 1, result)
    assert (out[1, 0:2, 0:2] == 0).all() and out[1, 5, 5] == 2 and (out == 1).sum() == 8
    islands = np.zeros((3, 20, 20), np.uint8)
    islands[1, 0:5, 0:5] = 1
    islands[1, 10:12, 10:12] = 1
    islands[1, 15, 15] = 1
    islands[1, 18, 18] = 2
    kept = remove_islands(islands, 1, (1.0, 1.0, 1.0))
    assert (kept == 1).sum() == 25 and kept[1, 18, 18] == 2
    kept = remove_islands(islands, 1, (1.0, 1.0, 1.0), min_ml=0.002)   # drops the 1-voxel piece
    assert (kept == 1).sum() == 29


def test_undo_redo_restores_voxels_and_clicks():
    a = np.zeros((4, 4, 4), np.uint8)
    b = a.copy()
    b[1:3, 1:3, 1:3] = 1
    c1, c2 = Clicks(), Clicks().add((1, 2, 3), True)
    change = diff(a, b, 1, "click", clicks_before=c1, clicks_after=c2)
    assert change.lower == (1, 1, 1) and change.upper == (3, 3, 3) and change.voxels_changed == 8
    stack = EditStack()
    stack.push(change)
    work = b.copy()
    assert stack.undo(work).clicks_before == c1 and not work.any()
    assert stack.redo(work) is change and np.array_equal(work, b)
    assert diff(a, a, 1) is None
    only_clicks = diff(a, a, 1, clicks_before=c1, clicks_after=c2)
    stack.push(only_clicks)
    assert stack.undo(work) is only_clicks and np.array_equal(work, b)
    assert not stack.can_redo() or stack.undone == [only_clicks]


def test_margin_grows_and_shrinks_in_millimetres_and_spares_other_segments():
    from medviewer.core.label_edit import margin, margin_radius

    labels = np.zeros((20, 40, 40), np.uint8)
    labels[8:12, 10:30, 10:30] = 1
    labels[8:12, 30:35, 10:30] = 2            # a neighbour touching segment 1 along y
    spacing = (1.0, 1.0, 3.0)                  # x, y, z mm
    assert margin_radius(spacing, 2.0) == (2, 2, 1) and margin_radius(spacing, 1.0) == (1, 1, 0)
    grown = margin(labels, 1, spacing, 2.0)
    zyx = np.argwhere(grown == 1)
    assert zyx.min(axis=0).tolist() == [7, 8, 8] and zyx.max(axis=0).tolist() == [12, 31, 31]
    assert np.argwhere(grown[8:12, :, 10:30] == 1)[:, 1].max() == 29   # stopped by the neighbour
    assert np.array_equal(grown == 2, labels == 2)       # the neighbour keeps every voxel
    shrunk = margin(labels, 1, spacing, -2.0)
    zyx = np.argwhere(shrunk == 1)
    assert zyx.min(axis=0).tolist() == [9, 12, 12] and zyx.max(axis=0).tolist() == [10, 27, 27]
    assert np.array_equal(shrunk == 2, labels == 2) and set(np.unique(shrunk)) == {0, 1, 2}
    assert np.array_equal(margin(labels, 1, spacing, 0.4), labels)   # under half a voxel: nothing
    # a segment cut off by the volume's edge is not eaten from there
    edge = np.zeros((6, 10, 10), np.uint8)
    edge[:, :, :5] = 1
    eroded = margin(edge, 1, (1.0, 1.0, 1.0), -1.0)
    assert eroded[:, :, :4].all() and not eroded[:, :, 4].any() and eroded[0, 0, 0] == 1


def _tilted_ball(shape=(40, 60, 60)):
    """A ball that moves along x as z goes (3 mm slices, 1 mm pixels): not a stack of equal discs."""
    z, y, x = np.mgrid[:shape[0], :shape[1], :shape[2]]
    return ((z - 20) * 3) ** 2 + (y - 30) ** 2 + (x - 30 - (z - 20)) ** 2 < 20 ** 2


def test_fill_between_slices_interpolates_a_shape_drawn_on_every_few_slices():
    from medviewer.core.label_edit import fill_between_slices, gap_axis

    ball = _tilted_ball()
    spacing = (1.0, 1.0, 3.0)
    for step, at_least in ((2, 0.97), (4, 0.95)):
        labels = np.zeros(ball.shape, np.uint8)
        labels[::step][ball[::step]] = 1
        assert gap_axis(labels == 1) == 0
        filled, axis = fill_between_slices(labels, 1, spacing)
        assert axis == 0
        drawn = np.flatnonzero(labels.any(axis=(1, 2)))
        truth = ball.copy()
        truth[:drawn[0]] = truth[drawn[-1] + 1:] = False   # nothing is made up beyond the drawn slices
        f = filled == 1
        assert 2 * (f & truth).sum() / (f.sum() + truth.sum()) >= at_least
        assert not f[:drawn[0]].any() and not f[drawn[-1] + 1:].any()
        assert np.array_equal(filled[drawn], labels[drawn])          # drawn slices unchanged
        assert labels.sum() < f.sum() and set(np.unique(filled)) == {0, 1}


def test_fill_between_slices_spares_other_segments_and_follows_the_drawing_axis():
    from medviewer.core.label_edit import fill_between_slices

    ball = _tilted_ball()
    labels = np.zeros(ball.shape, np.uint8)
    labels[:, :, :25] = 2                              # a neighbour over part of the ball
    labels[:, ::3][ball[:, ::3]] = 1                   # drawn on every third coronal slice (y)
    filled, axis = fill_between_slices(labels, 1, (1.0, 1.0, 3.0))
    assert axis == 1
    assert np.array_equal(filled == 2, labels == 2)     # the neighbour keeps every voxel
    assert (filled == 1).sum() > 2 * (labels == 1).sum()
    assert not ((filled == 1) & ~ball).sum() > 0.05 * ball.sum()
    # no gaps (or no segment): nothing to do
    solid = ball.astype(np.uint8)
    same, axis = fill_between_slices(solid, 1, (1.0, 1.0, 3.0))
    assert axis is None and np.array_equal(same, solid)
    assert fill_between_slices(solid, 5, (1.0, 1.0, 3.0))[1] is None
    # an axis forced: along x there is nothing between drawn slices here
    assert fill_between_slices(labels, 1, (1.0, 1.0, 3.0), axis=2)[1] is None


def test_smoothing_methods_do_what_they_say_and_spare_other_segments():
    from medviewer.core.label_edit import smooth

    z, y, x = np.mgrid[:20, :60, :60]
    ball = ((z - 10) * 3) ** 2 + (y - 30) ** 2 + (x - 30) ** 2 < 18 ** 2
    labels = ball.astype(np.uint8)
    labels[10, 30, 48:56] = 1                  # a strand one voxel thick out of the ball
    labels[10, 29:32, 29:32] = 0               # a small hole inside it
    labels[:, :, 55:] = np.where(labels[:, :, 55:] == 0, 2, labels[:, :, 55:])   # a neighbour
    rough = labels.copy()
    edge = np.abs(np.sqrt(((z - 10) * 3) ** 2 + (y - 30) ** 2 + (x - 30) ** 2) - 18) < 1.5
    flip = edge & (np.random.default_rng(0).random(labels.shape) < 0.3) & (labels != 2)
    rough[flip] = np.where(rough[flip] == 1, 0, 1)
    spacing = (1.0, 1.0, 3.0)
    dice = lambda m: 2 * (m & ball).sum() / (m.sum() + ball.sum())   # noqa: E731
    out = {m: smooth(rough, 1, spacing, 4.0, m) for m in ("median", "closing", "opening", "gaussian")}
    for result in out.values():
        assert np.array_equal(result == 2, rough == 2)          # the neighbour keeps every voxel
    assert dice(out["median"] == 1) > dice(rough == 1) + 0.04     # a ragged edge made smooth
    assert dice(out["gaussian"] == 1) > dice(rough == 1) + 0.03
    for m in ("median", "opening", "gaussian"):
        assert not (out[m][10, 30, 50:55] == 1).any(), m          # the thin strand is cut
    assert (out["closing"][10, 29:32, 29:32] == 1).all()          # the hole is filled
    assert (out["median"][10, 29:32, 29:32] == 1).all()
    assert (out["opening"] == 1).sum() < (rough == 1).sum() < (out["closing"] == 1).sum()
    assert np.array_equal(smooth(rough, 1, spacing, 1.5, "median"), rough)   # under two voxels: nothing
    from medviewer.core.label_edit import smoothing_radius
    assert smoothing_radius(spacing, 4.0) == (2, 2, 0) and smoothing_radius((0.98, 0.98, 3.27), 3.0) == (1, 1, 0)
    one_slice = np.zeros_like(rough)
    one_slice[10][ball[10]] = 1                                            # drawn on one slice
    assert (smooth(one_slice, 1, spacing, 4.0, "opening") == 1).sum() > 0.95 * one_slice.sum()
    with pytest.raises(ValueError):
        smooth(rough, 1, spacing, 4.0, "bilateral")


def test_scissors_cut_through_every_slice_or_one_along_the_views_axis():
    from medviewer.core.label_edit import scissors
    from medviewer.core.volume import Volume

    volume = Volume(np.zeros((10, 20, 30)), spacing=(1.0, 1.0, 2.0), origin=(5.0, -3.0, 7.0))
    labels = np.ones((10, 20, 30), np.uint8)
    labels[:, :, 25:] = 2                                  # another segment
    at = lambda *ijk: volume.index_to_patient(np.array(ijk, float))  # noqa: E731
    square = [at(5, 5, 3), at(27, 5, 3), at(27, 8, 3), at(5, 8, 3)]   # axial; reaches into segment 2
    cut = scissors(labels, 1, volume, square, 2, "erase_inside")
    gone = np.argwhere((labels == 1) & (cut == 0))
    assert len(gone) == 20 * 4 * 10 and gone.min(0).tolist() == [0, 5, 5] and gone.max(0).tolist() == [9, 8, 24]
    assert np.array_equal(cut == 2, labels == 2)           # the other segment untouched
    one = scissors(labels, 1, volume, square, 2, "erase_inside", slice_index=3)
    assert set(np.argwhere(one == 0)[:, 0].tolist()) == {3} and (one == 0).sum() == 80
    coronal = [at(5, 7, 2), at(10, 7, 2), at(10, 7, 6), at(5, 7, 6)]   # drawn across y
    kept = scissors(labels, 1, volume, coronal, 1, "erase_outside")
    assert np.argwhere(kept == 1).min(0).tolist() == [2, 0, 5] and np.argwhere(kept == 1).max(0).tolist() == [6, 19, 10]
    assert np.array_equal(kept == 2, labels == 2)
    empty = np.where(labels == 2, 2, 0).astype(np.uint8)
    filled = scissors(empty, 3, volume, square, 2, "fill_inside", slice_index=4)
    assert (filled == 3).sum() == 20 * 4 and np.array_equal(filled == 2, empty == 2)   # never over segment 2
    assert np.array_equal(scissors(labels, 1, volume, square[:2], 2), labels)   # two points: no outline
    with pytest.raises(ValueError):
        scissors(labels, 1, volume, square, 2, "cut")


def test_a_change_computed_within_a_box_equals_the_whole_grid_one():
    """The click tool rewrites and compares only the box holding the segment before and after
    (bounding_box, union_box): the same label map and the same undo record as the whole-grid
    passes, for a segment that moves, grows beside another segment and vanishes."""
    from medviewer.core.label_edit import bounding_box, diff, replace_segment, union_box

    rng = np.random.default_rng(3)
    labels = np.zeros((20, 30, 40), np.uint8)
    labels[2:6, 3:9, 4:12] = 1
    labels[10:14, 10:20, 20:30] = 2
    for result in (np.zeros(labels.shape, bool), rng.random(labels.shape) > 0.995):
        result[8:12, 12:18, 18:25] |= result.any()   # overlaps segment 2, which keeps its voxels
        box = union_box(bounding_box(labels == 1), bounding_box(result))
        whole = replace_segment(labels, 1, result)
        boxed = replace_segment(labels, 1, result, within=box)
        assert np.array_equal(whole, boxed)
        a, b = diff(labels, whole, 1, "click"), diff(labels, boxed, 1, "click", within=box)
        assert (a.lower, a.upper) == (b.lower, b.upper)
        assert np.array_equal(a.before, b.before) and np.array_equal(a.after, b.after)
    assert bounding_box(np.zeros((3, 3, 3), bool)) is None and union_box(None, None) is None
    assert bounding_box(labels == 2) == (slice(10, 14), slice(10, 20), slice(20, 30))
