"""NIfTI/NRRD label maps with label tables, and the lesion report (CSV/JSON)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from medviewer.core.segments import AlgorithmInfo, Segment
from medviewer.export.labelmap import read_label_table, read_labelmap, sidecar_path, write_labelmap
from medviewer.export.report import build_report, report_csv, write_report
from medviewer.io.demo_study import LESIONS


@pytest.mark.parametrize("name", ["labels.nii.gz", "labels.seg.nrrd", "plain.nrrd"])
def test_label_map_round_trip_with_table(demo_volume, demo_labels, tmp_path, name):
    segments = [Segment(1, "nodule right", (10, 20, 30)), Segment(2, "nodule left", (200, 100, 50)),
                Segment(3, "liver", (0, 255, 0), algorithm=AlgorithmInfo("AUTOMATIC", "unet", "1.2"))]
    out = write_labelmap(demo_labels, segments, tmp_path / name)
    labels, read, notes = read_labelmap(out, demo_volume)
    np.testing.assert_array_equal(labels.array, demo_labels.array)
    assert read == segments and notes == []
    if name.endswith(".nrrd"):  # the Slicer fields alone carry names and colours too
        (tmp_path / sidecar_path(out)).unlink()
        table = read_label_table(out)
        assert [(s.label, s.name, s.color) for s in table] == [(s.label, s.name, s.color) for s in segments]


def test_label_map_on_another_grid_is_resampled(demo_volume, demo_labels, tmp_path):
    import SimpleITK as sitk


    coarse = sitk.Resample(demo_labels.to_sitk(), [128, 128, 40], sitk.Transform(), sitk.sitkNearestNeighbor,
                           demo_labels.origin, (2.8, 2.8, 5.0), tuple(demo_labels.direction.ravel()), 0)
    path = tmp_path / "coarse.nii.gz"
    sitk.WriteImage(coarse, str(path))
    labels, segments, notes = read_labelmap(path, demo_volume)
    assert labels.same_grid(demo_volume) and "resampled" in notes[0]
    assert [s.label for s in segments] == [1, 2, 3]
    overlap = (labels.array > 0) & (demo_labels.array > 0)
    assert overlap.sum() / (demo_labels.array > 0).sum() > 0.8


def test_report_measures_demo_lesions(demo_volume, demo_labels, tmp_path):
    """Must-show 3 (demo truth): volume, HU, diameters per segment, with study and series UIDs."""
    segments = [Segment(n, lesion.name) for n, lesion in enumerate(LESIONS, start=1)]
    report = build_report(demo_volume, demo_labels, segments,
                          provenance={"plugin": "test", "version": "1"})
    assert report["source"]["study_instance_uid"] == demo_volume.meta["study_instance_uid"]
    assert report["source"]["series_instance_uid"] == demo_volume.meta["series_instance_uid"]
    assert report["provenance"]["plugin"] == "test"
    for lesion, row in zip(LESIONS, report["lesions"]):
        assert row["volume_ml"] == pytest.approx(lesion.volume_ml, rel=0.1)
        assert row["intensity"]["unit"] == "HU"
        assert abs(row["intensity"]["mean"] - lesion.hu) < 30  # the phantom adds noise
        assert row["recist"]["long_axis_mm"] == pytest.approx(2 * lesion.radius_mm, abs=3.0)
        assert row["recist"]["short_axis_mm"] <= row["recist"]["long_axis_mm"]
        assert row["recist"]["short_axis_mm"] == pytest.approx(2 * lesion.radius_mm, abs=3.5)
        np.testing.assert_allclose(row["centroid_mm"], lesion.center_mm, atol=1.5)
    out_json = write_report(report, tmp_path / "r.json")
    out_csv = write_report(report, tmp_path / "r.csv")
    assert json.loads(open(out_json).read())["lesions"][0]["name"] == "lesion 1"
    rows = list(csv.DictReader(io.StringIO(open(out_csv).read())))
    assert len(rows) == 3 and rows[2]["name"] == "lesion 3"
    assert float(rows[0]["volume_ml"]) == report["lesions"][0]["volume_ml"]
    assert rows[0]["series_instance_uid"] == demo_volume.meta["series_instance_uid"]


@pytest.mark.data
def test_report_of_sts_tumour(small_sts):
    from medviewer.io import load_volume
    from medviewer.io.annotations import read_rtstruct_layer

    volume = load_volume(small_sts[0] / "image")
    layer = read_rtstruct_layer(small_sts[0] / "RS.dcm", volume)
    report = build_report(volume, layer.labels, layer.segments)
    (row,) = report["lesions"]
    assert row["name"] == "GTV_Mass_CT"
    assert -200 < row["intensity"]["mean"] < 200 and row["intensity"]["min"] < row["intensity"]["max"]
    assert row["recist"]["long_axis_mm"] > row["recist"]["short_axis_mm"] > 10
    assert report["source"]["series_instance_uid"] == volume.meta["series_instance_uid"]
    print(report_csv(report))
