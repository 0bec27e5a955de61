"""SEG/RTSTRUCT in the window: found beside the series, offered, loaded as a coloured layer at the
right place (pixels read back from VTK); File > Export segmentation; `open --seg --screenshot`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from medviewer.core.document import LabelLayer
from medviewer.core.errors import MedviewerError
from tests.ui.pixels import patch

pytestmark = [pytest.mark.gui, pytest.mark.timeout(180)]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLOURS = {1: (0, 255, 0), 2: (255, 0, 255), 3: (0, 255, 255)}


@pytest.fixture(scope="module")
def study_with_seg(demo_series, demo_volume, tmp_path_factory):
    """A copy of the demo series folder with a SEG of its lesions (green, magenta, cyan) in it."""
    from medviewer.core.segments import Segment
    from medviewer.export.seg import write_seg
    from medviewer.io import read_image

    folder = tmp_path_factory.mktemp("study") / "demo"
    shutil.copytree(demo_series, folder)
    labels = demo_volume.with_array(read_image(demo_series / "lesions.nii.gz").array.astype(np.uint8))
    segments = [Segment(n, f"lesion {n}", COLOURS[n]) for n in (1, 2, 3)]
    write_seg(demo_volume, labels, segments, folder / "lesions-seg.dcm")
    return folder


def test_seg_in_the_study_is_offered_and_loads_in_its_colours_at_the_right_place(window, qtbot, study_with_seg, tmp_path):
    with qtbot.waitSignal(window.volume_loaded, timeout=60000):
        window.open_path(str(study_with_seg))
    bar = window.annotations
    qtbot.waitUntil(lambda: bool(bar.refs), timeout=20000)
    assert not bar.isHidden() and bar.combo.count() == 1
    assert "1 segmentation reference" in bar.label.text() and "SEG" in bar.combo.itemText(0)
    with qtbot.waitSignal(bar.loaded, timeout=60000) as blocker:
        bar.load_button.click()
    layer = blocker.args[0]
    assert isinstance(layer, LabelLayer) and layer in window.document.layers
    assert layer.label_names == {1: "lesion 1", 2: "lesion 2", 3: "lesion 3"}
    assert layer.label_colors[2] == pytest.approx((1.0, 0.0, 1.0))
    assert bar.isHidden()
    window.document.update_layer(layer, opacity=1.0)
    lesions = json.loads((study_with_seg / "lesions.json").read_text())["lesions"]
    for lesion in lesions:
        centre = np.asarray(lesion["center_mm"])
        window.document.set_cursor(centre)
        view = window.grid.views["axial"]
        inside = centre + 0.4 * lesion["radius_mm"] * (view.right + view.up)   # off the crosshair
        rgb = patch(window, "axial", inside)
        on = np.asarray(COLOURS[lesion["label"]]) > 0
        assert rgb[on].min() > rgb[~on].max() + 80, (lesion["label"], rgb)   # its own colour
        outside = centre + 2.0 * lesion["radius_mm"] * (view.right + view.up)
        rgb = patch(window, "axial", outside)
        assert np.ptp(rgb) < 15, (lesion["label"], rgb)                     # grey CT, no overlay

    # export: NIfTI and the CSV report; never over an existing file without being told
    from medviewer.ui.annotations_ui import export_layer

    out = tmp_path / "lesions.nii.gz"
    export_layer(window, layer, str(out), "nifti")
    with pytest.raises(MedviewerError, match="exists"):
        export_layer(window, layer, str(out), "nifti")
    export_layer(window, layer, str(out), "nifti", force=True)
    from medviewer.io import read_image
    assert np.array_equal(read_image(out).array, layer.volume.array)
    report = tmp_path / "report.csv"
    lines = export_layer(window, layer, str(report), "csv")
    assert report.exists() and len(lines) == 3
    # SEG round trip through the window's loader
    seg = tmp_path / "again.dcm"
    export_layer(window, layer, str(seg), "seg")
    again = window.load_segmentation(str(seg))
    assert window.status_label.text() == "Loaded SEG again"
    assert np.array_equal(again.volume.array, layer.volume.array)
    assert again.label_colors == layer.label_colors
    # the measures as an SR, with the SEG it refers to beside it
    lines = export_layer(window, layer, str(tmp_path / "measures.dcm"), "sr")
    assert (tmp_path / "measures-seg.dcm").exists() and "measures-seg.dcm" in lines[0]


def test_export_errors_are_messages(window, qtbot, demo_volume, tmp_path):
    from medviewer.ui.annotations_ui import choose_export, export_layer

    window.set_volume(demo_volume)
    choose_export(window)        # nothing to export: a message, no dialog
    assert "no segmentation" in window.errors[-1]
    empty = window.document.add_layer(LabelLayer(name="empty", volume=demo_volume.with_array(
        np.zeros(demo_volume.shape, np.uint8))))
    with pytest.raises(MedviewerError, match="empty"):
        export_layer(window, empty, str(tmp_path / "x.nii.gz"), "nifti")


def test_open_with_seg_screenshot_shows_the_overlay(study_with_seg, tmp_path):
    from vtkmodules.util import numpy_support
    from vtkmodules.vtkIOImage import vtkPNGReader

    out = tmp_path / "shot.png"
    env = dict(os.environ, PYTHONPATH=ROOT)
    run = subprocess.run([sys.executable, "-m", "medviewer", "open", str(study_with_seg), "--seg",
                          str(study_with_seg / "lesions-seg.dcm"), "--screenshot", str(out), "--size", "700x600"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    reader = vtkPNGReader()
    reader.SetFileName(str(out))
    reader.Update()
    w, h, _ = reader.GetOutput().GetDimensions()
    px = numpy_support.vtk_to_numpy(reader.GetOutput().GetPointData().GetScalars()).reshape(h, w, -1)[..., :3]
    px = px.astype(int)
    green = (px[..., 1] > px[..., 0] + 80) & (px[..., 1] > px[..., 2] + 80)
    magenta = (px[..., 0] > px[..., 1] + 80) & (px[..., 2] > px[..., 1] + 80)
    assert green.sum() > 20 and magenta.sum() > 20
    bad = subprocess.run([sys.executable, "-m", "medviewer", "open", str(study_with_seg), "--seg",
                          str(tmp_path / "missing.dcm"), "--screenshot", str(tmp_path / "x.png")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "no such file" in bad.stderr and "Traceback" not in bad.stderr


def test_what_the_reader_says_about_a_loaded_seg_is_shown(window, demo_volume, tmp_path):
    """File > Load segmentation: overlapping segments (one shown where they overlap) are said in
    the status line, as the study's annotation bar says them."""
    from medviewer.core.segments import Segment
    from medviewer.export.seg import write_seg

    window.set_volume(demo_volume)
    a = np.zeros(demo_volume.shape, np.uint8)
    b = np.zeros(demo_volume.shape, np.uint8)
    a[30:40, 100:140, 100:140] = 1
    b[35:45, 120:160, 120:160] = 1
    out = write_seg(demo_volume, [demo_volume.with_array(a), demo_volume.with_array(b)],
                    [Segment(1, "whole"), Segment(2, "part")], tmp_path / "overlap.dcm")
    window.load_segmentation(str(out))
    text = window.status_label.text()
    assert text.startswith("Loaded SEG overlap (") and "segments overlap in 2000 voxels" in text
