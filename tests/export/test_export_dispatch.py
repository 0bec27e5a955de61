"""The export dispatch shared by the CLI and the window: default file names (patient, series and
segment names, safe for file systems), default folder, formats by suffix."""

from __future__ import annotations

import os

import pytest

from medviewer.core.errors import MedviewerError
from medviewer.export.dispatch import (
    MAX_STEM, default_export_folder, default_export_name, format_of, safe_name, write_export,
)


def test_names_are_made_safe_for_file_systems():
    assert safe_name("Doe^John") == "Doe_John"
    assert safe_name("  ../CT: chest/abdomen *w contrast*  ") == "CT_chest_abdomen_w_contrast"
    assert safe_name("lésion 1") == "l_sion_1"
    assert safe_name("///") == ""


def test_default_name_from_patient_series_and_segments():
    meta = {"patient_name": "Doe^John", "patient_id": "123", "series_description": "CT 1.25mm/B30f"}
    assert default_export_name(meta, ["lesion 1"]) == "Doe_John_CT_1.25mm_B30f_lesion_1.dcm"
    assert default_export_name(meta, ["a", "b"], "nifti") == "Doe_John_CT_1.25mm_B30f_a+b.nii.gz"
    assert default_export_name(meta, [f"s{i}" for i in range(5)], "csv").endswith("_5_segments.csv")
    assert default_export_name({"patient_id": "P1", "series_number": 4}, ["x"]) == "P1_series_4_x.dcm"
    assert default_export_name({}, []) == "segmentation.dcm"
    long = default_export_name({"patient_name": "N" * 300}, ["x"])
    assert len(long) <= MAX_STEM + len(".dcm") and "/" not in long


def test_default_folder_is_the_study_or_the_image_folder(tmp_path):
    series = tmp_path / "study" / "CT"
    series.mkdir(parents=True)
    meta = {"source_folder": str(series)}
    assert default_export_folder(meta, str(tmp_path / "study")) == str(tmp_path / "study")
    assert default_export_folder(meta) == str(series)
    image = tmp_path / "x.nii.gz"
    image.write_bytes(b"")
    assert default_export_folder({"source_file": str(image)}) == str(tmp_path)
    assert default_export_folder({"source_folder": str(tmp_path / "gone")}) == os.getcwd()


def test_formats_by_suffix_and_unknown_format():
    assert format_of("a.DCM") == "seg" and format_of("a.seg.nrrd") == "nrrd" and format_of("a.nii") == "nifti"
    assert format_of("a.txt") is None
    with pytest.raises(MedviewerError, match="unknown export format"):
        write_export("png", None, None, [], "x.png")


def test_smooth_stl_without_the_render_layer_is_a_message(demo_volume, demo_labels, tmp_path):
    from medviewer.core.segments import Segment

    with pytest.raises(MedviewerError, match="render layer"):
        write_export("stl", demo_volume, demo_labels, [Segment(1, "a")], str(tmp_path / "a.stl"))
    lines = write_export("stl", demo_volume, demo_labels, [Segment(1, "a")], str(tmp_path / "a.stl"),
                         stl_surface="voxels")
    assert len(lines) == 1 and (tmp_path / "a.stl").is_file()
