"""The light install (``pip install medviewer``, no extras: docs/install.md) works without torch,
torchvision and MONAI: the learned click engine on ONNX Runtime, the window's screenshot, export,
and a plugin list that names what is missing instead of crashing.

Each command runs in a child process whose import system refuses those packages (a meta path
finder that raises ImportError for them, as an environment without them would), so that an
import of torch anywhere on these paths fails the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

BLOCKED = ("torch", "torchvision", "monai")
# Run the medviewer command with torch, torchvision and MONAI unimportable; at exit, say whether
# any of them got into sys.modules all the same (`segment` marks torchvision absent with None).
LIGHT_MEDVIEWER = f"""
import sys

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition('.')[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: a light install)", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
from medviewer.cli import main
code = main(sys.argv[1:])
print("heavy modules:", sorted(m for m, mod in list(sys.modules.items())
                               if mod is not None and m.partition('.')[0] in {BLOCKED!r}))
sys.exit(code)
"""


def light(*args: str, timeout: float = 300) -> str:
    """Run ``medviewer ARGS`` without torch/torchvision/MONAI; its output (it must succeed)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("MEDVIEWER_CLICK_BACKEND", None)
    done = subprocess.run([sys.executable, "-c", LIGHT_MEDVIEWER, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "heavy modules: []" in output, output
    return output


def test_the_blocker_blocks():
    """The harness itself: asking for MONAI's networks fails as on a machine without MONAI."""
    code = LIGHT_MEDVIEWER.replace("from medviewer.cli import main", "import monai.networks")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr and "blocked" in done.stderr


@pytest.mark.data
def test_learned_click_engine_segments_a_sarcoma_without_torch(sts_cases, tmp_path):
    """`medviewer segment --engine learned` on a real sarcoma (STS_024, validation split) runs the
    network on ONNX Runtime, writes a DICOM SEG, and `export` reads it back into a lesion report."""
    from medviewer.io import load_volume
    from medviewer.io.annotations import read_rtstruct
    from medviewer.segmentation.guidance import deepest_point, dice

    case = next(c for c in sts_cases if c.name == "STS_024")
    seg, report = tmp_path / "lesion.dcm", tmp_path / "lesion.csv"
    out = light("segment", str(case / "image"), "--point=45.9,16.6,764.7", "--engine", "learned",
                "--out", str(seg))
    assert "by the learned engine" in out and seg.is_file()
    light("export", str(case / "image"), "--seg", str(seg), "--out", str(report))
    assert "lesion" in report.read_text().lower()
    volume = load_volume(case / "image")
    nifti = tmp_path / "lesion.nii.gz"
    light("segment", str(case / "image"), "--point=45.9,16.6,764.7", "--engine", "learned", "--out", str(nifti))
    mask = load_volume(nifti).array > 0
    truth = read_rtstruct(case / "RS.dcm", volume, roi_names="GTV_Mass_CT").array > 0
    assert mask[tuple(volume.patient_to_voxel((45.9, 16.6, 764.7)))]
    assert dice(mask, truth) > 0.5
    assert deepest_point(truth, volume.spacing[::-1]) is not None


@pytest.mark.gui
def test_the_window_renders_a_screenshot_without_torch(demo_series, tmp_path):
    """`medviewer open --screenshot` on the demo study: the viewer needs neither torch nor MONAI."""
    shot = tmp_path / "window.png"
    light("open", str(demo_series), "--screenshot", str(shot), "--size", "640x480")
    import SimpleITK as sitk

    pixels = sitk.GetArrayFromImage(sitk.ReadImage(str(shot)))
    assert min(pixels.shape[:2]) > 100 and np.ptp(pixels) > 50  # the views drawn, not a blank


def test_the_plugin_list_names_what_is_missing():
    """The MONAI bundle plugin is listed as unavailable for want of torch; the click plugin is there."""
    out = light("plugins")
    assert "click-segment" in out
    line = next(line for line in out.splitlines() if "monai-bundle" in line)
    assert "unavailable: needs the Python package 'torch'" in line, out
    assert next(line for line in out.splitlines() if line.startswith("click-segment")).split()[2:] == ["available"]


def test_the_wheel_carries_the_bundle_and_its_plugins(tmp_path):
    """`pip wheel .` (what `pip install .` installs): the click bundle's configs, model.pt and
    model.onnx under share/medviewer/resources (where medviewer.core.resources looks in an
    installed environment), and every built-in plugin's entry point in a package of the wheel.
    (A fresh virtual environment's full install takes minutes: measured once, docs/install.md.)"""
    import configparser
    import shutil
    import zipfile

    # a copy: setuptools builds in the source's build/ folder, and a file left there from an older
    # tree would ride along into later wheels
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".venv", "node_modules", "demo-study", ".pytest_cache"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    wheel = zipfile.ZipFile(next(tmp_path.glob("medviewer-*.whl")))
    names = wheel.namelist()
    data = "medviewer-0.1.0.data/data/share/medviewer/resources/click_segment_bundle/"
    for part in ("configs/inference.json", "models/model.pt", "models/model.onnx", "docs/README.md"):
        assert data + part in names
    assert wheel.getinfo(data + "models/model.onnx").file_size == (
        ROOT / "resources" / "click_segment_bundle" / "models" / "model.onnx").stat().st_size
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith((".data", ".dist-info"))}
    entry_points = configparser.ConfigParser()
    entry_points.read_string(wheel.read("medviewer-0.1.0.dist-info/entry_points.txt").decode())
    modules = [value.split(":")[0] for value in entry_points["medviewer.plugins"].values()]
    assert len(modules) >= 4
    assert "plugins" not in top_level  # a name other projects install too
    for module in modules:
        assert module.split(".")[0] in top_level
        assert "/".join(module.split(".")) + "/__init__.py" in names
