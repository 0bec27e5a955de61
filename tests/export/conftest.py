"""Fixtures of the export tests: dciodvfy, the lung tumour mask, small sts cases."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

DCIODVFY_WARNINGS: dict[str, list[str]] = {}


def dciodvfy(path) -> tuple[list[str], list[str]]:
    """(errors, warnings) that dciodvfy reports for ``path``.

    Missing dciodvfy skips the test on a developer machine and fails under CI=true (CI installs
    dicom3tools).
    """
    exe = shutil.which("dciodvfy")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("dciodvfy (dicom3tools) is not installed, and CI=true requires it")
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    run = subprocess.run([exe, os.fspath(path)], capture_output=True, text=True, timeout=120)
    lines = (run.stdout + "\n" + run.stderr).splitlines()
    errors = [ln.strip() for ln in lines if ln.strip().startswith("Error")]
    warnings = [ln.strip() for ln in lines if ln.strip().startswith("Warning")]
    DCIODVFY_WARNINGS[os.path.basename(os.fspath(path))] = warnings
    return errors, warnings


def pytest_terminal_summary(terminalreporter):
    if DCIODVFY_WARNINGS:
        terminalreporter.section("dciodvfy warnings of the objects written by tests/export")
        for name, warnings in sorted(DCIODVFY_WARNINGS.items()):
            terminalreporter.write_line(f"{name}: {len(warnings)} warning(s)")
            for w in sorted(set(warnings)):
                terminalreporter.write_line(f"    {w}")


def dice(a, b) -> float:
    a, b = np.asarray(a) != 0, np.asarray(b) != 0
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


@pytest.fixture(scope="session")
def lung_volume(lung_series):
    from medviewer.io import load_volume

    return load_volume(lung_series)


@pytest.fixture(scope="session")
def lung_tumour(lung_volume, lung_series):
    """A tumour mask of A0001 series 2: SimpleITK ConnectedThreshold (-400..300 HU) from the centre
    of the middle box, kept inside each slice's box (boxes/ Pascal VOC, pixel corners)."""
    import SimpleITK as sitk

    from medviewer.io.annotations import read_voc_boxes

    boxes = read_voc_boxes(lung_series.parent / "boxes", lung_volume)
    assert len(boxes) == 11
    inside = np.zeros(lung_volume.shape, dtype=bool)
    for b in boxes:
        inside[b.slice_index, int(b.ymin):int(b.ymax) + 1, int(b.xmin):int(b.xmax) + 1] = True
    mid = boxes[len(boxes) // 2]
    seed = (int((mid.xmin + mid.xmax) // 2), int((mid.ymin + mid.ymax) // 2), mid.slice_index)
    image = sitk.Cast(lung_volume.to_sitk(), sitk.sitkFloat32)
    masked = sitk.Mask(image, _like(image, inside), outsideValue=-2000)
    grown = sitk.ConnectedThreshold(masked, seedList=[seed], lower=-400, upper=300)
    mask = sitk.GetArrayFromImage(grown).astype(bool) & inside
    assert mask.sum() > 1000
    return lung_volume.with_array(mask.astype(np.uint8)), boxes


def _like(reference, array):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.CopyInformation(reference)
    return image


@pytest.fixture(scope="session")
def small_sts(sts_cases):
    """Two of the smallest sts cases (STS_002, STS_019)."""
    chosen = [c for c in sts_cases if c.name in ("STS_002", "STS_019")]
    assert len(chosen) == 2
    return chosen


@pytest.fixture(scope="session")
def demo_labels(demo_series, demo_volume):
    from medviewer.io import read_image

    labels = read_image(os.path.join(demo_series, "lesions.nii.gz"))
    assert demo_volume.same_grid(labels)
    return demo_volume.with_array(labels.array.astype(np.uint8))


@pytest.fixture(scope="session")
def validate():
    """validate(path) -> dciodvfy warnings; fails the test on any dciodvfy error."""
    def check(path):
        errors, warnings = dciodvfy(path)
        assert errors == [], f"dciodvfy errors for {path}: {errors}"
        return warnings
    return check


@pytest.fixture(scope="session")
def dice_of():
    return dice
