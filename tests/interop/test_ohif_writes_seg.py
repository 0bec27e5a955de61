"""SEGs as OHIF exports them (@cornerstonejs/adapters' generateSegmentation, written by dcmjs, run
in Node.js: tests/interop/conftest.py) load in medviewer onto their series, every voxel in its
segment, with names and colours.

On an image of odd width and height OHIF pads each frame to whole bytes instead of packing the
frames into one run of bits as DICOM asks: read as DICOM says, each frame would slide a little
further. medviewer tells such a file by its length, reads it frame by frame and says so."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from medviewer.core.segments import Segment
from tests.conftest import require_data
from tests.interop.conftest import write_with_ohif


def test_ohif_lesions_load_on_their_voxels_with_names_and_colours(demo_lesions, demo_volume, tmp_path):
    from medviewer.io.annotations import read_annotation

    labels, segments = demo_lesions
    out = write_with_ohif(labels, segments, demo_volume, tmp_path / "ohif.dcm")
    assert pydicom.dcmread(out).file_meta.ImplementationVersionName.startswith("dcmjs")
    layer = read_annotation(out, demo_volume)
    assert layer.warnings == []
    assert [(s.label, s.name) for s in layer.segments] == [(s.label, s.name) for s in segments]
    for got, want in zip(layer.segments, segments):
        assert np.abs(np.subtract(got.color, want.color)).max() <= 2
    np.testing.assert_array_equal(layer.labels.array, labels)


@pytest.mark.data
def test_an_ohif_seg_of_an_odd_sized_ct_loads_frame_by_frame(tmp_path):
    from medviewer.io import load_volume
    from medviewer.io.annotations import read_rtstruct, read_seg_layer

    case = require_data("sts/STS_023")
    volume = load_volume(str(case / "image"))   # 182 x 179 pixels: 32,578 a frame, not a multiple of 8
    gtv = read_rtstruct(case / "RS.dcm", volume).array > 0
    out = write_with_ohif(gtv, [Segment(1, "GTV", (221, 130, 101))], volume, tmp_path / "ohif.dcm")
    ds = pydicom.dcmread(out)
    frames = int(ds.NumberOfFrames)
    assert len(ds.PixelData) == frames * 4073 != -(-frames * 32578 // 8)   # each frame padded to bytes
    layer = read_seg_layer(out, volume)
    assert any("padded to whole bytes" in w for w in layer.warnings)
    np.testing.assert_array_equal(layer.labels.array == 1, gtv)
