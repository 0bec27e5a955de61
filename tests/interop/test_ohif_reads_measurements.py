"""Our measurement SRs, read by OHIF's own reader: @cornerstonejs/adapters' MeasurementReport,
which OHIF's SR extension calls to re-open an SR's measurements as editable tools. It runs in
Node.js (tests/interop/conftest.py).

Each length, bidirectional and ellipse must come back as Cornerstone's Length, Bidirectional and
EllipticalROI tool with its handles where we put them, in patient mm, on the image it lies on
(or, across slices, in the frame of reference)."""

from __future__ import annotations


import numpy as np
import pytest

from medviewer.core.document import Bidirectional, Ellipse, Ruler
from medviewer.export.measurements import write_measurements
from tests.interop.conftest import read_with_ohif


def test_ohif_reopens_each_length_bidirectional_and_ellipse_where_it_was_drawn(demo_volume, tmp_path):
    v = demo_volume
    mid = (np.asarray(v.size_xyz) - 1) // 2
    at = lambda di, dj, dk=0: v.index_to_patient(mid + np.array([di, dj, dk], dtype=float))  # noqa: E731
    z = np.array([0.0, 0.0, 1.0])
    axial = Ruler(at(-20, -10), at(15, 20), "", "target lesion 1")   # with the user's label
    across = Ruler(at(-20, 0, -5), at(10, 0, 6), "")    # a coronal ruler across slices: SCOORD3D
    cross = Bidirectional.across(at(-20, -5), at(20, 5), z).with_end_moved(3, at(0, 0) + [3.0, -12.0, 0.0], z)
    # its second axis the longer: DICOM's ELLIPSE lists the major axis first
    ellipse = Ellipse(v.index_to_patient(mid), (-3.0, 1.5, 0.0), (5.0, 10.0, 0.0))
    sr = write_measurements(v, [axial, across], tmp_path / "measurements.dcm", ellipses=[ellipse],
                            bidirectionals=[cross], observer_name="Doe^Jane")
    read = read_with_ohif("read_sr.mjs", sr, v)

    assert [g["tool"] for g in read["groups"]] == ["Length", "Length", "Bidirectional", "EllipticalROI"]
    assert read["warnings"] == []
    tools = read["tools"]
    assert sorted(tools) == ["Bidirectional", "EllipticalROI", "Length"]
    on_axial = v.source_sop_instance_uids[mid[2]]

    (first, second) = tools["Length"]
    assert first["image"] == on_axial and second["image"] is None
    assert second["frameOfReference"] == v.frame_of_reference_uid
    assert np.allclose(first["points"], [axial.start, axial.end], atol=1e-3)
    assert np.allclose(second["points"], [across.start, across.end], atol=1e-3)
    assert (first["label"], second["label"]) == ("target lesion 1", None)   # OHIF's label: the group's comment
    assert first["stats"]["length"] == pytest.approx(np.linalg.norm(np.subtract(axial.end, axial.start)), abs=1e-3)

    (b,) = tools["Bidirectional"]
    assert b["image"] == on_axial and np.allclose(b["points"], cross.ends, atol=1e-3)
    assert (b["stats"]["length"], b["stats"]["width"]) == (pytest.approx(cross.long_mm, abs=1e-3),
                                                          pytest.approx(cross.short_mm, abs=1e-3))

    (e,) = tools["EllipticalROI"]
    assert e["image"] == on_axial
    assert np.allclose(e["points"], ellipse.ends[[2, 3, 0, 1]], atol=1e-3)   # major axis first
    assert e["stats"]["area"] == pytest.approx(np.pi * np.hypot(3, 1.5) * np.hypot(5, 10), rel=1e-3)
