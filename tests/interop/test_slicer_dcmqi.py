"""3D Slicer's DICOM converters, dcmqi (Slicer's Quantitative Reporting reads and writes SEG and
TID 1500 SR through them; the dcmqi wheel carries the same binaries), both ways:

- our SEGs, read by ``segimage2itkimage``, give back every segment voxel for voxel with its
  name, colour and codes; our lesion measures SR and measurement SR, read by ``tid1500reader``,
  give back each measure;
- SEGs written by ``itkimage2segimage`` (BINARY, and the newer LABELMAP) load in medviewer onto
  the series they segment, voxel for voxel, with their names and colours: they state no "spatial
  locations preserved" on their frames, and a LABELMAP describes its background as segment 0."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from medviewer.core.segments import Segment
from medviewer.export.seg import write_seg
from tests.conftest import require_data


def dcmqi(tool: str, *args) -> subprocess.CompletedProcess:
    """Run a dcmqi converter; skips without dcmqi (fails under CI, whose test extra installs it)."""
    exe = shutil.which(tool, path=os.path.dirname(sys.executable)) or shutil.which(tool)   # the venv's first
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"dcmqi's {tool} is not installed, and CI=true requires it (pip install -e '.[test]')")
        pytest.skip(f"dcmqi's {tool} is not installed")
    run = subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return run


def on_grid(image, volume) -> np.ndarray:
    """dcmqi's image of one segment (its extent only) placed on ``volume``'s grid."""
    from medviewer.io import read_image

    part = read_image(str(image))
    assert np.allclose(part.spacing, volume.spacing, atol=1e-4) and np.allclose(part.direction, volume.direction)
    corner = volume.patient_to_index(np.asarray(part.origin))
    i, j, k = np.rint(corner).astype(int)
    assert np.allclose(corner, (i, j, k), atol=1e-3)
    placed = np.zeros(volume.shape, bool)
    placed[k:k + part.shape[0], j:j + part.shape[1], i:i + part.shape[2]] = part.array > 0
    return placed


def test_slicer_reads_each_of_our_segments_voxel_for_voxel(demo_lesions, demo_volume, tmp_path):
    labels, segments = demo_lesions
    seg = write_seg(demo_volume, demo_volume.with_array(labels), segments, tmp_path / "lesions.dcm")
    out = tmp_path / "slicer"
    out.mkdir()
    dcmqi("segimage2itkimage", "--inputDICOM", seg, "--outputDirectory", out, "-t", "nii")
    meta = json.loads((out / "meta.json").read_text())
    read = {a["labelID"]: a for group in meta["segmentAttributes"] for a in group}
    assert sorted(read) == [1, 2, 3]
    for s in segments:
        attributes = read[s.label]
        assert attributes["SegmentLabel"] == s.name
        assert np.abs(np.subtract(attributes["recommendedDisplayRGBValue"], s.color)).max() <= 2
        assert attributes["SegmentedPropertyTypeCodeSequence"]["CodeValue"] == s.type.value
        np.testing.assert_array_equal(on_grid(out / f"{s.label}.nii.gz", demo_volume), labels == s.label)


@pytest.mark.data
def test_slicer_reads_an_expert_contour_on_a_real_ct(tmp_path):
    from medviewer.io import load_volume
    from medviewer.io.annotations import read_rtstruct

    case = require_data("sts/STS_023")
    volume = load_volume(str(case / "image"))
    gtv = read_rtstruct(case / "RS.dcm", volume).array > 0
    seg = write_seg(volume, volume.with_array(gtv.astype(np.uint8)), [Segment(1, "GTV")], tmp_path / "gtv.dcm")
    out = tmp_path / "slicer"
    out.mkdir()
    dcmqi("segimage2itkimage", "--inputDICOM", seg, "--outputDirectory", out, "-t", "nii")
    np.testing.assert_array_equal(on_grid(out / "1.nii.gz", volume), gtv)


def test_slicer_reads_our_lesion_measures(demo_series, demo_volume, tmp_path):
    """`medviewer export --format sr` (TID 1500, a volumetric group per segment of the SEG beside
    it) read by dcmqi's tid1500reader: each measure, its unit, and the segment it refers to."""
    import pydicom

    from medviewer.cli import main
    from medviewer.io import read_image

    labels = read_image(str(demo_series / "lesions.nii.gz"))
    labels_file = tmp_path / "labels.nii.gz"
    shutil.copy(demo_series / "lesions.nii.gz", labels_file)
    csv_out, sr_out = tmp_path / "measures.csv", tmp_path / "measures.dcm"
    assert main(["export", str(demo_series), "--seg", str(labels_file), "--out", str(csv_out)]) == 0
    assert main(["export", str(demo_series), "--seg", str(labels_file), "--format", "sr", "--out", str(sr_out)]) == 0
    out = tmp_path / "measures.json"
    dcmqi("tid1500reader", "--inputDICOM", sr_out, "--outputMetadata", out)
    read = json.loads(out.read_text())["Measurements"]

    import csv
    rows = list(csv.DictReader(csv_out.open()))
    assert len(read) == len(rows) == len(set(np.unique(labels.array)) - {0}) == 3
    seg = pydicom.dcmread(tmp_path / "measures-seg.dcm")
    for group, row in zip(read, rows):
        assert group["SourceSeriesForImageSegmentation"] == demo_volume.meta["series_instance_uid"]
        assert group["ReferencedSegment"] == int(row["label"])
        assert group["segmentationSOPInstanceUID"] == seg.SOPInstanceUID
        items = {(i["quantity"]["CodeMeaning"], i.get("derivationModifier", {}).get("CodeMeaning")): i
                 for i in group["measurementItems"]}
        volume = items[("Volume", None)]
        assert volume["units"]["CodeValue"] == "ml"
        assert float(volume["value"]) == pytest.approx(float(row["volume_ml"]), abs=0.001)
        assert float(items[("Attenuation Coefficient", "Mean")]["value"]) == pytest.approx(float(row["mean_hu"]),
                                                                                          abs=0.01)
        assert float(items[("Long axis", None)]["value"]) == pytest.approx(float(row["long_axis_mm"]), abs=0.01)


