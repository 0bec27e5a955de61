"""Shared fixtures: the real scans in MEDVIEWER_DATA and the generated demo study."""

from __future__ import annotations

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

#: the throw-away Orthanc (fixtures orthanc, sts_study) for tests/pacs and tests/ui
pytest_plugins = ["tests.orthanc_server"]


def pytest_configure(config):
    """Without a display, start a private Xvfb for the GUI tests (VTK in Qt needs X).

    A watchdog shell stops it only after this pytest process has exited: Qt and VTK tear their X
    connections down at interpreter exit, and a server stopped before that makes the process
    exit with "XIO: fatal IO error" (status 1) after every test passed.
    """
    import shutil
    import subprocess
    import sys
    import tempfile

    # the segment editor's recovery copies go to a folder of this run, not the user's cache; it
    # is removed when the run ends (pytest_unconfigure)
    if "MEDVIEWER_RECOVERY_DIR" not in os.environ:
        config._medviewer_recovery = tempfile.mkdtemp(prefix="medviewer-recovery-")
        os.environ["MEDVIEWER_RECOVERY_DIR"] = config._medviewer_recovery
    # likewise what `medviewer segment` remembers of its last runs (commands/segment_memory.py)
    if "MEDVIEWER_SEGMENT_MEMORY" not in os.environ:
        config._medviewer_segment_memory = tempfile.mkdtemp(prefix="medviewer-segment-")
        os.environ["MEDVIEWER_SEGMENT_MEMORY"] = os.path.join(config._medviewer_segment_memory, "m")
    # the user's settings (trusted bundle folders, recent files: ~/.config/medviewer) are neither
    # the tests' to change nor to depend on: a folder of this run stands in for ~/.config (37
    # bundle folders that earlier runs had trusted widened the segment editor, and a window-layout
    # test failed on that machine only)
    config._medviewer_config = tempfile.mkdtemp(prefix="medviewer-config-")
    os.environ["XDG_CONFIG_HOME"] = config._medviewer_config
    if os.environ.get("DISPLAY") or not sys.platform.startswith("linux") or not shutil.which("Xvfb"):
        return
    read_fd, write_fd = os.pipe()
    script = (f"Xvfb -displayfd {write_fd} -screen 0 1600x1200x24 -nolisten tcp & x=$!; "
              f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 0.5; done; kill $x")
    subprocess.Popen(["sh", "-c", script], pass_fds=(write_fd,), start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    if number:
        os.environ["DISPLAY"] = f":{number}"


def pytest_unconfigure(config):
    """Remove this run's recovery, segment-memory and settings folders (pytest_configure made
    them; the segment memory was left behind in /tmp after every run)."""
    import shutil

    for attribute, variable in (("_medviewer_recovery", "MEDVIEWER_RECOVERY_DIR"),
                                ("_medviewer_segment_memory", "MEDVIEWER_SEGMENT_MEMORY"),
                                ("_medviewer_config", "XDG_CONFIG_HOME")):
        folder = getattr(config, attribute, None)
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
            os.environ.pop(variable, None)


def data_root() -> pathlib.Path:
    """MEDVIEWER_DATA, else ../shared/data beside the repository."""
    env = os.environ.get("MEDVIEWER_DATA")
    return pathlib.Path(env) if env else ROOT.parent / "shared" / "data"


def require_data(relative: str = "") -> pathlib.Path:
    """The path of a shared data set; skip without it, or fail when MEDVIEWER_REQUIRE_DATA=1."""
    path = data_root() / relative
    if not path.exists():
        reason = f"shared data {path} is missing (set MEDVIEWER_DATA)"
        if os.environ.get("MEDVIEWER_REQUIRE_DATA") == "1":
            pytest.fail(reason + " and MEDVIEWER_REQUIRE_DATA=1")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    return require_data()


@pytest.fixture(scope="session")
def lung_series() -> pathlib.Path:
    """Lung-PET-CT-Dx A0001 series 2 (512 x 512 x 64, soft kernel), with tumour boxes."""
    return require_data("lung-pet-ct-dx/A0001/series-2-5mm-L")


@pytest.fixture(scope="session")
def sts_cases() -> list[pathlib.Path]:
    """The soft-tissue-sarcoma cases, STS_001..STS_044 (each: image/ DICOM series and RS.dcm)."""
    return sorted(require_data("sts").glob("STS_*"))


@pytest.fixture(scope="session")
def demo_series(tmp_path_factory) -> pathlib.Path:
    """The generated demo study's CT series folder (lesions.json and lesions.nii.gz beside)."""
    from medviewer.io.demo_study import write_demo_study

    return pathlib.Path(write_demo_study(tmp_path_factory.mktemp("demo")))


@pytest.fixture(scope="session")
def demo_volume(demo_series):
    from medviewer.io import load_volume

    return load_volume(demo_series)


def segment_pasted_case(case, tmp_path: pathlib.Path):
    """`medviewer segment` on a pasted lesion (medviewer.segmentation.synthetic.make_case), written
    as NIfTI, with one click at the deepest point of its truth: (the finished process, the mask)."""
    import subprocess
    import sys

    import numpy as np

    from medviewer.io import read_image, write_image
    from medviewer.segmentation.guidance import deepest_point

    image, out = tmp_path / "mass.nii.gz", tmp_path / "mask.nii.gz"
    write_image(case.image, image)
    click = case.image.voxel_to_patient(deepest_point(case.truth, np.asarray(case.image.spacing)[::-1])[0])
    r = subprocess.run([sys.executable, "-m", "medviewer", "segment", str(image),
                        "--point=" + ",".join(f"{v:.2f}" for v in click), "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    return r, read_image(out).array > 0
