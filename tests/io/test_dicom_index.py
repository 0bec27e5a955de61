"""Folder indexing and bad input: every problem names the file, good series still index."""

import os
import shutil

import pydicom
import pytest

from medviewer.core import MedviewerError
from medviewer.io import index_folder, load_volume


def test_index_groups_patient_study_series(small_series):
    folder, files, _ = small_series()
    index = index_folder(folder)
    assert [p.patient_id for p in index.patients] == ["MEDVIEWER-DEMO"]
    (series,) = index.all_series()
    assert series.slice_count == len(files) and series.modality == "CT" and series.is_image
    assert index.study_of(series).study_description == "medviewer demo phantom"


def test_mixed_series_in_one_folder_and_nested_names(small_series, tmp_path):
    a, files_a, _ = small_series("a", nz=5)
    b, files_b, _ = small_series("b", nz=7)
    mixed = tmp_path / "mixed" / "deep"
    mixed.mkdir(parents=True)
    for n, f in enumerate(files_a + files_b):
        shutil.copy(f, mixed / f"{n:03d}")  # no suffix, interleaved
    index = index_folder(tmp_path / "mixed")
    counts = sorted(s.slice_count for s in index.image_series())
    assert counts == [5, 7]
    assert len(index.patients) == 1 and len(index.patients[0].studies) == 2


def test_bad_files_are_listed_and_good_series_still_loads(small_series, tmp_path):
    folder, files, array = small_series()
    (folder / "notes.bin").write_bytes(b"hello, not dicom" * 20)
    truncated = folder / "truncated.dcm"
    data = open(files[0], "rb").read()
    truncated.write_bytes(data[: len(data) - 100])
    no_pixels = pydicom.dcmread(files[1])
    del no_pixels.PixelData
    no_pixels.SOPInstanceUID = pydicom.uid.generate_uid()
    no_pixels.save_as(folder / "nopixels.dcm")
    os.symlink(folder / "gone.dcm", folder / "dangling.dcm")  # unreadable: target missing
    index = index_folder(folder)
    reasons = {os.path.basename(s.path): s.reason for s in index.skipped}
    assert reasons["notes.bin"] == "not a DICOM file"
    assert reasons["truncated.dcm"].startswith("truncated")
    assert reasons["nopixels.dcm"] == "DICOM image without pixel data"
    assert reasons["dangling.dcm"].startswith("unreadable")
    v = load_volume(folder)
    assert v.shape == array.shape


def test_dicomdir_is_skipped(small_series):
    from pydicom.fileset import FileSet

    folder, files, _ = small_series()
    fs = FileSet()
    for f in files:
        fs.add(f)
    out = folder.parent / "media"
    fs.write(out)
    index = index_folder(out)
    assert index.image_series()[0].slice_count == len(files)
    assert any(os.path.basename(s.path) == "DICOMDIR" for s in index.skipped)


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(MedviewerError, match="no files found"):
        load_volume(tmp_path)
    with pytest.raises(MedviewerError, match="no such file"):
        index_folder(tmp_path / "absent")
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(MedviewerError, match="no DICOM files found"):
        load_volume(tmp_path)


def test_garbage_only_folder_message_names_files(tmp_path):
    for n in range(5):
        (tmp_path / f"junk{n}.dcm").write_bytes(os.urandom(300))
    with pytest.raises(MedviewerError) as err:
        load_volume(tmp_path)
    message = str(err.value)
    assert "no loadable DICOM image series" in message and "junk0.dcm: not a DICOM file" in message
    assert "\n" not in message


def test_cancel_stops_indexing(small_series):
    folder, _, _ = small_series()
    with pytest.raises(MedviewerError, match="cancelled"):
        index_folder(folder, cancelled=lambda: True)


def test_load_reports_progress_and_cancel(small_series):
    from medviewer.io import load_series

    folder, _, _ = small_series()
    (series,) = index_folder(folder).image_series()
    seen = []
    load_series(series, progress=seen.append)
    assert seen and seen[-1] == pytest.approx(1.0)
    with pytest.raises(MedviewerError, match="cancelled"):
        load_series(series, cancelled=lambda: True)


def test_several_series_are_listed_with_their_folders_and_picked_by_folder(small_series, tmp_path):
    """Two series that read alike (same number and description) are told apart by their folders,
    and a folder picks one."""
    small_series("day1", nz=5)
    small_series("day2", nz=7)
    with pytest.raises(MedviewerError, match="2 image series") as err:
        load_volume(tmp_path)
    assert " in day1" in str(err.value) and " in day2" in str(err.value)
    assert load_volume(tmp_path, series="day2").shape[0] == 7
    assert load_volume(tmp_path, series="day1/").shape[0] == 5
    with pytest.raises(MedviewerError, match="no image series 'day3'"):
        load_volume(tmp_path, series="day3")