def slicer_seg(tmp_path, volume, series_folder, mask, kind: str) -> pathlib.Path:
    """``mask`` written as a SEG by dcmqi's itkimage2segimage, as Slicer exports one."""
    from medviewer.export.labelmap import write_labelmap

    image = tmp_path / f"{kind}.nii.gz"
    write_labelmap(volume.with_array(mask.astype(np.uint8)), None, image)
    meta = {"ContentCreatorName": "Slicer^User", "ClinicalTrialSeriesID": "1", "ClinicalTrialTimePointID": "1",
            "SeriesDescription": "Segmentation", "SeriesNumber": "300", "InstanceNumber": "1",
            "BodyPartExamined": "", "ContentLabel": "SEGMENTATION", "ContentDescription": "Slicer",
            "ClinicalTrialCoordinatingCenterName": "dcmqi",
            "segmentAttributes": [[{
                "labelID": 1, "SegmentLabel": "tumour", "SegmentDescription": "tumour",
                "SegmentAlgorithmType": "MANUAL", "recommendedDisplayRGBValue": [221, 130, 101],
                "SegmentedPropertyCategoryCodeSequence": {
                    "CodeValue": "49755003", "CodingSchemeDesignator": "SCT",
                    "CodeMeaning": "Morphologically Altered Structure"},
                "SegmentedPropertyTypeCodeSequence": {
                    "CodeValue": "108369006", "CodingSchemeDesignator": "SCT", "CodeMeaning": "Neoplasm"}}]]}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    out = tmp_path / f"slicer-{kind}.dcm"
    dcmqi("itkimage2segimage", "--inputImageList", image, "--inputDICOMDirectory", series_folder,
          "--inputMetadata", tmp_path / "meta.json", "--outputDICOM", out, "--segmentationType", kind)
    return out


