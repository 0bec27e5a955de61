"""3D Slicer's segmentation files (``.seg.nrrd``) both ways, through slicerio (the 3D Slicer
project's own Python reader and writer of them):

- ours, read by slicerio: every segment's name, colour, label value, terminology and voxels;
- Slicer's, written by slicerio as Slicer saves them (cropped to the segments' box; with its
  segments in two layers where they overlap), loaded in medviewer voxel for voxel with names and
  colours, in the window too."""

from __future__ import annotations

import numpy as np
import pytest
import slicerio   # the test extra installs it

from medviewer.export.labelmap import read_labelmap, write_labelmap
from tests.ui.conftest import window  # noqa: F401  (the viewer window, for File > Load segmentation)


def ijk_to_lps(volume, corner_zyx=(0, 0, 0)) -> np.ndarray:
    """The 4 x 4 matrix from (i, j, k) = (x, y, z) voxel index to LPS mm, the box starting at ``corner``."""
    m = np.eye(4)
    m[:3, :3] = np.asarray(volume.direction).reshape(3, 3) * np.asarray(volume.spacing)
    m[:3, 3] = volume.index_to_patient(np.asarray(corner_zyx, float)[::-1])
    return m


def slicer_segment(n: int, name: str, color, label: int, layer: int = 0) -> dict:
    return {"id": f"Segment_{n}", "name": name, "color": color, "labelValue": label, "layer": layer,
            "terminology": {"contextName": "Segmentation category and type - 3D Slicer General Anatomy list",
                            "category": ["SCT", "49755003", "Morphologically Altered Structure"],
                            "type": ["SCT", "4147007", "Mass"]}}


def test_slicer_reads_our_seg_nrrd(demo_lesions, demo_volume, tmp_path):
    labels, segments = demo_lesions
    out = write_labelmap(demo_volume.with_array(labels), segments, tmp_path / "lesions.seg.nrrd")
    read = slicerio.read_segmentation(out)
    assert np.allclose(read["ijkToLPS"], ijk_to_lps(demo_volume), atol=1e-4)
    np.testing.assert_array_equal(read["voxels"], np.transpose(labels, (2, 1, 0)))   # i, j, k
    got = {s["labelValue"]: s for s in read["segments"]}
    for s in segments:
        assert got[s.label]["name"] == s.name
        assert np.allclose(got[s.label]["color"], np.divide(s.color, 255), atol=1e-3)
        assert got[s.label]["terminology"]["type"] == ["SCT", s.type.value, s.type.meaning]


def test_a_slicer_segmentation_cropped_to_its_segments_loads_in_place(demo_lesions, demo_volume, tmp_path, window):
    labels, _ = demo_lesions
    lo = np.argwhere(labels > 0).min(0)
    hi = np.argwhere(labels > 0).max(0) + 1
    box = labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    path = tmp_path / "slicer.seg.nrrd"
    slicerio.write_segmentation(str(path), {
        "voxels": np.transpose(box, (2, 1, 0)), "ijkToLPS": ijk_to_lps(demo_volume, lo),
        "containedRepresentationNames": ["Binary labelmap"], "masterRepresentation": "Binary labelmap",
        "referenceImageExtentOffset": [int(v) for v in lo[::-1]],
        "segments": [slicer_segment(1, "nodule R", [1, 0, 0], 1), slicer_segment(2, "nodule L", [0, 0.8, 0], 2),
                     slicer_segment(3, "liver", [0.1, 0.2, 1], 3)]})
    placed, segments, notes = read_labelmap(path, demo_volume)
    assert notes == []   # a box of the series' own voxels: placed, not resampled
    np.testing.assert_array_equal(placed.array, labels)
    assert [(s.label, s.name, s.color) for s in segments] == [
        (1, "nodule R", (255, 0, 0)), (2, "nodule L", (0, 204, 0)), (3, "liver", (26, 51, 255))]

    window.set_volume(demo_volume)   # File > Load segmentation: the names and colours come along
    layer = window.load_segmentation(str(path))
    assert layer.label_names == {1: "nodule R", 2: "nodule L", 3: "liver"}
    assert layer.label_colors[2] == pytest.approx((0.0, 0.8, 0.0), abs=0.01)
    assert window.status_label.text() == "Loaded label map slicer"


def test_slicer_segments_that_overlap_in_two_layers_load_each_with_its_name(demo_volume, tmp_path):
    a = np.zeros(demo_volume.shape, np.uint8)
    b = np.zeros(demo_volume.shape, np.uint8)
    a[30:40, 100:140, 100:140] = 1
    b[35:45, 120:160, 120:160] = 1   # overlaps a in 5 x 20 x 20 voxels
    path = tmp_path / "layers.seg.nrrd"
    slicerio.write_segmentation(str(path), {
        "voxels": np.stack([np.transpose(a, (2, 1, 0)), np.transpose(b, (2, 1, 0))]),
        "ijkToLPS": ijk_to_lps(demo_volume),
        "containedRepresentationNames": ["Binary labelmap"], "masterRepresentation": "Binary labelmap",
        "segments": [slicer_segment(1, "whole lesion", [1, 0, 0], 1, layer=0),
                     slicer_segment(2, "enhancing part", [1, 1, 0], 1, layer=1)]})
    labels, segments, notes = read_labelmap(path, demo_volume)
    assert [(s.label, s.name, s.color) for s in segments] == [(1, "whole lesion", (255, 0, 0)),
                                                              (2, "enhancing part", (255, 255, 0))]
    np.testing.assert_array_equal(labels.array == 2, b > 0)            # the later segment where they overlap
    np.testing.assert_array_equal(labels.array == 1, (a > 0) & (b == 0))
    assert notes == ["segments overlap in 2000 voxels; the later segment is shown there"]


def test_a_broken_slicer_segmentation_is_refused_by_name(demo_volume, tmp_path):
    from medviewer.core.errors import MedviewerError

    path = tmp_path / "layers.seg.nrrd"
    voxels = np.zeros((2,) + tuple(demo_volume.size_xyz), np.uint8)
    voxels[0, 100:140, 100:140, 30:40] = 1
    slicerio.write_segmentation(str(path), {
        "voxels": voxels, "ijkToLPS": ijk_to_lps(demo_volume),
        "containedRepresentationNames": ["Binary labelmap"], "masterRepresentation": "Binary labelmap",
        "segments": [slicer_segment(1, "a", [1, 0, 0], 1, layer=0), slicer_segment(2, "b", [0, 1, 0], 1, layer=1)]})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])   # cut off halfway
    with pytest.raises(MedviewerError, match="cannot be read as an image") as e:
        read_labelmap(path, demo_volume)
    assert str(path) in str(e.value)
