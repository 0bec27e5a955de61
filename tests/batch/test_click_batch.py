"""`medviewer batch click-segment` over real sarcomas: seed points from a CSV (each expert
RTSTRUCT's deepest interior point, found here through medviewer's own RTSTRUCT import) and from
measurement SRs (written here with medviewer's own SR writer: a length on one case, a
bidirectional on the other, from the expert contour's longest axial diameter). A SEG per study on
the source series' grid, referencing it; a cohort table of volumes and diameters."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest

from medviewer.cli import main
from tests.batch.conftest import _link_series

pytestmark = pytest.mark.data
CASES = ("STS_002", "STS_008")


def _dice(a, b) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


@pytest.fixture(scope="module")
def sarcomas(tmp_path_factory):
    """cohort/<case>/image (links to the shared series) with each case's expert mask, deepest
    interior point and RECIST-style long axis (from medviewer's own measures)."""
    from medviewer.core.measures import measure_segments
    from medviewer.io import load_volume
    from medviewer.io.annotations import read_rtstruct
    from medviewer.segmentation.guidance import deepest_point
    from tests.conftest import require_data

    sts = require_data("sts")
    root = tmp_path_factory.mktemp("sarcomas")
    cases = {}
    for case in CASES:
        _link_series(sts / case / "image", root / case / "image")
        volume = load_volume(str(root / case / "image"))
        truth = read_rtstruct(str(sts / case / "RS.dcm"), volume, roi_names="GTV_Mass_CT")
        mask = truth.array > 0
        deepest = volume.voxel_to_patient(deepest_point(mask, np.asarray(volume.spacing)[::-1])[0])
        measures = measure_segments(volume, truth.with_array(mask.astype(np.uint8)))[0]
        cases[case] = dict(volume=volume, truth=mask, deepest=deepest, measures=measures)
    return root, cases


def _check_study(out, study, case, sarcoma, min_dice=0.7):
    """The SEG on the source series' grid, referencing it, one segment per lesion, close to the
    expert's contour; returns the study's rows of the cohort table."""
    import pydicom

    from medviewer.io.annotations import read_seg_layer

    volume = sarcoma["volume"]
    seg = pydicom.dcmread(out / study / "result.dcm")
    assert seg.Modality == "SEG" and seg.FrameOfReferenceUID == volume.frame_of_reference_uid
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == volume.meta["series_instance_uid"]
    referenced = {i.ReferencedSOPInstanceUID for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced <= set(volume.source_sop_instance_uids)
    layer = read_seg_layer(str(out / study / "result.dcm"), volume)
    assert layer.labels.same_grid(volume)
    mask = np.asarray(layer.labels.array) > 0
    assert _dice(mask, sarcoma["truth"]) > min_dice, (case, _dice(mask, sarcoma["truth"]))
    return mask, len(seg.SegmentSequence)


def _table(out):
    with open(out / "lesions.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_click_segment_batch_from_a_points_csv(sarcomas, tmp_path, capsys):
    root, cases = sarcomas
    points = tmp_path / "points.csv"
    with open(points, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["study", "series", "x", "y", "z", "lesion", "positive"])
        for case, c in cases.items():
            w.writerow([case, "", *(f"{v:.2f}" for v in c["deepest"]), "sarcoma", 1])
    out = tmp_path / "out"
    args = ["batch", "click-segment", "--input", str(root), "--points", str(points), "--out", str(out),
            "--workers", "1", "--device", "cpu", "--quiet"]
    assert main(args) == 0, capsys.readouterr()
    text = capsys.readouterr().out
    assert "2 done, 0 failed" in text and "cohort table:" in text
    table = _table(out)
    assert len(table) == 2 and {r["lesion"] for r in table} == {"sarcoma"}
    for row in table:
        case = row["study"].rsplit("_", 1)[0]
        c = cases[case]
        mask, segments = _check_study(out, row["study"], case, c)
        assert segments == 1 and row["seeds"] == "csv" and row["segment"] == "1"
        ml = float(mask.sum()) * c["volume"].voxel_volume_ml
        assert float(row["volume_ml"]) == pytest.approx(ml, rel=1e-3)
        # diameters of the segmented lesion near the expert's
        assert float(row["long_axis_mm"]) == pytest.approx(c["measures"].long_axis_mm, rel=0.25)
        assert 0 < float(row["short_axis_mm"]) <= float(row["long_axis_mm"])
        assert row["series_uid"] == c["volume"].meta["series_instance_uid"]
    # a rerun skips both; a moved point computes that study again
    assert main(args) == 0
    assert "0 done, 0 failed, 2 skipped" in capsys.readouterr().out
    rows = list(csv.reader(open(points)))
    rows[1][2] = f"{float(rows[1][2]) + 2:.2f}"
    with open(points, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    assert main(args) == 0
    assert "1 done, 0 failed, 1 skipped" in capsys.readouterr().out
    assert len(_table(out)) == 2


def test_click_segment_batch_from_measurement_srs(sarcomas, tmp_path, capsys):
    from medviewer.core.document import Bidirectional, Ruler
    from medviewer.export.measurements import write_measurements

    src_root, cases = sarcomas
    root = tmp_path / "in"
    measured = {}
    for n, (case, c) in enumerate(cases.items()):
        _link_series(src_root / case / "image", root / case / "image")
        m = c["measures"]
        start, end = (np.asarray(p, dtype=float) for p in m.long_axis_endpoints_mm)
        middle, u = (start + end) / 2, (end - start) / np.linalg.norm(end - start)
        perp = np.cross(u, (0.0, 0.0, 1.0))
        perp /= np.linalg.norm(perp)
        if n == 0:
            ruler = Ruler(tuple(start), tuple(end), label="target 1")
            write_measurements(c["volume"], [ruler], root / case / "sr.dcm")
        else:
            bi = Bidirectional(tuple(start), tuple(end), tuple(middle - perp * m.short_axis_mm / 2),
                               tuple(middle + perp * m.short_axis_mm / 2), label="target 1")
            write_measurements(c["volume"], [], root / case / "sr.dcm", bidirectionals=[bi])
        measured[case] = m.long_axis_mm
    out = tmp_path / "out"
    assert main(["batch", "click-segment", "--input", str(root), "--seeds-from-sr", "--out", str(out),
                 "--workers", "1", "--device", "cpu", "--quiet"]) == 0, capsys.readouterr()
    table = _table(out)
    assert len(table) == 2
    for row in table:
        case = row["study"].rsplit("_", 1)[0]
        assert row["seeds"] == "sr" and row["lesion"] == "target 1"
        assert f"{measured[case]:.1f}" in row["measured_in_sr"]
        assert row["measured_in_sr"].startswith("length" if case == CASES[0] else "bidirectional")
        _check_study(out, row["study"], case, cases[case], min_dice=0.6)
        log = (out / row["study"] / "log.txt").read_text()
        assert "SR sr.dcm: " in log and "on this series" in log


def test_click_segment_batch_refusals(sarcomas, tmp_path, capsys):
    root, cases = sarcomas
    out = tmp_path / "out"
    points = tmp_path / "points.csv"
    points.write_text("study,x,y,z\nSTS_002,1,2,3\nSTS_099,1,2,3\n")
    assert main(["batch", "click-segment", "--input", str(root), "--points", str(points), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "line 3: no image series for study 'STS_099'" in err and len(err.strip().splitlines()) == 1
    points.write_text("study,x,y\nSTS_002,1,2\n")
    assert main(["batch", "click-segment", "--input", str(root), "--points", str(points), "--out", str(out)]) == 1
    assert "needs the column(s) z" in capsys.readouterr().err
    # a seed outside the image: that study fails, with the lesion named
    points.write_text("study,x,y,z,lesion\nSTS_002,0,0,5000,far away\n")
    assert main(["batch", "click-segment", "--input", str(root), "--points", str(points), "--out", str(out),
                 "--workers", "1", "--quiet", "--param", "engine=classical"]) == 1
    text = capsys.readouterr().out
    assert "1 series without seed points left out" in text
    assert "lesion 'far away': seed 0.0, 0.0, 5000.0 mm lies outside the image" in text
    assert not os.path.exists(out / "STS_002_3" / "done.json")


def test_click_segment_batch_from_a_pacs_with_its_measurement_sr(sarcomas, orthanc, sts_study, tmp_path, capsys,
                                                                 request):
    """The study and a measurement SR in the real Orthanc: retrieved with its SR, a seed at the
    length's middle, the SEG sent back to the PACS."""
    import pydicom

    from medviewer.core.document import Ruler
    from medviewer.export.measurements import write_measurements

    _, cases = sarcomas
    c = cases["STS_002"]
    ruler = Ruler(*(tuple(float(v) for v in p) for p in c["measures"].long_axis_endpoints_mm), label="target 1")
    sr = tmp_path / "sr.dcm"
    write_measurements(c["volume"], [ruler], sr)
    stored = orthanc.upload(str(sr))
    request.addfinalizer(lambda: orthanc.delete(f"/instances/{stored['ID']}"))  # leave the study as uploaded
    out = tmp_path / "out"
    assert main(["batch", "click-segment", "--pacs", orthanc.dicomweb_url, "--query", f"patient={sts_study.patient_id}",
                 "--cache", str(tmp_path / "cache"), "--seeds-from-sr", "--send-to-pacs", orthanc.dicomweb_url,
                 "--out", str(out), "--workers", "1", "--device", "cpu", "--quiet"]) == 0, capsys.readouterr()
    table = _table(out)
    assert len(table) == 1 and table[0]["seeds"] == "sr" and table[0]["lesion"] == "target 1"
    _check_study(out, table[0]["study"], "STS_002", c, min_dice=0.6)
    seg = pydicom.dcmread(out / table[0]["study"] / "result.dcm")
    found = orthanc.post("/tools/lookup", str(seg.SOPInstanceUID).encode())
    assert len(found) == 1
    request.addfinalizer(lambda: orthanc.delete(f"/instances/{found[0]['ID']}"))
