"""The `medviewer` command as a user meets it: real processes, real output, exit codes."""

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def medviewer(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "medviewer", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or ROOT, timeout=300)


@pytest.mark.data
def test_info_lists_the_two_lung_series(shared_data):
    r = medviewer("info", shared_data / "lung-pet-ct-dx" / "A0001")
    assert r.returncode == 0, r.stderr
    rows = [ln for ln in r.stdout.splitlines() if ln.strip().startswith("Series")]
    assert len(rows) == 2
    for row in rows:
        assert " CT " in row and "64 slices" in row and "512 x 512 x 64" in row
        assert "spacing 0.842 x 0.842 x 5 mm" in row and "LPS (axial)" in row
    assert "Patient Lung_Dx-A0001" in r.stdout and "Study 20070404" in r.stdout


@pytest.mark.data
def test_info_on_jpeg2000_series(shared_data):
    r = medviewer("info", shared_data / "compressed-ct" / "example_ct_dicom")
    assert r.returncode == 0, r.stderr
    assert re.search(r"CT Body 3.0\s+CT\s+20 slices\s+512 x 512 x 20", r.stdout)


def test_info_on_garbage_exits_nonzero_with_one_line(tmp_path):
    (tmp_path / "a.dcm").write_bytes(os.urandom(2000))
    (tmp_path / "b").write_bytes(b"DICM" + os.urandom(500))
    good = b"\0" * 128 + b"DICM"
    (tmp_path / "c.dcm").write_bytes(good[:90])  # truncated inside the preamble
    r = medviewer("info", tmp_path)
    assert r.returncode != 0
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("medviewer: ") and str(tmp_path) in lines[0]
    assert "Traceback" not in r.stderr


def test_info_on_missing_path_and_debug_traceback(tmp_path):
    r = medviewer("info", tmp_path / "nowhere")
    assert r.returncode == 1 and "no such file or folder" in r.stderr and "Traceback" not in r.stderr
    r = medviewer("--debug", "info", tmp_path / "nowhere")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_demo_writes_a_series_that_info_lists(tmp_path):
    r = medviewer("demo", tmp_path / "study", "--no-open")
    if "unrecognized arguments: --no-open" in r.stderr:  # before the window existed
        r = medviewer("demo", tmp_path / "study")
    assert r.returncode == 0, r.stderr
    assert "lesion 1 (right lung)" in r.stdout
    r = medviewer("info", tmp_path / "study")
    assert r.returncode == 0
    assert "Series 1  Phantom chest-abdomen 2.5 mm  CT  80 slices  256 x 256 x 80  spacing 1.4 x 1.4 x 2.5 mm" in r.stdout


def test_info_on_image_file(tmp_path, demo_series):
    r = medviewer("info", demo_series / "lesions.nii.gz")
    assert r.returncode == 0, r.stderr
    assert "image file  256 x 256 x 80  uint8  spacing 1.4 x 1.4 x 2.5 mm" in r.stdout


def test_core_imports_no_qt_vtk_or_torch():
    """The import-linter contracts in pyproject.toml hold."""
    lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    r = subprocess.run([lint], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "BROKEN" not in r.stdout and "KEPT" in r.stdout


def test_point_options_take_negative_coordinates_after_a_space():
    from medviewer.cli import join_point_values

    argv = ["segment", "CT", "--point", "-21,-78.5,-157", "--negative", "-.5,2,3", "--point", "4,5,6",
            "--out", "-x.nii.gz", "--", "--point", "-1,2,3"]
    assert join_point_values(argv) == ["segment", "CT", "--point=-21,-78.5,-157", "--negative=-.5,2,3",
                                       "--point", "4,5,6", "--out", "-x.nii.gz", "--", "--point", "-1,2,3"]


def test_segment_reads_a_negative_point_written_after_a_space(demo_series, tmp_path):
    """LPS points are often negative: `--point -60,0,-75` (no '=') used to stop with argparse's
    "expected one argument"."""
    out = tmp_path / "lesion.nrrd"
    r = medviewer("segment", demo_series, "--point", "-60,0,-75", "--negative", "-100,0,-75",
                  "--engine", "classical", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "lesion 1:" in r.stdout and out.is_file()
