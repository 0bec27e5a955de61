"""RTSTRUCT: import of the expert sts contours, mask -> RTSTRUCT -> mask (Dice >= 0.95)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from medviewer.core.errors import MedviewerError
from medviewer.core.segments import Segment
from medviewer.core.volume import Volume
from medviewer.export.rtstruct import write_rtstruct
from medviewer.io import load_volume
from medviewer.core.polygon import polygon_mask
from medviewer.io.annotations import rasterize_contours, read_rtstruct, read_rtstruct_layer

DICE_FIGURES: dict[str, float] = {}


@pytest.mark.data
def test_sts_rtstruct_import_export_import(small_sts, tmp_path, validate, dice_of):
    """Must-show 2: RS.dcm -> mask A -> our RTSTRUCT -> mask B; Dice(A, B) >= 0.95."""
    for case in small_sts:
        volume = load_volume(case / "image")
        first = read_rtstruct_layer(case / "RS.dcm", volume)
        assert [s.name for s in first.segments] == ["GTV_Mass_CT"]
        assert first.warnings == []
        a = first.labels.array
        assert a.any() and first.labels.same_grid(volume)
        volume_ml = (a > 0).sum() * volume.voxel_volume_ml
        assert 10 < volume_ml < 2500  # the data set's tumours: 17 mL to 2.3 L
        out = write_rtstruct(volume, first.labels, first.segments, tmp_path / f"{case.name}-rtstruct.dcm")
        validate(out)
        second = read_rtstruct(out, volume)
        d = dice_of(a, second.array)
        DICE_FIGURES[case.name] = d
        print(f"{case.name}: {volume_ml:.1f} mL, Dice import/export/import = {d:.4f}")
        assert d >= 0.95   # the must-show's bar; in fact every voxel comes back:
        np.testing.assert_array_equal(second.array > 0, a > 0)
        assert second.meta["segments"][0].name == "GTV_Mass_CT"
        assert second.meta["segments"][0].color == first.segments[0].color


@pytest.mark.data
def test_sts_import_matches_an_independent_fill(small_sts):
    """The expert contours filled by OpenCV (an independent rasteriser) agree with ours."""
    import cv2

    case = small_sts[0]
    volume = load_volume(case / "image")
    ours = read_rtstruct(case / "RS.dcm", volume).array > 0
    ds = pydicom.dcmread(case / "RS.dcm")
    theirs = np.zeros(volume.shape, np.uint8)
    for c in ds.ROIContourSequence[0].ContourSequence:
        ijk = volume.patient_to_index(np.asarray(c.ContourData, float).reshape(-1, 3))
        k = int(np.rint(ijk[:, 2].mean()))
        pts = np.rint(ijk[:, :2] * 256).astype(np.int32).reshape(-1, 1, 2)
        layer = np.zeros(volume.shape[1:], np.uint8)
        cv2.fillPoly(layer, [pts], 1, shift=8)  # fills pixels touched by the outline too
        theirs[k] ^= layer
    theirs = theirs > 0
    assert (ours & ~theirs).sum() == 0  # ours: centres inside, a subset of the touched pixels
    assert ours.sum() / theirs.sum() > 0.85


def test_demo_lesions_rtstruct_round_trip(demo_volume, demo_labels, tmp_path, validate, dice_of):
    segments = [Segment(n, f"lesion {n}", (255, 40 * n, 0)) for n in (1, 2, 3)]
    out = write_rtstruct(demo_volume, demo_labels, segments, tmp_path / "demo-rtstruct.dcm")
    validate(out)
    back = read_rtstruct(out, demo_volume)
    for n in (1, 2, 3):
        d = dice_of(demo_labels.array == n, back.array == n)
        DICE_FIGURES[f"demo lesion {n}"] = d
        assert d >= 0.95
    np.testing.assert_array_equal(back.array, demo_labels.array)   # every voxel, in its segment
    ds = pydicom.dcmread(out)
    # every contour lies on the slice whose image it references
    uids = demo_volume.source_sop_instance_uids
    for c in ds.ROIContourSequence[0].ContourSequence:
        k = uids.index(c.ContourImageSequence[0].ReferencedSOPInstanceUID)
        z = demo_volume.patient_to_index(np.asarray(c.ContourData, float).reshape(-1, 3))[:, 2]
        np.testing.assert_allclose(z, k, atol=1e-3)


def test_holes_and_separate_islands_survive(demo_volume, tmp_path, validate):
    labels = np.zeros(demo_volume.shape, np.uint8)
    labels[40, 50:90, 50:90] = 1
    labels[40, 60:70, 60:70] = 0  # a hole
    labels[40, 100:105, 100:130] = 1  # an island
    labels[41, 50:90, 50:90] = 1
    labels[42, 10, 10] = 1  # a lone voxel: a contour around its centre
    labels[42, 20, 20:22] = 1  # two voxels
    labels[42, 30:34, 30] = 1  # a one-voxel-wide line
    out = write_rtstruct(demo_volume, demo_volume.with_array(labels), None, tmp_path / "holes-rtstruct.dcm")
    validate(out)
    back = read_rtstruct(out, demo_volume)
    np.testing.assert_array_equal(back.array > 0, labels > 0)


def test_polygon_fill_square_and_slices():
    inside, edge = polygon_mask(np.array([[2.0, 2.0], [5.0, 2.0], [5.0, 5.0], [2.0, 5.0]]), (8, 8))
    assert (inside | edge).sum() == 16  # a contour through pixel centres keeps its outline pixels
    assert (inside & ~edge).sum() == 4
    inside, edge = polygon_mask(np.array([[2.4, 2.4], [5.4, 2.4], [5.4, 5.4], [2.4, 5.4]]), (8, 8))
    assert inside.sum() == 9 and not edge.any()  # centres 3, 4, 5 on each axis
    volume = Volume(np.zeros((3, 8, 8)), spacing=(1, 1, 2), origin=(0, 0, 10))
    square = np.array([[2, 2, 12], [5, 2, 12], [5, 5, 12], [2, 5, 12]], float)
    mask, off = rasterize_contours([("CLOSED_PLANAR", square), ("CLOSED_PLANAR", square + [0, 0, 1])], volume)
    assert mask[1].sum() == 16 and mask[0].sum() == 0 and mask[2].sum() == 0
    assert off == 1  # halfway between slices: not guessed


def test_rtstruct_of_another_frame_of_reference_is_refused(demo_volume, demo_labels, tmp_path):
    out = write_rtstruct(demo_volume, demo_labels, None, tmp_path / "rs.dcm")
    other = demo_volume.with_array(demo_volume.array, frame_of_reference_uid="1.2.3.4")
    with pytest.raises(MedviewerError, match="frame of reference"):
        read_rtstruct(out, other)


def test_dice_figures_are_reported():
    for name, d in sorted(DICE_FIGURES.items()):
        print(f"Dice {name}: {d:.4f}")
