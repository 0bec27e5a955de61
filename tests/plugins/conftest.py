"""Fixtures for the plugin tests: a private settings folder, a small crop of a real series,
tiny MONAI bundles built in tmp dirs, and a folder of misbehaving test plugins."""

from __future__ import annotations

import json
import pathlib
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
# The helpers beside the tests (plugin_bundles, misbehaving_plugins); pytest runs with
# --import-mode=importlib, which puts no test folder on sys.path.
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture(autouse=True)
def private_settings(tmp_path, monkeypatch):
    """Each test gets its own settings (trust list) and no user plugin folder by default."""
    monkeypatch.setenv("MEDVIEWER_CONFIG", str(tmp_path / "settings" / "settings.json"))
    monkeypatch.setenv("MEDVIEWER_CONFIG_DIR", str(tmp_path / "settings"))
    monkeypatch.setenv("MEDVIEWER_PLUGIN_PATH", str(tmp_path / "no-user-plugins"))
    return tmp_path / "settings"


@pytest.fixture(scope="session")
def lung_crop(lung_series):
    """A 64 x 64 x 8 voxel crop (54 x 54 x 40 mm) of the real Lung-PET-CT-Dx series, around the
    tumour region and the chest wall."""
    from medviewer.io import load_volume

    volume = load_volume(lung_series)
    return volume.crop((14, 200, 140), (22, 264, 204))


@pytest.fixture(scope="session")
def lung_crop_file(lung_crop, tmp_path_factory):
    from medviewer.io import write_image

    path = tmp_path_factory.mktemp("crop") / "lung-crop.nii.gz"
    write_image(lung_crop, path)
    return path


@pytest.fixture(scope="session")
def seg_bundle(tmp_path_factory, lung_crop):
    """A spleen-layout UNet bundle fitted for a few seconds to 'tissue above -300 HU' on the crop."""
    from plugin_bundles import write_segmentation_bundle

    return pathlib.Path(write_segmentation_bundle(tmp_path_factory.mktemp("bundles") / "seg_bundle",
                                                  fit_to=lung_crop))


@pytest.fixture(scope="session")
def det_bundle(tmp_path_factory):
    from plugin_bundles import write_detection_bundle

    return pathlib.Path(write_detection_bundle(tmp_path_factory.mktemp("bundles") / "det_bundle"))


BAD_PLUGINS = {
    "raises": ("segmentation", "Raises", "thread"),
    "raises-proc": ("segmentation", "Raises", "process"),
    "hangs": ("segmentation", "Hangs", "thread"),
    "hangs-proc": ("segmentation", "Hangs", "process"),
    "polite-proc": ("segmentation", "Polite", "process"),
    "hog-proc": ("segmentation", "Hog", "process"),
    "killed-proc": ("segmentation", "KillsItself", "process"),
    "offgrid": ("segmentation", "OffGrid", "thread"),
    "good": ("segmentation", "Good", "thread"),
    "good-proc": ("segmentation", "Good", "process"),
}


@pytest.fixture
def bad_plugins(tmp_path, monkeypatch):
    """A user plugin folder (MEDVIEWER_PLUGIN_PATH) holding the misbehaving test plugins."""
    root = tmp_path / "user-plugins"
    for pid, (kind, cls, isolation) in BAD_PLUGINS.items():
        folder = root / pid
        folder.mkdir(parents=True)
        (folder / "plugin.json").write_text(json.dumps({
            "id": pid, "title": f"test plugin {pid}", "kind": kind,
            "entry": f"misbehaving_plugins:{cls}", "isolation": isolation,
            "labels": [{"value": 1, "name": "thing", "color": [0, 255, 0]}],
            "params": [{"name": "seconds", "type": "float", "default": 60.0}]}))
        (folder / "misbehaving_plugins.py").write_text((HERE / "misbehaving_plugins.py").read_text())
    monkeypatch.setenv("MEDVIEWER_PLUGIN_PATH", str(root))
    from medviewer.plugins.registry import discover

    found, problems = discover()
    assert not problems, problems
    return found
