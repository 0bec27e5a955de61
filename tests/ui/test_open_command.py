"""`medviewer open PATH --screenshot` as a user runs it (a subprocess under the test's Xvfb)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120)]


def read_png(path):
    from vtkmodules.util import numpy_support
    from vtkmodules.vtkIOImage import vtkPNGReader

    reader = vtkPNGReader()
    reader.SetFileName(str(path))
    reader.Update()
    image = reader.GetOutput()
    w, h, _ = image.GetDimensions()
    return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(h, w, -1)[::-1, :, :3]


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "medviewer", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=100)


def test_open_screenshot_shows_four_views_of_the_chest(lung_series, tmp_path):
    out = tmp_path / "shot.png"
    result = run_cli("open", str(lung_series), "--screenshot", str(out), "--size", "800x650")
    assert result.returncode == 0, result.stderr
    assert out.exists()
    pixels = read_png(out).astype(int)
    h, w = pixels.shape[:2]
    quads = {"axial": pixels[:h // 2, :w // 2], "coronal": pixels[:h // 2, w // 2:],
             "sagittal": pixels[h // 2:, :w // 2], "3d": pixels[h // 2:, w // 2:]}
    for name in ("axial", "coronal", "sagittal"):
        grey = np.abs(quads[name] - quads[name].mean(axis=2, keepdims=True)).max(axis=2) < 8
        lum = quads[name].mean(axis=2)
        # a CT slice: a large share of mid-grey pixels (body) and of black ones (air, lungs)
        assert ((lum > 70) & (lum < 200) & grey).mean() > 0.08, name
        assert (lum < 15).mean() > 0.2, name
    background = np.array([20, 20, 31])
    assert (np.abs(quads["3d"] - background).sum(axis=2) > 40).mean() > 0.05  # something rendered


def test_open_reports_a_missing_path_in_one_line(tmp_path):
    result = run_cli("open", str(tmp_path / "nothing-here"), "--screenshot", str(tmp_path / "x.png"))
    assert result.returncode == 1
    assert "no such file or folder" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_open_an_empty_folder_fails_cleanly(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli("open", str(tmp_path / "empty"), "--screenshot", str(tmp_path / "x.png"))
    assert result.returncode == 1, result.stderr
    assert "no files found" in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_demo_writes_without_a_display(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["PYTHONPATH"] = ROOT
    result = subprocess.run([sys.executable, "-m", "medviewer", "demo", str(tmp_path / "d")], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=100)
    assert result.returncode == 0, result.stderr
    assert "Wrote the demo study" in result.stdout and "No display" in result.stdout
    assert (tmp_path / "d" / "CT" / "lesions.json").exists()
    result = subprocess.run([sys.executable, "-m", "medviewer", "demo", str(tmp_path / "d"), "--no-open"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=100)
    assert result.returncode == 0 and "already in" in result.stdout and "No display" not in result.stdout


def test_a_screenshot_saved_as_dcm_is_a_key_image_in_the_study(lung_series, tmp_path):
    import pydicom

    from medviewer.io import load_volume
    from tests.export.conftest import dciodvfy

    lung_volume = load_volume(lung_series)

    out = tmp_path / "key.dcm"
    result = run_cli("open", str(lung_series), "--screenshot", str(out), "--size", "800x650", "--layout", "1x1")
    assert result.returncode == 0, result.stderr
    errors, _ = dciodvfy(out)
    assert errors == []
    ds = pydicom.dcmread(out)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"          # Secondary Capture Image Storage
    assert ds.StudyInstanceUID == lung_volume.meta["study_instance_uid"]
    assert ds.SeriesInstanceUID != lung_volume.meta["series_instance_uid"]
    assert ds.PatientID == lung_volume.meta["patient_id"] and ds.BurnedInAnnotation == "YES"
    assert list(ds.PatientOrientation) == ["L", "P"]                 # one axial view, radiological
    pixels = ds.pixel_array
    assert ds.PhotometricInterpretation == "RGB" and pixels.shape[2] == 3 and min(pixels.shape[:2]) > 300
    lum = pixels.mean(axis=2)
    assert (lum < 30).mean() > 0.1 and ((lum > 70) & (lum < 200)).mean() > 0.08   # air and body: a CT slice


def test_a_key_image_of_an_image_file_is_refused_and_nothing_written(tmp_path, demo_series):
    out = tmp_path / "key.dcm"
    result = run_cli("open", str(demo_series / "lesions.nii.gz"), "--screenshot", str(out), "--size", "640x480")
    assert result.returncode != 0 and "not read from DICOM" in result.stderr and not out.exists()
