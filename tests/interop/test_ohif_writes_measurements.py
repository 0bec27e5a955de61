"""Measurement SRs as OHIF exports them (@cornerstonejs/adapters' MeasurementReport.generateReport,
written by dcmjs, in Node.js: tests/interop/conftest.py) load in medviewer: each length,
bidirectional and ellipse on its slice, its ends where OHIF put them, with OHIF's label; exported
again by medviewer, OHIF's reader finds them where they were, labelled as they were."""

from __future__ import annotations

import numpy as np

from medviewer.export.measurements import write_measurements
from medviewer.io.measurements_sr import read_measurements_sr
from tests.interop.conftest import read_with_ohif, write_sr_with_ohif


def test_ohif_measurements_load_where_ohif_drew_them_and_go_back(demo_volume, tmp_path):
    v = demo_volume
    mid = (np.asarray(v.size_xyz) - 1) // 2
    at = lambda di, dj: v.index_to_patient(mid + np.array([di, dj, 0], dtype=float)).tolist()  # noqa: E731
    image = v.source_sop_instance_uids[mid[2]]
    drawn = {
        "Length": [{"image": image, "points": [at(-20, -10), at(15, 20)], "stats": {"length": 64.5, "unit": "mm"},
                    "label": "node 2"}],
        "Bidirectional": [{"image": image, "points": [at(-20, -5), at(20, 5), at(-2, 8), at(2, -8)],
                           "stats": {"length": 57.7, "width": 23.1, "unit": "mm", "widthUnit": "mm"}}],
        "EllipticalROI": [{"image": image, "points": [at(0, -12), at(0, 12), at(-6, 0), at(6, 0)],
                           "stats": {"area": 317.0, "mean": 30.0, "stdDev": 5.0, "max": 60.0, "min": 0.0,
                                     "areaUnit": "mm\u00b2", "modalityUnit": "HU"}}],
    }
    sr = write_sr_with_ohif(drawn, v, tmp_path / "ohif.dcm")
    read = read_measurements_sr(sr, v)
    assert read.warnings == []
    (ruler,), (cross,), (ellipse,) = read.rulers, read.bidirectionals, read.ellipses
    assert np.allclose([ruler.start, ruler.end], drawn["Length"][0]["points"], atol=1e-3)
    assert ruler.caption == "64.5 mm"   # OHIF's own figure
    assert (ruler.label, cross.label, ellipse.label) == ("node 2", "", "")   # OHIF's label, kept
    assert np.allclose(cross.ends, drawn["Bidirectional"][0]["points"], atol=1e-3)
    assert np.allclose(ellipse.ends, drawn["EllipticalROI"][0]["points"], atol=1e-3)

    ours = write_measurements(v, [ruler], tmp_path / "ours.dcm", ellipses=[ellipse], bidirectionals=[cross])
    back = read_with_ohif("read_sr.mjs", ours, v)
    assert back["warnings"] == []
    for tool in ("Length", "Bidirectional"):
        (m,) = back["tools"][tool]
        assert m["image"] == image and np.allclose(m["points"], drawn[tool][0]["points"], atol=1e-3)
    assert back["tools"]["Length"][0]["label"] == "node 2"   # and back to OHIF with it
    (e,) = back["tools"]["EllipticalROI"]   # the major axis first, as drawn
    assert np.allclose(e["points"], drawn["EllipticalROI"][0]["points"], atol=1e-3)
