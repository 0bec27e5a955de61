"""DICOM SEG: mask -> SEG -> mask identical, valid per dciodvfy, frames in source order."""

from __future__ import annotations

import os

import numpy as np
import pydicom
import pytest

from medviewer.core.errors import MedviewerError
from medviewer.core.segments import AlgorithmInfo, NEOPLASM, Segment
from medviewer.export.seg import write_seg
from medviewer.io.annotations import read_seg, read_seg_layer, read_seg_masks


def test_demo_lesions_round_trip_identical(demo_volume, demo_labels, tmp_path, validate):
    segments = [Segment(1, "right lung nodule", (255, 0, 0)), Segment(2, "left lung nodule", (0, 200, 0)),
                Segment(3, "liver lesion", (30, 60, 255), type=NEOPLASM)]
    out = write_seg(demo_volume, demo_labels, segments, tmp_path / "demo-seg.dcm")
    validate(out)
    layer = read_seg_layer(out, demo_volume)
    assert layer.labels.same_grid(demo_volume)
    np.testing.assert_array_equal(layer.labels.array, demo_labels.array)
    assert [s.name for s in layer.segments] == [s.name for s in segments]
    for written, read in zip(segments, layer.segments):
        assert np.abs(np.subtract(written.color, read.color)).max() <= 2  # via CIELab
        assert read.type == written.type and read.category == written.category
    assert layer.segments[2].type.value == "108369006"


def test_frames_follow_source_order_and_empty_frames_are_omitted(demo_volume, demo_labels, tmp_path):
    out = write_seg(demo_volume, demo_labels, None, tmp_path / "order.dcm")
    ds = pydicom.dcmread(out)
    uids = demo_volume.source_sop_instance_uids
    slices_with = {n: set(np.nonzero((demo_labels.array == n).any(axis=(1, 2)))[0]) for n in (1, 2, 3)}
    assert int(ds.NumberOfFrames) == sum(len(v) for v in slices_with.values())
    order = {}
    for item in ds.PerFrameFunctionalGroupsSequence:
        segment = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        source = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        k = uids.index(source)
        position = np.array([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient])
        np.testing.assert_allclose(position, demo_volume.voxel_to_patient((k, 0, 0)), atol=1e-3)
        assert k in slices_with[segment]  # no empty frame
        order.setdefault(segment, []).append(k)
    # highdicom (>= 0.23, issue #330) orders each segment's frames along the slice normal, from
    # its first plane (superior for axial CT) on: one direction, no jumps back
    for ks in order.values():
        assert sorted(ks) == ks or sorted(ks, reverse=True) == ks
    assert len({ks[0] > ks[-1] for ks in order.values() if len(ks) > 1}) == 1  # one direction for all
    assert str(ds.FrameOfReferenceUID) == demo_volume.frame_of_reference_uid
    assert str(ds.ReferencedSeriesSequence[0].SeriesInstanceUID) == demo_volume.meta["series_instance_uid"]


def test_overlapping_segments_survive(demo_volume, tmp_path, validate):
    a = np.zeros(demo_volume.shape, np.uint8)
    b = np.zeros(demo_volume.shape, np.uint8)
    a[30:40, 100:140, 100:140] = 1
    b[35:45, 120:160, 120:160] = 1  # overlaps a
    segments = [Segment(1, "whole lesion"), Segment(2, "enhancing part", (255, 255, 0))]
    out = write_seg(demo_volume, [demo_volume.with_array(a), demo_volume.with_array(b)], segments,
                    tmp_path / "overlap.dcm")
    validate(out)
    masks, read = read_seg_masks(out, demo_volume)
    np.testing.assert_array_equal(masks[..., 0], a.astype(bool))
    np.testing.assert_array_equal(masks[..., 1], b.astype(bool))
    layer = read_seg_layer(out, demo_volume)
    assert any("overlap" in w for w in layer.warnings)


def test_algorithm_identification_is_written(demo_volume, demo_labels, tmp_path, validate):
    algorithm = AlgorithmInfo("SEMIAUTOMATIC", "click-to-segment", "0.1.0")
    segments = [Segment(n, f"lesion {n}", algorithm=algorithm) for n in (1, 2, 3)]
    out = write_seg(demo_volume, demo_labels, segments, tmp_path / "semi.dcm")
    validate(out)
    ds = pydicom.dcmread(out, stop_before_pixels=True)
    item = ds.SegmentSequence[0]
    assert item.SegmentAlgorithmType == "SEMIAUTOMATIC"
    assert item.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "click-to-segment"
    assert item.SegmentationAlgorithmIdentificationSequence[0].AlgorithmVersion == "0.1.0"
    layer = read_seg_layer(out, demo_volume)
    assert layer.segments[0].algorithm == algorithm
    with pytest.raises(ValueError):
        AlgorithmInfo("AUTOMATIC")  # a plugin must name itself