@pytest.mark.data
@pytest.mark.parametrize("kind", ["binary", "labelmap"])
def test_a_seg_slicer_writes_loads_on_its_series(tmp_path, kind):
    import pydicom

    from medviewer.io import load_volume
    from medviewer.io.annotations import describe_annotation, read_annotation, read_rtstruct, read_seg_layer

    case = require_data("sts/STS_023")
    volume = load_volume(str(case / "image"))
    gtv = read_rtstruct(case / "RS.dcm", volume).array > 0
    out = slicer_seg(tmp_path, volume, case / "image", gtv, kind)
    assert str(pydicom.dcmread(out).SegmentationType) == kind.upper()
    assert describe_annotation(str(out)).kind == "SEG"   # found beside a study, loadable from the bar
    layer = read_annotation(out, volume)
    assert [(s.label, s.name, s.color, s.type.value) for s in layer.segments] == [
        (1, "tumour", (221, 130, 101), "108369006")]
    np.testing.assert_array_equal(layer.labels.array == 1, gtv)
    assert layer.warnings == []
    # on a copy of the series with other UIDs (an anonymised copy), placed by the frames' positions
    copy = volume.with_array(volume.array, source_sop_instance_uids=tuple(
        f"1.2.3.{k}" for k in range(volume.shape[0])))
    np.testing.assert_array_equal(read_seg_layer(out, copy).labels.array == 1, gtv)


def test_slicer_reads_our_measurement_report(demo_volume, tmp_path):
    """The measure tool's SR (lengths, bidirectionals, ellipses) read by dcmqi's tid1500reader:
    each group's measurements with their values and units, in order."""
    from medviewer.core.document import Bidirectional, Ellipse, Ruler
    from medviewer.core.roi_stats import ellipse_stats
    from medviewer.export.measurements import write_measurements

    v = demo_volume
    mid = (np.asarray(v.size_xyz) - 1) // 2
    at = lambda di, dj: v.index_to_patient(mid + np.array([di, dj, 0], dtype=float))  # noqa: E731
    ruler = Ruler(at(-20, -10), at(15, 20), "")
    cross = Bidirectional.across(at(-20, -5), at(20, 5), np.array([0.0, 0.0, 1.0]))
    ellipse = Ellipse(v.index_to_patient(mid), (12.0, 5.0, 0.0), (-2.5, 6.0, 0.0))
    sr = write_measurements(v, [ruler], tmp_path / "measurements.dcm", ellipses=[ellipse], bidirectionals=[cross])
    out = tmp_path / "measurements.json"
    dcmqi("tid1500reader", "--inputDICOM", sr, "--outputMetadata", out)
    groups = json.loads(out.read_text())["Measurements"]

    def values(group):
        return {(i["quantity"]["CodeMeaning"], i.get("derivationModifier", {}).get("CodeMeaning")):
                (float(i["value"]), i["units"]["CodeValue"]) for i in group["measurementItems"]}
    length, bidirectional, roi = (values(g) for g in groups)
    assert length == {("Length", None): (pytest.approx(np.linalg.norm(np.subtract(ruler.end, ruler.start)),
                                                       abs=1e-3), "mm")}
    assert bidirectional[("Long Axis", None)] == (pytest.approx(cross.long_mm, abs=1e-3), "mm")
    assert bidirectional[("Short Axis", None)] == (pytest.approx(cross.short_mm, abs=1e-3), "mm")
    stats = ellipse_stats(v, ellipse)
    assert roi[("Area", None)] == (pytest.approx(stats.area_mm2, abs=1e-3), "mm2")
    assert roi[("Attenuation Coefficient", "Mean")] == (pytest.approx(stats.mean, abs=0.01), "[hnsf'U]")


@pytest.mark.data
def test_a_labelmap_seg_of_background_alone_is_refused_by_name(tmp_path):
    import pydicom

    from medviewer.core.errors import MedviewerError
    from medviewer.io import load_volume
    from medviewer.io.annotations import read_annotation, read_rtstruct

    case = require_data("sts/STS_023")
    volume = load_volume(str(case / "image"))
    gtv = read_rtstruct(case / "RS.dcm", volume).array > 0
    ds = pydicom.dcmread(slicer_seg(tmp_path, volume, case / "image", gtv, "labelmap"))
    ds.SegmentSequence = ds.SegmentSequence[:1]   # segment 0, the background, alone
    ds.save_as(tmp_path / "background.dcm")
    with pytest.raises(MedviewerError, match="describes no segment") as e:
        read_annotation(tmp_path / "background.dcm", volume)
    assert "background.dcm" in str(e.value)
