"""`medviewer models` and `medviewer models get` (issue 20) against a local HTTP server on
127.0.0.1 serving Model Zoo bundle zips (these machines reach no Model Zoo; nothing else is
downloaded). Real processes, as a user runs them."""

from __future__ import annotations

import functools
import http.server
import os
import socket
import subprocess
import sys
import threading
import zipfile

import numpy as np
import pytest

from tests.conftest import ROOT


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ, MEDVIEWER_CONFIG=str(tmp_path / "settings.json"),
             MEDVIEWER_MODELS_DIR=str(tmp_path / "models"), MEDVIEWER_PLUGIN_PATH=str(tmp_path / "none"),
             PYTHONPATH=str(ROOT))
    e.pop(("MEDVIEWER_BUNDLE_SOURCE"), None)
    return e


def medviewer(env, *args):
    return subprocess.run([sys.executable, "-m", "medviewer", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=600)


@pytest.fixture
def server(tmp_path):
    """http://127.0.0.1:PORT serving tmp_path/served (http.server in a thread)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()
    httpd.server_close()


def zip_bundle(folder, zip_path) -> None:
    """The bundle folder as the Model Zoo ships it: a zip with the bundle's folder at its base."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as z:
        for path in sorted(folder.rglob("*")):
            z.write(path, path.relative_to(folder.parent))


@pytest.fixture
def crop_file(lung_series, tmp_path):
    """A small crop (64 x 64 x 8 voxels) of the real Lung-PET-CT-Dx series, as NIfTI."""
    from medviewer.io import load_volume, write_image

    path = tmp_path / "crop.nii.gz"
    write_image(load_volume(lung_series).crop((14, 200, 140), (22, 264, 204)), path)
    return path


def no_staging_left(models) -> bool:
    return not models.exists() or not [p for p in models.iterdir() if p.name.startswith(".download")]


@pytest.mark.data
@pytest.mark.timeout(900)
def test_get_installs_a_bundle_from_a_local_server_and_the_next_run_uses_it(env, server, tmp_path, crop_file):
    from tests.plugins.test_bundle_click_engines import stand_in_bundle

    base, served = server
    bundle = stand_in_bundle("spleen_deepedit_annotation", tmp_path / "build", {"spatial_size": [64, 64, 32]})
    zip_bundle(type(tmp_path)(bundle), served / "spleen_deepedit_annotation_v0.5.6.zip")

    r = medviewer(env, "models")
    assert r.returncode == 0 and "spleen_deepedit_annotation" not in r.stdout  # nothing there before
    r = medviewer(env, "models", "get", "spleen_deepedit_annotation", "--version", "0.5.6", "--source", base,
                  "--trust")
    assert r.returncode == 0, r.stderr
    installed = tmp_path / "models" / "spleen_deepedit_annotation"
    assert (installed / "models" / "model.pt").is_file() and (installed / "configs" / "inference.json").is_file()
    assert "Installed spleen_deepedit_annotation 0.5.6 (deepedit)" in r.stdout and "Trusted" in r.stdout
    assert no_staging_left(tmp_path / "models") and not list((tmp_path / "models").glob("*.zip"))

    # the next run knows it: listed, trusted, and the click engine runs it by name
    r = medviewer(env, "models")
    row = next(line for line in r.stdout.splitlines() if line.startswith("spleen_deepedit_annotation"))
    assert "0.5.6" in row and "deepedit" in row and "model folder" in row and " trusted" in row
    from medviewer.io import load_volume

    crop = load_volume(str(crop_file))
    point = ",".join(f"{v:.2f}" for v in crop.voxel_to_patient((np.asarray(crop.shape) - 1) / 2.0))
    out = tmp_path / "mask.nii.gz"
    r = medviewer(env, "segment", crop_file, "--engine", "spleen_deepedit_annotation", f"--point={point}",
                  "--device", "cpu", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "by the spleen_deepedit_annotation bundle engine" in r.stdout
    assert load_volume(str(out)).same_grid(crop)


def test_get_says_in_one_line_what_went_wrong(env, server, tmp_path):
    base, served = server
    (served / "broken_v1.zip").write_bytes(b"<html>not a zip</html>")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    cases = [(("nope", "--version", "1", "--source", base), "no bundle 'nope' at " + base),
             (("broken", "--version", "1", "--source", base), "is not a zip file"),
             (("spleen", "--source", closed), "cannot reach " + closed)]
    for args, expected in cases:
        r = medviewer(env, "models", "get", *args, "--trust")
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and len(lines) == 1 and expected in lines[0], (args, r.stderr)
        assert no_staging_left(tmp_path / "models")
    # the source may come from the environment (a hospital's mirror)
    r = medviewer(dict(env, MEDVIEWER_BUNDLE_SOURCE=base), "models", "get", "nope", "--version", "2")
    assert r.returncode == 1 and f"no bundle 'nope' at {base}/nope_v2.zip" in r.stderr


def test_listing_imports_no_torch_and_names_the_shipped_bundle(env):
    code = ("import sys; from medviewer.cli import main; main(['models']); "
            "print('torch loaded' if 'torch' in sys.modules or 'monai' in sys.modules else 'light')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "click_segment_bundle" in r.stdout and "shipped" in r.stdout
    assert r.stdout.strip().endswith("light")


@pytest.mark.gui
@pytest.mark.data
def test_the_windows_models_menu_gets_a_bundle_off_the_gui_thread_and_offers_it_to_the_click_tool(
        server, tmp_path, qtbot, monkeypatch, shared_data):
    import shutil

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QMessageBox

    from medviewer.plugins import trust
    from medviewer.ui import models_menu
    from medviewer.ui.main_window import MainWindow

    base, served = server
    for key, value in (("MEDVIEWER_CONFIG", tmp_path / "settings.json"), ("MEDVIEWER_MODELS_DIR", tmp_path / "models"),
                       ("MEDVIEWER_PLUGIN_PATH", tmp_path / "none")):
        monkeypatch.setenv(key, str(value))
    shutil.copytree(shared_data / "model-zoo" / "vista3d", tmp_path / "build" / "vista3d")  # configs only
    zip_bundle(tmp_path / "build" / "vista3d", served / "vista3d_v0.5.4.zip")
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Yes)
    warnings = []  # a failure's modal box would wait for a click forever: recorded instead
    monkeypatch.setattr(QMessageBox, "warning", lambda _w, _t, text, *a, **k: warnings.append(text))
    from medviewer_plugins.monai_bundle.impl import forbid_downloads

    forbid_downloads()  # a bundle ran earlier in this window: its refusal of downloads is the bundle's only
    window = MainWindow(settings=QSettings(str(tmp_path / "ui.ini"), QSettings.IniFormat), quiet=True)
    qtbot.addWidget(window)
    assert "Get a Model Zoo bundle" in " ".join(a.text() for a in window.models_menu.actions())
    task = models_menu.start_get(window, "vista3d", "0.5.4", base)
    with qtbot.waitSignal(task.ended, timeout=60000):
        pass
    assert warnings == []
    installed = str((tmp_path / "models" / "vista3d").resolve())
    assert trust.is_trusted(installed) and "installed vista3d" in window.status_label.text()
    assert window.segment_editor.engine_combo.currentText() == installed