def test_empty_or_off_grid_label_map_is_refused(demo_volume, tmp_path):
    with pytest.raises(MedviewerError, match="empty"):
        write_seg(demo_volume, demo_volume.with_array(np.zeros(demo_volume.shape, np.uint8)), None,
                  tmp_path / "empty.dcm")
    other = demo_volume.with_array(np.ones(demo_volume.shape, np.uint8), spacing=(2.0, 2.0, 2.0))
    with pytest.raises(MedviewerError, match="grid"):
        write_seg(demo_volume, other, None, tmp_path / "grid.dcm")
    assert not os.listdir(tmp_path)


@pytest.mark.data
def test_lung_tumour_seg_valid_and_identical(lung_volume, lung_tumour, tmp_path, validate):
    """Must-show 1: the A0001 tumour as SEG: 0 dciodvfy errors, highdicom reads the same mask."""
    import highdicom as hd

    mask, _ = lung_tumour
    segment = Segment(1, "tumour", (255, 80, 0), type=NEOPLASM,
                      algorithm=AlgorithmInfo("SEMIAUTOMATIC", "SimpleITK ConnectedThreshold", "2.5"))
    out = write_seg(lung_volume, mask, [segment], tmp_path / "lung-tumour-seg.dcm")
    validate(out)
    seg = hd.seg.segread(out)
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=list(lung_volume.source_sop_instance_uids), segment_numbers=[1],
        assert_missing_frames_are_empty=True)[..., 0]
    np.testing.assert_array_equal(pixels.astype(bool), mask.array.astype(bool))
    np.testing.assert_array_equal(read_seg(out, lung_volume).array, mask.array)
    assert int(seg.NumberOfFrames) == int(mask.array.any(axis=(1, 2)).sum())


def test_seg_placed_by_position_on_a_copy_with_other_uids(demo_volume, demo_labels, tmp_path):
    """A SEG whose source instances are not the volume's (a re-export, an anonymised copy with
    other UIDs) is placed by its frames' positions, and refused when they miss the slices."""
    out = write_seg(demo_volume, demo_labels, None, tmp_path / "s.dcm")
    other_uids = tuple(f"1.2.3.{k}" for k in range(demo_volume.shape[0]))
    copy = demo_volume.with_array(demo_volume.array, source_sop_instance_uids=other_uids)
    np.testing.assert_array_equal(read_seg(out, copy).array, demo_labels.array)
    shifted = copy.with_array(copy.array, origin=tuple(np.add(copy.origin, (0, 0, 1.0))))
    with pytest.raises(MedviewerError, match="slices"):
        read_seg(out, shifted)


def test_a_series_anonymised_without_its_uids_gets_a_clear_refusal(demo_series, tmp_path):
    """Source images with empty SOP Class/Instance, Study and Series UIDs (the shared JPEG 2000
    series is so; imitated here on a copy of the demo): no SEG can reference them. write_seg, and
    segment --out X.dcm before it segments, say which file and what to do; nothing is written."""
    import shutil
    import subprocess
    import sys

    from medviewer.io import load_volume
    from tests.conftest import ROOT

    copy = tmp_path / "anon"
    shutil.copytree(demo_series, copy, ignore=shutil.ignore_patterns("*.json", "*.nii.gz"))
    for path in copy.iterdir():
        ds = pydicom.dcmread(path)
        for key in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
            setattr(ds, key, "")
        ds.save_as(path)
    volume = load_volume(copy)
    labels = volume.with_array((volume.array > 100).astype(np.uint8))
    out = tmp_path / "out" / "seg.dcm"
    out.parent.mkdir()
    with pytest.raises(MedviewerError, match="anonymised without its UIDs.*label map"):
        write_seg(volume, labels, None, out)
    r = subprocess.run([sys.executable, "-m", "medviewer", "segment", str(copy), "--point=-60,0,-75",
                        "--engine", "classical", "--out", str(out)], capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    assert r.returncode == 1 and "anonymised without its UIDs" in r.stderr and "Traceback" not in r.stderr
    assert "segmented" not in r.stdout   # refused before segmenting
    assert not os.listdir(out.parent)
