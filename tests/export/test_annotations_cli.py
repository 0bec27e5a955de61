"""Finding SEG/RTSTRUCT objects of a study, de-identification, detections, and the export CLI."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pydicom
import pytest

from medviewer.cli import main
from medviewer.core.segments import DetectionBox, Segment
from medviewer.export.deidentify import Deidentifier
from medviewer.export.rtstruct import write_rtstruct
from medviewer.export.seg import build_seg, write_seg
from medviewer.export.sources import source_datasets
from medviewer.io import index_folder
from medviewer.io.annotations import find_annotations, read_annotation, read_seg


@pytest.fixture()
def study_with_annotations(demo_series, demo_volume, demo_labels, tmp_path):
    study = tmp_path / "study"
    shutil.copytree(demo_series, study / "CT")
    write_seg(demo_volume, demo_labels, [Segment(n, f"lesion {n}") for n in (1, 2, 3)], study / "seg.dcm")
    write_rtstruct(demo_volume, demo_labels, [Segment(n, f"roi {n}") for n in (1, 2, 3)], study / "rs.dcm")
    return study


def test_annotations_are_found_and_read_on_their_series(study_with_annotations, demo_labels):
    from medviewer.io import load_series

    index = index_folder(study_with_annotations)
    (ct,) = [s for s in index.all_series() if s.modality == "CT"]
    volume = load_series(ct, index.study_of(ct))
    found = find_annotations(index, ct)
    assert sorted(r.kind for r in found) == ["RTSTRUCT", "SEG"]
    assert all(r.matched_by == "series" for r in found)
    assert {os.path.basename(r.path) for r in find_annotations(index, volume)} == {"seg.dcm", "rs.dcm"}
    for ref in found:
        layer = read_annotation(ref.path, volume)
        assert layer.labels.same_grid(volume)
        assert len(layer.segments) == 3
        agreement = (layer.labels.array == demo_labels.array).mean()
        assert agreement > 0.999 if ref.kind == "RTSTRUCT" else agreement == 1.0


def test_deidentified_seg_references_the_deidentified_series(demo_volume, demo_labels, tmp_path, validate):
    deid = Deidentifier(seed=3)
    images = [deid.apply(ds) for ds in source_datasets(demo_volume, pixels=True)]
    seg = build_seg(demo_volume, demo_labels, None, source_images=images)
    out = tmp_path / "deid-seg.dcm"
    seg.save_as(out, enforce_file_format=True)
    validate(out)
    ds = pydicom.dcmread(out)
    assert str(ds.StudyInstanceUID) == deid.uid(demo_volume.meta["study_instance_uid"])
    assert str(ds.FrameOfReferenceUID) == deid.uid(demo_volume.frame_of_reference_uid)
    assert str(ds.ReferencedSeriesSequence[0].SeriesInstanceUID) == deid.uid(demo_volume.meta["series_instance_uid"])
    refs = {str(i.ReferencedSOPInstanceUID) for i in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert refs <= {deid.uid(u) for u in demo_volume.source_sop_instance_uids}
    assert str(ds.PatientID) == deid.pseudonym and "MEDVIEWER-DEMO" not in open(out, "rb").read().decode("latin-1")
    assert ds.PatientIdentityRemoved == "YES"
    # the de-identified images, saved, load and take the SEG back by reference
    folder = tmp_path / "images"
    folder.mkdir()
    for n, image in enumerate(images):
        image.save_as(folder / f"{n}.dcm", enforce_file_format=True)
    from medviewer.io import load_volume

    copy = load_volume(folder)
    np.testing.assert_array_equal(read_seg(out, copy).array, demo_labels.array)
    assert copy.meta["study_date"] != demo_volume.meta["study_date"]


def test_dates_shift_and_uids_map_consistently():
    deid = Deidentifier(date_shift_days=-10, seed=1)
    assert deid.shift_date("20240305") == "20240224"
    assert deid.uid("1.2.3") == deid.uid("1.2.3") != deid.uid("1.2.4")
    assert deid.uid("1.2.840.10008.5.1.4.1.1.2") == "1.2.840.10008.5.1.4.1.1.2"


def test_cli_export_all_formats(demo_series, tmp_path, capsys):
    mask = os.path.join(demo_series, "lesions.nii.gz")
    for fmt, name in (("seg", "a.dcm"), ("rtstruct", "b.dcm"), ("nifti", "c.nii.gz"), ("nrrd", "d.seg.nrrd"),
                      ("csv", "e.csv"), ("json", "f.json"), ("sr", "h.dcm")):
        assert main(["export", str(demo_series), "--seg", mask, "--format", fmt, "--out", str(tmp_path / name)]) == 0
    out = capsys.readouterr().out
    assert "lesion 3" in out and "mL" in out
    assert f"the SEG it refers to: {tmp_path / 'h-seg.dcm'}" in out and (tmp_path / "h-seg.dcm").exists()
    assert pydicom.dcmread(tmp_path / "h.dcm").Modality == "SR"
    # the SEG as input of another export, and the existing file refused without --force
    assert main(["export", str(demo_series), "--seg", str(tmp_path / "a.dcm"), "--out", str(tmp_path / "g.json")]) == 0
    report = json.loads((tmp_path / "g.json").read_text())
    assert len(report["lesions"]) == 3
    assert main(["export", str(demo_series), "--seg", mask, "--out", str(tmp_path / "e.csv")]) == 1
    assert "already exists (use --force" in capsys.readouterr().err
    assert main(["export", str(demo_series), "--seg", mask, "--out", str(tmp_path / "e.csv"), "--force"]) == 0


def test_cli_deidentified_seg_comes_with_its_series(demo_series, tmp_path, capsys, validate):
    mask = os.path.join(demo_series, "lesions.nii.gz")
    out = tmp_path / "shared-seg.dcm"
    assert main(["export", str(demo_series), "--seg", mask, "--format", "seg", "--out", str(out), "--deidentify",
                 "--algorithm", "semiautomatic", "--algorithm-name", "click", "--algorithm-version", "0.1"]) == 0
    validate(out)
    images = tmp_path / "shared-seg-images"
    assert len(os.listdir(images)) == 80
    assert main(["export", str(images), "--seg", str(out), "--out", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["source"]["patient_id"].startswith("ANON-")
    assert report["lesions"][0]["algorithm"] == {"type": "SEMIAUTOMATIC", "name": "click", "version": "0.1"}


def test_cli_automatic_without_name_is_refused(demo_series, tmp_path, capsys):
    mask = os.path.join(demo_series, "lesions.nii.gz")
    assert main(["export", str(demo_series), "--seg", mask, "--out", str(tmp_path / "x.dcm"), "--format", "seg",
                 "--algorithm", "automatic"]) == 1
    assert "needs the algorithm's name" in capsys.readouterr().err
    assert not os.listdir(tmp_path)


@pytest.mark.data
def test_detections_json_and_sr(lung_volume, lung_series, tmp_path, validate):
    import highdicom as hd

    from medviewer.export.sr import write_detections
    from medviewer.io.annotations import read_voc_boxes

    boxes = read_voc_boxes(lung_series.parent / "boxes", lung_volume)
    boxes[0] = DetectionBox(**{**boxes[0].__dict__, "score": 0.87})
    sr_path = write_detections(lung_volume, boxes, tmp_path / "lung-detections-sr.dcm",
                               algorithm_name="test-detector", algorithm_version="1.0")
    validate(sr_path)
    sr = hd.sr.srread(sr_path)
    groups = sr.content.get_planar_roi_measurement_groups()
    assert len(groups) == 11
    data = json.loads(open(write_detections(lung_volume, boxes, tmp_path / "d.json")).read())
    assert len(data["boxes"]) == 11 and data["boxes"][0]["score"] == 0.87
    assert data["series_instance_uid"] == lung_volume.meta["series_instance_uid"]
    first = groups[0].roi
    np.testing.assert_allclose(first.value[0], [boxes[0].xmin, boxes[0].ymin])


def test_cli_compare_a_segmentation_with_a_reference(demo_series, demo_volume, demo_labels, tmp_path, capsys):
    from medviewer.core.label_edit import margin
    from medviewer.core.segments import Segment
    from medviewer.export.labelmap import write_labelmap

    reference = tmp_path / "reference.nii.gz"
    write_labelmap(demo_labels, [Segment(n, f"lesion {n}") for n in (1, 2, 3)], reference)
    grown = demo_labels.with_array(margin(demo_labels.array, 3, demo_volume.spacing, 2.5))
    seg = tmp_path / "grown.nii.gz"
    write_labelmap(grown, [Segment(n, f"lesion {n}") for n in (1, 2, 3)], seg)
    assert main(["compare", str(demo_series), "--seg", str(seg), "--reference", str(reference),
                 "--segment", "lesion 3", "--reference-segment", "3", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["segment"] == "3: lesion 3" and figures["reference_segment"] == "3: lesion 3"
    assert 0.6 < figures["dice"] < 0.95 and figures["volume_difference_pct"] > 10
    # grown by an ellipsoid of 2 x 2 x 1 voxels (1.4 mm pixels, 2.5 mm slices): 2.5 to 3.2 mm out
    assert 2.5 <= figures["hausdorff_mm"] <= 3.2 and 0.5 < figures["mean_surface_mm"] < figures["hd95_mm"]
    assert main(["compare", str(demo_series), "--seg", str(reference), "--reference", str(reference)]) == 0
    out = capsys.readouterr().out
    assert "Dice 1.0000" in out and "Hausdorff 0.00 mm" in out
    assert main(["compare", str(demo_series), "--seg", str(seg), "--reference", str(reference),
                 "--segment", "lesion 9"]) == 1
    assert "no segment 'lesion 9'" in capsys.readouterr().err
