"""Fixtures of the interop tests: OHIF's own readers (@cornerstonejs/adapters, in Node.js from
tests/interop/ohif, installed there by scripts/test.sh with npm ci) run on what we write."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

from medviewer.core.segments import Segment
from medviewer.export.sources import source_datasets

OHIF = pathlib.Path(__file__).parent / "ohif"


def node_command(script: str) -> list[str]:
    """The command that runs ``ohif/<script>``; skips without Node.js or the packages (fails under CI)."""
    node = shutil.which("node")
    missing = ("Node.js is not installed" if node is None else
               None if (OHIF / "node_modules" / "@cornerstonejs" / "adapters").is_dir() else
               f"OHIF's readers are not installed (npm ci in {OHIF})")
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(missing + ", and CI=true requires it (scripts/test.sh installs it)")
        pytest.skip(missing)
    return [node, str(OHIF / script)]


def series_metadata(volume) -> dict:
    """Cornerstone's metadata modules of each source image of ``volume``, by SOP Instance UID, in
    the volume's slice order (as OHIF's DICOMweb loader provides them)."""
    series = {}
    for ds in source_datasets(volume):
        orientation = [float(v) for v in ds.ImageOrientationPatient]
        position = [float(v) for v in ds.ImagePositionPatient]
        spacing = [float(v) for v in ds.PixelSpacing]
        rows, columns = int(ds.Rows), int(ds.Columns)
        study = {k: str(ds.get(k, "") or "") for k in (
            "StudyInstanceUID", "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
            "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName")}
        series[ds.SOPInstanceUID] = {
            "sopCommonModule": {"sopInstanceUID": ds.SOPInstanceUID, "sopClassUID": ds.SOPClassUID},
            "instance": {**study, "Modality": str(ds.Modality), "SeriesNumber": int(ds.get("SeriesNumber", 1) or 1),
                "SOPInstanceUID": ds.SOPInstanceUID, "SOPClassUID": ds.SOPClassUID,
                "SeriesInstanceUID": ds.SeriesInstanceUID, "StudyInstanceUID": ds.StudyInstanceUID,
                "FrameOfReferenceUID": ds.FrameOfReferenceUID, "ImagePositionPatient": position,
                "ImageOrientationPatient": orientation, "PixelSpacing": spacing, "Rows": rows, "Columns": columns},
            "imagePlaneModule": {
                "frameOfReferenceUID": ds.FrameOfReferenceUID, "rows": rows, "columns": columns,
                "imagePositionPatient": position, "imageOrientationPatient": orientation,
                "rowCosines": orientation[:3], "columnCosines": orientation[3:], "pixelSpacing": spacing,
                "rowPixelSpacing": spacing[0], "columnPixelSpacing": spacing[1]},
            "generalImageModule": {"sopInstanceUID": ds.SOPInstanceUID},
            "imagePixelModule": {"bitsAllocated": 16, "bitsStored": 16, "highBit": 15, "pixelRepresentation": 1,
                                 "samplesPerPixel": 1, "photometricInterpretation": "MONOCHROME2",
                                 "rows": rows, "columns": columns},
            "generalSeriesModule": {"modality": str(ds.Modality), "seriesInstanceUID": ds.SeriesInstanceUID,
                                    "studyInstanceUID": ds.StudyInstanceUID},
            # the naturalized attributes OHIF's SEG export (generateSegmentation) builds on
            "StudyData": study,
            "SeriesData": {"SeriesInstanceUID": ds.SeriesInstanceUID, "Modality": str(ds.Modality),
                           "SeriesNumber": int(ds.get("SeriesNumber", 1) or 1)},
            "ImageData": {
                "SOPInstanceUID": ds.SOPInstanceUID, "SOPClassUID": ds.SOPClassUID,
                "FrameOfReferenceUID": ds.FrameOfReferenceUID, "ImagePositionPatient": position,
                "ImageOrientationPatient": orientation, "PixelSpacing": spacing, "Rows": rows, "Columns": columns,
                "SliceThickness": float(ds.get("SliceThickness", 0) or 0), "InstanceNumber": int(ds.InstanceNumber),
                "SamplesPerPixel": 1, "PhotometricInterpretation": "MONOCHROME2", "BitsAllocated": 16,
                "BitsStored": 16, "HighBit": 15, "PixelRepresentation": 1},
        }
    return series


class OhifRefused(AssertionError):
    """The reader failed; the message ends with what it printed."""


def read_with_ohif(script: str, dicom: os.PathLike, volume) -> dict:
    """What ``ohif/<script>`` makes of the DICOM object ``dicom`` on ``volume``'s series; raises
    OhifRefused when the reader fails."""
    dicom = pathlib.Path(dicom)
    series = dicom.with_suffix(".series.json")
    series.write_text(json.dumps(series_metadata(volume)))
    run = subprocess.run(node_command(script) + [str(dicom), str(series)], capture_output=True, text=True,
                         timeout=300)
    if run.returncode != 0:
        raise OhifRefused(f"{script} failed on {dicom.name}: {run.stderr[-3000:]}")
    return json.loads(run.stdout)


def write_with_ohif(labels: np.ndarray, segments, volume, out: os.PathLike) -> pathlib.Path:
    """``labels`` (on ``volume``'s grid) written as a SEG by OHIF's export (ohif/write_seg.mjs)."""
    out = pathlib.Path(out)
    series, raw, named = (out.with_suffix(suffix) for suffix in (".series.json", ".labels.raw", ".segments.json"))
    series.write_text(json.dumps(series_metadata(volume)))
    np.ascontiguousarray(labels, dtype=np.uint8).tofile(raw)
    named.write_text(json.dumps([{"number": s.label, "label": s.name, "rgb": list(s.color)} for s in segments]))
    run = subprocess.run(node_command("write_seg.mjs") + [str(series), str(raw), str(named), str(out)],
                         capture_output=True, text=True, timeout=300)
    if run.returncode != 0:
        raise OhifRefused(f"write_seg.mjs failed: {run.stderr[-3000:]}")
    return out


def write_sr_with_ohif(measurements: dict, volume, out: os.PathLike) -> pathlib.Path:
    """``measurements`` (see ohif/write_sr.mjs) written as an SR by OHIF's export."""
    out = pathlib.Path(out)
    series, named = out.with_suffix(".series.json"), out.with_suffix(".measurements.json")
    series.write_text(json.dumps(series_metadata(volume)))
    named.write_text(json.dumps(measurements))
    run = subprocess.run(node_command("write_sr.mjs") + [str(series), str(named), str(out)],
                         capture_output=True, text=True, timeout=300)
    if run.returncode != 0:
        raise OhifRefused(f"write_sr.mjs failed: {run.stderr[-3000:]}")
    return out


@pytest.fixture
def demo_lesions(demo_series):
    """The demo study's three lesions: their label map (slice, row, column) and segments."""
    from medviewer.io import read_image

    labels = read_image(str(demo_series / "lesions.nii.gz")).array.astype(np.uint8)
    segments = [Segment(1, "right lung nodule", (255, 0, 0)), Segment(2, "left lung nodule", (0, 200, 0)),
                Segment(3, "liver lesion", (30, 60, 255))]
    return labels, segments
