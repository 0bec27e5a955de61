"""The segment editor dock under Xvfb: click to segment, brush/eraser/threshold, islands, undo,
measures. Colours are read back from the VTK render windows (vtkWindowToImageFilter)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication

from medviewer.core.document import LabelLayer
from medviewer.core.label_edit import disc_region
from medviewer.ui.segment_editor import _rgb255
from tests.ui.pixels import patch

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120)]


def lesion(demo_series, index):
    return json.loads((demo_series / "lesions.json").read_text())["lesions"][index]


def screen_pos(window, view_name, point) -> QPoint:
    view = window.grid.views[view_name]
    x, y = view.patient_to_display(point)
    h = window.grid.widgets[view_name].height()
    return QPoint(int(round(x)), h - 1 - int(round(y)))


def click(qtbot, window, view_name, point, shift=False):
    qtbot.mouseClick(window.grid.widgets[view_name], Qt.LeftButton,
                     Qt.ShiftModifier if shift else Qt.NoModifier, screen_pos(window, view_name, point))


def brush_slices(editor, demo_series, demo_volume, offsets, radius_mm):
    """Brush a disc of ``radius_mm`` at the demo's third lesion on the axial slices ``offsets``
    slices from its centre; returns the centre (LPS mm)."""
    c = np.asarray(lesion(demo_series, 2)["center_mm"])
    editor.radius.setValue(radius_mm)
    for k in offsets:
        editor.paint_disc("axial", c + [0.0, 0.0, k * demo_volume.spacing[2]], tool="brush")
    return c


def count(editor, label=1):
    return int((editor.layer.volume.array == label).sum())


@pytest.fixture
def editor(window, demo_volume):
    window.resize(900, 700)
    window.set_volume(demo_volume)
    # The editor's mechanics are tested with the classical engine: fast and deterministic on the
    # phantom (the learned engine is tested in tests/plugins).
    window.segment_editor.engine_combo.setCurrentText("classical")
    return window.segment_editor


def test_click_segments_a_lesion_negative_click_shrinks_undo_restores(window, qtbot, editor, demo_series,
                                                                      demo_volume):
    les = lesion(demo_series, 2)  # liver, radius 15 mm
    c = np.asarray(les["center_mm"])
    r = les["radius_mm"]
    window.document.set_cursor(c)
    editor.set_tool("click")
    views = ("axial", "coronal", "sagittal")

    def inside(name):  # a point in the lesion, off the crosshair lines
        view = window.grid.views[name]
        return c + 0.35 * r * (view.right + view.up)

    for name in views:
        rgb = patch(window, name, inside(name))
        assert abs(rgb[0] - rgb[1]) < 15 and abs(rgb[0] - rgb[2]) < 15, (name, rgb)   # grey: no overlay
    cursor = window.document.cursor

    with qtbot.waitSignal(editor.click_result, timeout=30000):
        click(qtbot, window, "axial", c)
    assert np.allclose(window.document.cursor, cursor)      # the click tool does not move the crosshair
    first = count(editor)
    expected = 4 / 3 * np.pi * r ** 3 / (np.prod(demo_volume.spacing))
    assert 0.8 * expected < first < 1.25 * expected, (first, expected)
    ml = first * demo_volume.voxel_volume_ml
    assert editor.status.text() == f"lesion 1: {ml:.1f} mL ({first:,} voxels)"   # what a reader wants: mL
    # a SEG of it will name the engine that outlined it, as `medviewer segment` does
    (segment,) = editor.segments.values()
    assert (segment.algorithm.type, segment.algorithm.name) == ("SEMIAUTOMATIC", "medviewer click-to-segment (classical)")
    for name in views:
        rgb = patch(window, name, inside(name))
        assert rgb[1] > rgb[0] + 25 and rgb[2] > rgb[0] + 20, (name, rgb)           # teal overlay, not red
        outside = c + 2 * r * (window.grid.views[name].right + window.grid.views[name].up)
        rgb = patch(window, name, outside)
        assert abs(rgb[0] - rgb[1]) < 15, (name, rgb)
    # the positive click is drawn as a white marker (ringed black) on its slice
    g = patch(window, "axial", c, radius=1)
    assert g.min() > 220, g

    # a negative click (shift) near the lesion's edge shrinks it and is drawn black (ringed white)
    edge = c + np.array([0.75 * r, 0.0, 0.0])
    with qtbot.waitSignal(editor.click_result, timeout=30000):
        click(qtbot, window, "axial", edge, shift=True)
    second = count(editor)
    assert 0 < second < first
    assert editor.clicks[1].negative and len(editor.clicks[1]) == 2
    black = patch(window, "axial", edge, radius=1)
    assert black.max() < 40, black

    # undo (Ctrl+Z) restores the voxel count exactly and takes the negative click back
    window.activateWindow()
    editor.undo_action.trigger()
    assert count(editor) == first
    assert len(editor.clicks[1]) == 1 and not editor.clicks[1].negative
    editor.redo_action.trigger()
    assert count(editor) == second
    editor.undo()
    assert count(editor) == first

    # the measures table: volume within 15 % of the sphere's
    qtbot.waitUntil(lambda: editor.table.rowCount() == 1 and
                    editor.measures and editor.measures[0].voxel_count == first, timeout=10000)
    volume_ml = float(editor.table.item(0, 1).text())
    assert volume_ml == pytest.approx(4 / 3 * np.pi * r ** 3 / 1000, rel=0.15)
    m = editor.measures[0]
    assert m.long_axis_mm == pytest.approx(2 * r, abs=6)   # corner to corner: about a voxel more
    assert m.short_axis_mm == pytest.approx(2 * r, abs=6)
    assert abs(m.mean - les["hu"]) < 40
    assert editor.table.item(0, 0).text() == "lesion 1"

    # a second lesion as its own segment: its own colour, the first one left intact
    les1 = lesion(demo_series, 0)
    editor.add_segment("lung nodule")
    window.document.set_cursor(les1["center_mm"])
    with qtbot.waitSignal(editor.click_result, timeout=30000):
        click(qtbot, window, "axial", les1["center_mm"])
    assert count(editor, 1) == first and count(editor, 2) > 100
    qtbot.waitUntil(lambda: editor.table.rowCount() == 2, timeout=10000)
    assert editor.table.item(1, 0).text() == "lung nodule"
    view = window.grid.views["axial"]
    # (off the diagonals, where the RECIST long and short axes of a sphere may run)
    rgb = patch(window, "axial", np.asarray(les1["center_mm"]) + 0.5 * les1["radius_mm"] * view.up, radius=1)
    assert rgb[0] > rgb[1] + 15 and rgb[2] > rgb[1] + 30, rgb   # segment 2 is violet (translucent on dark lung)
    assert "leaked" not in editor.status.text()

    # a click in the body (soft tissue all around, no lesion): the status says the region leaked
    body = demo_volume.voxel_to_patient(np.array(demo_volume.shape) // 2)
    editor.add_segment("not a lesion")
    window.document.set_cursor(body)
    with qtbot.waitSignal(editor.click_result, timeout=30000):
        click(qtbot, window, "axial", body)
    assert "probably leaked beyond the lesion" in editor.status.text()


def test_brush_eraser_threshold_and_islands(window, qtbot, editor, demo_series, demo_volume):
    les = lesion(demo_series, 2)
    c = np.asarray(les["center_mm"])
    window.document.set_cursor(c)
    axial = window.grid.views["axial"]
    editor.radius.setValue(5.0)
    # brush: a real mouse click in the axial view paints one disc on the current slice
    editor.set_tool("brush")
    p = c + np.array([-30.0, 0.0, 0.0])
    click(qtbot, window, "axial", p)
    painted = editor.layer.volume.array == 1
    box, disc = disc_region(demo_volume, p, 5.0, axial.normal)
    expected = np.zeros_like(painted)
    expected[box] = disc
    # the mouse lands on a screen pixel: the disc is centred within a pixel of p
    assert abs(int(painted.sum()) - int(expected.sum())) <= 0.15 * expected.sum()
    zyx = np.argwhere(painted)
    assert np.all(zyx[:, 0] == demo_volume.patient_to_voxel(p)[0])          # one slice: p's
    mm = demo_volume.voxel_to_patient(zyx)
    assert np.linalg.norm(mm.mean(axis=0) - p) < demo_volume.spacing[0]
    assert np.linalg.norm(mm - p, axis=1).max() < 5.0 + 1.5 * demo_volume.spacing[0]
    expected = painted.copy()
    # eraser removes it
    editor.set_tool("eraser")
    click(qtbot, window, "axial", p)
    assert count(editor) == 0
    editor.undo()
    assert np.array_equal(editor.layer.volume.array == 1, expected)
    editor.undo()
    assert count(editor) == 0

    # threshold brush across the lesion border paints only voxels in the HU range
    editor.radius.setValue(12.0)
    editor.hu_min.setValue(-10.0)
    editor.hu_max.setValue(40.0)
    q = c + np.array([les["radius_mm"], 0.0, 0.0])
    editor.paint_disc("axial", q, tool="threshold")
    box, disc = disc_region(demo_volume, q, 12.0, axial.normal)
    hu = demo_volume.array[box]
    painted = (editor.layer.volume.array == 1)[box]
    assert painted.sum() > 10
    assert np.array_equal(painted, disc & (hu >= -10) & (hu <= 40))
    assert painted.sum() < disc.sum()
    assert count(editor) == painted.sum()
    editor.undo()
    assert count(editor) == 0

    # remove islands: a detached small blob goes, the large piece stays
    editor.radius.setValue(8.0)
    editor.paint_disc("axial", c, tool="brush")
    big = count(editor)
    editor.radius.setValue(3.0)
    editor.paint_disc("axial", c + np.array([40.0, 0.0, 0.0]), tool="brush")
    assert count(editor) > big
    editor.remove_islands()
    assert count(editor) == big
    editor.undo()
    assert count(editor) > big
    editor.remove_islands(min_ml=0.5)   # the blob is ~0.07 mL, the disc ~0.5 mL
    assert count(editor) == big
    qtbot.waitUntil(lambda: editor.table.rowCount() == 1 and editor.measures[0].voxel_count == big,
                    timeout=10000)


def test_segments_reset_with_a_new_image_and_navigate_restores_the_crosshair(window, qtbot, editor, demo_volume):
    editor.set_tool("brush")
    assert all(v.tool is editor for n, v in window.grid.views.items() if n != "3d")
    editor.paint_disc("axial", window.document.cursor)
    assert editor.segments and editor.layer is not None
    editor.rename_segment(1, "tumour")
    editor.recolour_segment(1, (0, 0, 255))
    assert editor.layer.label_names[1] == "tumour" and editor.layer.label_colors[1] == (0.0, 0.0, 1.0)
    labels, segments = editor.segments_for_export()
    assert [s.name for s in segments] == ["tumour"] and labels.same_grid(demo_volume)
    painted = count(editor)
    editor.add_segment("second")
    editor.paint_disc("axial", window.document.cursor + np.array([30.0, 0.0, 0.0]))
    assert count(editor, 2) > 0
    editor.delete_segment(1)
    assert 1 not in editor.segments and count(editor, 1) == 0 and count(editor, 2) > 0
    assert [s.name for s in editor.segments_for_export()[1]] == ["second"]
    editor.undo()                                   # the segment comes back with its voxels
    assert editor.segments[1].name == "tumour" and count(editor, 1) == painted
    editor.redo()
    assert 1 not in editor.segments and count(editor, 1) == 0
    assert editor.add_segment().label == 3          # labels are not reused
    editor.set_tool("navigate")
    assert all(v.tool is None for n, v in window.grid.views.items() if n != "3d")
    target = window.document.cursor + np.array([20.0, 10.0, 0.0])
    click(qtbot, window, "axial", target)
    assert np.allclose(window.document.cursor[:2], target[:2], atol=3)
    editor.set_tool("click")
    editor.add_click(window.document.cursor, positive=True)
    assert editor.busy()
    window.set_volume(demo_volume)                  # a new image while a click runs: it is dropped
    assert editor.layer is None and not editor.segments and not editor.stack.can_undo()
    assert not editor.busy()
    qtbot.wait(500)
    assert editor.layer is None and window.document.layers_of(LabelLayer) == []


def test_a_click_while_one_runs_supersedes_it_and_ctrl_z_undoes(window, qtbot, editor, demo_series):
    les = lesion(demo_series, 2)
    c = np.asarray(les["center_mm"])
    window.document.set_cursor(c)
    editor.set_tool("click")
    results = []
    editor.click_result.connect(results.append)
    editor.add_click(c, positive=True)
    assert editor.busy() and len(editor.shown_clicks()) == 1     # the marker shows at once
    editor.add_click(c + np.array([0.75 * les["radius_mm"], 0, 0]), positive=False)
    assert len(editor.shown_clicks()) == 2
    qtbot.waitUntil(lambda: not editor.busy(), timeout=30000)
    qtbot.wait(100)
    assert len(results) == 1                        # the first run's result was dropped
    assert len(editor.clicks[1]) == 2 and len(editor.stack.done) == 1
    shrunk = count(editor)
    assert shrunk > 100
    # Ctrl+Z in a view: one undo takes both clicks and the voxels back
    axial = window.grid.widgets["axial"]
    window.activateWindow()
    axial.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is not None, timeout=2000)
    qtbot.keyClick(axial, Qt.Key_Z, Qt.ControlModifier)
    assert count(editor) == 0 and len(editor.clicks[1]) == 0
    qtbot.keyClick(axial, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    assert count(editor) == shrunk and len(editor.clicks[1]) == 2


def test_choosing_the_click_tool_loads_the_learned_engine_ahead_of_the_first_click(window, qtbot, demo_volume):
    """With the learned engine chosen, picking the click tool loads its network in the background
    (seconds: torch, MONAI, the weights) and the status says so, then says it is ready; the first
    click then finds it loaded."""
    from medviewer_plugins.click_segment import learned

    window.resize(900, 700)
    window.set_volume(demo_volume)
    editor = window.segment_editor
    editor.engine_combo.setCurrentText("learned")
    learned._CACHE.clear()
    with qtbot.waitSignal(editor.engine_ready, timeout=120000) as ready:
        editor.set_tool("click")
        assert editor.status.text() == "loading the learned engine..."
    engine, seconds = ready.args
    assert engine == "learned" and isinstance(seconds, float) and seconds > 0
    assert editor.status.text().startswith("the learned engine is ready")
    assert learned.model_loaded(learned.DEFAULT_BUNDLE, "cpu")
    # picked again: already loaded, nothing to announce
    editor.set_tool("navigate")
    editor._say("")
    editor.set_tool("click")
    assert editor.status.text() == ""


LEARNED_CLICK_IN_A_FRESH_WINDOW = r"""
import json, sys
from PySide6.QtCore import QEventLoop, QSettings, QTimer
from medviewer.io import load_volume
from medviewer.ui.app import application
from medviewer.ui.main_window import MainWindow

app = application()
window = MainWindow(settings=QSettings(sys.argv[2], QSettings.IniFormat), quiet=True)
window.show()
window.set_volume(load_volume(sys.argv[1]))
app.processEvents()        # the views have rendered: VTK's OpenGL context exists
assert "torch" not in sys.modules
editor = window.segment_editor
editor.engine_combo.setCurrentText("learned")
loop = QEventLoop()
outcome = {}
editor.click_result.connect(lambda change: (outcome.setdefault("voxels", int((editor.layer.volume.array == 1).sum())), loop.quit()))
editor.click_failed.connect(lambda message: (outcome.setdefault("failed", message), loop.quit()))
QTimer.singleShot(240000, loop.quit)
lesion = json.loads(open(sys.argv[3]).read())["lesions"][1]
editor.add_click(lesion["center_mm"])
loop.exec()
print(json.dumps(outcome), flush=True)
# The click is what is tested. This script, unlike the app (app.exec() returning after the window
# closed), would leave the interpreter while the window's background threads (measures, the 3D
# copy) may still run, and the C++ runtime aborts such an exit now and then ("terminate called
# without an active exception", seen once in CI): close the window, then leave at once.
import os
window.close()
app.processEvents()
os._exit(0)
"""


def test_a_learned_click_in_a_fresh_window_does_not_crash_it(demo_series, tmp_path):
    """The first learned click imports torch and MONAI in the window's process, after VTK made its
    OpenGL context. Loading triton then (torch._dynamo imports it) crashed the window with a
    segmentation fault on Mesa (Xvfb here). A fresh process, as a user's window would be: the click
    returns a mask."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    r = subprocess.run([sys.executable, "-c", LEARNED_CLICK_IN_A_FRESH_WINDOW, str(demo_series),
                        str(tmp_path / "settings.ini"), str(demo_series / "lesions.json")],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    outcome = json.loads(r.stdout.strip().splitlines()[-1])
    assert outcome.get("voxels", 0) > 100, outcome


def test_a_loaded_segmentation_is_imported_for_editing_and_undo_takes_it_back(window, qtbot, editor, demo_series,
                                                                             demo_volume):
    """Segment > Import a loaded segmentation: a loaded label map's lesions become editor segments
    (names, colours, voxels), on top of one drawn already and never over it; the source layer is
    hidden; the brush edits them; undo takes an import back out, segment entry and all."""
    from medviewer.io import read_image

    truth = read_image(str(demo_series / "lesions.nii.gz")).array
    values = sorted(int(v) for v in np.unique(truth) if v)
    les = lesion(demo_series, 2)
    editor.radius.setValue(6.0)
    editor.paint_disc("axial", les["center_mm"], tool="brush")    # lesion 1, drawn by hand inside lesion 3
    drawn = editor.layer.volume.array == 1
    loaded = window.load_segmentation(str(demo_series / "lesions.nii.gz"))
    window.layers.tree.setCurrentItem(window.layers.item_of(loaded))
    added = editor.import_layer()

    assert [s.label for s in added] == [2, 3, 4] and len(values) == 3
    assert [s.color for s in added] == [_rgb255(loaded.color_of(v)) for v in values]
    assert [editor.segment_list.item(i).text() for i in range(4)][1:] == [s.name for s in added]
    array = editor.layer.volume.array
    assert np.array_equal(array == 1, drawn)                               # the drawn one untouched
    for seg, v in zip(added, values):
        assert np.array_equal(array == seg.label, (truth == v) & ~drawn)
    assert not loaded.visible and "imported 3 segment(s)" in editor.status.text()

    editor.select_segment(4)
    editor.set_tool("eraser")
    editor.radius.setValue(30.0)
    editor.paint_disc("axial", les["center_mm"], tool="eraser")
    assert count(editor, 4) < int(((truth == values[2]) & ~drawn).sum())
    editor.undo()                                                         # the erasing
    editor.undo()                                                         # the last import
    assert 4 not in editor.segments and count(editor, 4) == 0 and editor.segment_list.count() == 3
    editor.redo()
    assert editor.segments[4].name == added[2].name and count(editor, 4) > 0

    # a layer on another grid is refused with a message
    other = LabelLayer(name="elsewhere", volume=demo_volume.with_array(truth, spacing=(2.0, 2.0, 2.0)))
    assert editor.import_layer(other) == [] and "not on the open image's grid" in editor.status.text()


def test_unexported_segments_are_offered_for_export_before_they_are_lost(window, qtbot, editor, demo_series,
                                                                        demo_volume, tmp_path, monkeypatch):
    """Closing the window or opening another study replaces the segments: with edits not exported
    the window asks (Export / Discard / Cancel). Cancel keeps everything; Export writes them through
    the export dialog, each segment saying how it was made (clicks: SEMIAUTOMATIC, brush: MANUAL)."""
    import highdicom as hd
    from PySide6.QtWidgets import QDialog, QMessageBox

    les = lesion(demo_series, 2)
    window.document.set_cursor(les["center_mm"])
    editor.set_tool("click")
    with qtbot.waitSignal(editor.click_result, timeout=30000):
        click(qtbot, window, "axial", np.asarray(les["center_mm"]))
    editor.add_segment("drawn")
    editor.paint_disc("axial", np.asarray(les["center_mm"]) + np.array([60.0, 0.0, 0.0]), tool="brush")
    assert editor.has_unexported_edits()

    monkeypatch.setattr(window, "quiet", False)   # a user's window asks; the answers come from here
    answers = []
    asked = []
    # (Discard when no answer is queued: the window closes at the test's end, and a failure
    # inside closeEvent would take the test process down.)
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: asked.append(a[2]) or (answers.pop(0) if answers else QMessageBox.Discard))
    answers.append(QMessageBox.Cancel)
    before = editor.layer.volume.array.copy()
    window.open_path(str(demo_series))               # cancelled: nothing is loaded, nothing lost
    assert not answers and (window.task is None or not window.task.running)
    answers.append(QMessageBox.Cancel)
    assert not window.close() and window.isVisible() and not answers
    assert asked == ["The segments have changes that are not exported. Export them before opening another study?",
                     "The segments have changes that are not exported. Export them before closing?"]
    assert np.array_equal(editor.layer.volume.array, before) and editor.has_unexported_edits()

    out = tmp_path / "lesions.dcm"
    from medviewer.ui.annotations_ui import ExportDialog   # the user's segments come chosen: only the file
    monkeypatch.setattr(ExportDialog, "exec", lambda self: self.path.setText(str(out)) or QDialog.Accepted)
    answers.append(QMessageBox.Save)
    assert window.confirm_discard_segments("closing")
    assert out.is_file() and not editor.has_unexported_edits()
    seg = hd.seg.segread(out)
    kinds = {s.SegmentLabel: s.SegmentAlgorithmType for s in seg.SegmentSequence}
    assert kinds == {"lesion 1": "SEMIAUTOMATIC", "drawn": "MANUAL"}

    editor.paint_disc("axial", np.asarray(les["center_mm"]) + np.array([60.0, 20.0, 0.0]), tool="brush")
    answers.append(QMessageBox.Discard)              # an edit after the export: asked again
    assert window.confirm_discard_segments("closing") and not answers


def test_double_clicking_a_lesion_in_the_measures_table_goes_to_it(window, qtbot, editor, demo_series,
                                                                   demo_volume):
    """Two lesions: double-clicking the second one's row puts the crosshair on its longest axial
    diameter (the middle of it, on that slice) and selects it; Ctrl+J goes to the current one."""
    editor.set_tool("click")
    for index in (0, 2):
        c = np.asarray(lesion(demo_series, index)["center_mm"])
        window.document.set_cursor(c)
        if index:
            editor.add_segment()
        editor.add_click(c)
        qtbot.waitUntil(lambda: not editor.busy(), timeout=20000)
    qtbot.waitUntil(lambda: editor.table.rowCount() == 2, timeout=20000)
    second = next(m for m in editor.measures if m.label == 2)
    # below the table, their sum of longest axial diameters and total volume (as a follow-up read adds them)
    assert editor.totals.text() == (
        f"2 lesions: sum of the longest axial diameters {sum(m.long_axis_mm for m in editor.measures):.1f} mm, "
        f"total volume {sum(m.volume_ml for m in editor.measures):.2f} mL")
    window.document.set_cursor(np.asarray(lesion(demo_series, 1)["center_mm"]))   # elsewhere
    editor.select_segment(1)
    row = editor._table_labels.index(2)
    cell = editor.table.visualItemRect(editor.table.item(row, 0)).center()
    qtbot.mouseClick(editor.table.viewport(), Qt.LeftButton, pos=cell)   # as a mouse does: press first
    qtbot.mouseDClick(editor.table.viewport(), Qt.LeftButton, pos=cell)
    assert editor.current == 2
    cursor = window.document.cursor
    assert np.allclose(cursor, np.mean(second.long_axis_endpoints_mm, axis=0))
    assert round(demo_volume.patient_to_voxel(cursor)[0]) == second.long_axis_slice
    z, y, x = np.round(demo_volume.patient_to_voxel(cursor)).astype(int)
    assert editor.layer.volume.array[z, y, x] == 2
    # Segment > Go to segment (Ctrl+J): the current segment (now lesion 1)
    from PySide6.QtGui import QAction, QKeySequence

    go = next(a for a in window.menuBar().findChildren(QAction) if a.text() == "Go to segment")
    assert go.shortcut() == QKeySequence("Ctrl+J")
    editor.select_segment(1)
    go.trigger()
    z, y, x = np.round(demo_volume.patient_to_voxel(window.document.cursor)).astype(int)
    assert editor.layer.volume.array[z, y, x] == 1


def test_margin_grows_and_shrinks_the_current_segment_and_undo_restores(window, qtbot, editor, demo_series,
                                                                        demo_volume):
    from PySide6.QtWidgets import QPushButton

    c = np.asarray(lesion(demo_series, 2)["center_mm"])
    window.document.set_cursor(c)
    editor.radius.setValue(8.0)
    editor.paint_disc("axial", c, tool="brush")
    before = editor.layer.volume.array.copy()
    editor.margin_mm.setValue(3.0)   # 3 mm: two pixels of 1.4 mm in plane, one 2.5 mm slice
    button = next(b for b in editor.findChildren(QPushButton) if b.text() == "Grow / shrink")
    button.click()   # the dock may sit behind the Layers tab
    grown = editor.layer.volume.array == 1
    assert grown.sum() > (before == 1).sum() and grown[before == 1].all()
    slices = np.unique(np.argwhere(grown)[:, 0])
    assert len(slices) == 3                       # the disc's slice and one each side
    assert editor.status.text().startswith("grew lesion 1 by 3 mm")
    editor.apply_margin(-3.0)
    assert (editor.layer.volume.array == 1).sum() < grown.sum()
    editor.undo()
    assert np.array_equal(editor.layer.volume.array == 1, grown)
    editor.undo()
    assert np.array_equal(editor.layer.volume.array, before)
    editor.apply_margin(0.5)                      # under half a pixel: nothing, and it says so
    assert np.array_equal(editor.layer.volume.array, before)
    assert "under half a voxel" in editor.status.text()


def test_each_lesions_recist_long_axis_is_drawn_on_its_slice(window, qtbot, editor, demo_series, demo_volume):
    """The measures' longest axial diameter of each segment shows as a ruler with its length in
    a "RECIST axes" layer, on the slice where it was measured only, and its short axis across it,
    as long as measured; they go with the segment."""
    from medviewer.core.document import RulerLayer
    from medviewer.render.vtk_util import capture

    c = np.asarray(lesion(demo_series, 2)["center_mm"])
    window.document.set_cursor(c)
    editor.set_tool("click")
    editor.add_click(c)
    qtbot.waitUntil(lambda: editor.table.rowCount() == 1, timeout=20000)
    (m,) = editor.measures
    layer = editor.rulers_layer
    assert isinstance(layer, RulerLayer) and layer in window.document.layers
    ruler, short = layer.rulers
    assert ruler.caption == f"lesion 1: {m.long_axis_mm:.1f} x {m.short_axis_mm:.1f} mm"
    assert np.allclose([ruler.start, ruler.end], m.long_axis_endpoints_mm)
    across = np.subtract(short.end, short.start)
    along = np.subtract(ruler.end, ruler.start)
    assert np.linalg.norm(across) == pytest.approx(m.short_axis_mm, abs=1e-6) and short.caption == ""
    assert abs(across @ along) < 1e-6 * np.linalg.norm(along) * np.linalg.norm(across) + 1e-9   # perpendicular
    assert abs(across[2]) < 1e-6 and abs(short.start[2] - ruler.start[2]) < 1e-6               # same axial slice
    middle = (np.asarray(ruler.start) + np.asarray(ruler.end)) / 2    # it crosses the long axis near its middle
    assert np.linalg.norm((np.asarray(short.start) + np.asarray(short.end)) / 2 - middle) < m.short_axis_mm / 2
    editor.jump_to_segment(1)   # onto the RECIST slice
    axial = window.grid.views["axial"]
    assert [text for text, _ in axial.box_captions(layer)] == [ruler.caption]
    assert window.grid.views["coronal"].box_captions(layer) == []
    # drawn: the ruler's colour (yellow) a quarter of the way along it, off the crosshair
    quarter = 0.75 * np.asarray(ruler.start) + 0.25 * np.asarray(ruler.end)
    image = capture(axial.render_window).astype(int)
    x, y = axial.patient_to_display(quarter)
    row, col = axial.render_window.GetSize()[1] - 1 - int(round(y)), int(round(x))
    near = image[row - 1:row + 2, col - 1:col + 2].reshape(-1, 3)
    assert ((near[:, 0] > 200) & (near[:, 1] > 170) & (near[:, 2] < 80)).any(), near
    window.document.set_cursor(np.asarray(window.document.cursor) + np.array([0.0, 0.0, 3 * demo_volume.spacing[2]]))
    assert axial.box_captions(layer) == []      # another slice
    editor.delete_segment(1)
    qtbot.waitUntil(lambda: editor.rulers_layer is None, timeout=10000)
    assert layer not in window.document.layers


def test_fill_between_slices_fills_a_lesion_brushed_on_every_third_slice_and_undo_restores(
        window, qtbot, editor, demo_series, demo_volume):
    c = brush_slices(editor, demo_series, demo_volume, (-3, 0, 3), 8.0)
    drawn = count(editor)
    slices = lambda: sorted(set(np.argwhere(editor.layer.volume.array == 1)[:, 0].tolist()))  # noqa: E731
    assert len(slices()) == 3
    editor.fill_between_slices()
    assert len(slices()) == 7 and slices() == list(range(slices()[0], slices()[0] + 7))
    assert count(editor) == pytest.approx(7 / 3 * drawn, rel=0.1)   # equal discs: equal slices between
    assert "axial" in editor.status.text()
    editor.undo()
    assert count(editor) == drawn and len(slices()) == 3
    editor.redo()
    editor.fill_between_slices()                         # nothing left between: says so, changes nothing
    assert len(slices()) == 7 and "no empty slices" in editor.status.text()


def test_smoothing_the_current_segment_is_one_undoable_edit(window, qtbot, editor, demo_series, demo_volume):
    for effect in (editor.apply_smoothing, editor.fill_between_slices, editor.apply_margin, editor.remove_islands):
        effect()                                                   # no segment yet: says so
        assert editor.status.text().startswith("no segment to ")
    c = np.asarray(lesion(demo_series, 2)["center_mm"])
    window.document.set_cursor(c)
    editor.radius.setValue(8.0)
    editor.paint_disc("axial", c, tool="brush")
    editor.radius.setValue(1.0)
    editor.paint_disc("axial", c + [9.5, 0.0, 0.0])          # a small bump on the disc's edge
    before = count(editor)
    editor.smooth_mm.setValue(4.0)
    editor.smooth_method.setCurrentText("opening")
    editor.apply_smoothing()
    assert count(editor) < before and "opening" in editor.status.text()
    z, y, x = demo_volume.patient_to_voxel(c + [9.5, 0.0, 0.0])
    assert editor.layer.volume.array[z, y, x] == 0                # the bump is gone
    z, y, x = demo_volume.patient_to_voxel(c)                     # the disc is not: its slice stays
    assert editor.layer.volume.array[z, y, x] == 1 and count(editor) > 0.8 * before
    editor.undo()
    assert count(editor) == before
    editor.apply_smoothing(mm=0.2)                                 # under a voxel: says so
    assert count(editor) == before and "under two voxels" in editor.status.text()


def test_scissors_drawn_with_the_mouse_cut_a_spill_through_all_slices_and_undo_restores(
        window, qtbot, editor, demo_series, demo_volume):
    c = brush_slices(editor, demo_series, demo_volume, (-1, 0, 1), 10.0)
    window.document.set_cursor(c)
    before = editor.layer.volume.array.copy()
    editor.set_tool("scissors")
    axial = window.grid.views["axial"]
    iren = window.grid.widgets["axial"]
    corners = [c + d for d in ([2.0, -15.0, 0.0], [15.0, -15.0, 0.0], [15.0, 15.0, 0.0], [2.0, 15.0, 0.0])]
    path = [corners[0] + t * (corners[1] - corners[0]) for t in np.linspace(0, 1, 6)]
    path += [corners[1] + t * (corners[2] - corners[1]) for t in np.linspace(0, 1, 6)[1:]]
    path += [corners[2] + t * (corners[3] - corners[2]) for t in np.linspace(0, 1, 6)[1:]]
    for i, p in enumerate(path):
        x, y = axial.patient_to_display(p)
        iren.SetEventInformation(int(round(x)), int(round(y)), 0, 0)
        iren.InvokeEvent("LeftButtonPressEvent" if i == 0 else "MouseMoveEvent")
    assert axial._sketch_actor.GetVisibility()                # the outline shows while drawn
    iren.InvokeEvent("LeftButtonReleaseEvent")
    assert not axial._sketch_actor.GetVisibility()
    after = editor.layer.volume.array
    mm = demo_volume.voxel_to_patient(np.argwhere(before == 1))
    lost = demo_volume.voxel_to_patient(np.argwhere((before == 1) & (after == 0)))
    assert len(lost) > 0 and (lost[:, 0] - c[0] > 1.0).all()  # only the part right of x + 2 mm (LPS x: left)
    slices = lambda a: set(np.argwhere(a)[:, 0].tolist())   # noqa: E731
    assert len(slices(before == 1)) == 3 and slices((before == 1) & (after == 0)) == slices(before == 1)   # every slice
    assert count(editor) == (before == 1).sum() - len(lost) and (mm[:, 0] - c[0] > 3.0).sum() <= len(lost)
    assert "scissors" in editor.status.text()
    editor.undo()
    assert np.array_equal(editor.layer.volume.array, before)
    editor.scissors_extent.setCurrentText("this slice")
    editor.cut("axial", corners)
    lost = np.argwhere((before == 1) & (editor.layer.volume.array == 0))
    assert set(lost[:, 0].tolist()) == {int(demo_volume.patient_to_voxel(c)[0])}


def test_unticking_a_segment_hides_it_in_2d_and_3d_and_editing_it_shows_it_again(
        window, qtbot, editor, demo_series, demo_volume):
    from vtkmodules.util import numpy_support

    a = brush_slices(editor, demo_series, demo_volume, (0,), 8.0)
    editor.add_segment("second")
    b = a + np.array([30.0, 0.0, 0.0])
    editor.paint_disc("axial", b)
    window.document.set_cursor(a)
    seg_a, seg_b = patch(window, "axial", a), patch(window, "axial", b)
    editor.set_segment_visible(1, False)
    editor.set_segment_visible(2, False)
    ct_a, ct_b = patch(window, "axial", a), patch(window, "axial", b)       # the CT alone
    edge = a + np.array([0.0, 8.0, 0.0])                      # on lesion 1's outline
    ct_edge = patch(window, "axial", edge, radius=1)
    assert np.abs(seg_a - ct_a).max() > 30 and np.abs(seg_b - ct_b).max() > 30
    editor.set_segment_visible(2, True)

    item = editor.segment_list.item(0)                         # "lesion 1" is unticked in the list
    assert item.text() == "lesion 1" and item.checkState() == Qt.Unchecked
    item.setCheckState(Qt.Checked)                             # ticking shows it
    assert editor.layer.hidden_labels == frozenset()
    assert np.allclose(patch(window, "axial", a), seg_a, atol=3)
    assert np.abs(patch(window, "axial", edge, radius=1) - ct_edge).max() > 30   # its outline drawn
    editor.segment_list.item(0).setCheckState(Qt.Unchecked)    # unticking hides it
    assert editor.layer.hidden_labels == frozenset({1})
    assert np.allclose(patch(window, "axial", a), ct_a, atol=3)          # hidden in 2D: fill
    assert np.allclose(patch(window, "axial", edge, radius=1), ct_edge, atol=3)   # and outline
    assert np.allclose(patch(window, "axial", b), seg_b, atol=3)         # the other still drawn
    _, actor = window.grid.views["3d"]._surfaces[editor.layer.id]
    actor.GetMapper().Update()
    cells = actor.GetMapper().GetInput().GetCellData().GetArray("BoundaryLabels")
    assert set(numpy_support.vtk_to_numpy(cells)[:, 0].astype(int).tolist()) == {2}   # hidden in 3D
    assert editor.layer.volume.array[tuple(demo_volume.patient_to_voxel(a))] == 1    # kept in the layer
    editor.select_segment(1)
    editor.paint_disc("axial", a + [0.0, 5.0, 0.0])            # editing it shows it again
    assert editor.layer.hidden_labels == frozenset() and editor.segment_list.item(0).checkState() == Qt.Checked


def test_number_keys_pick_the_tools_and_escape_navigates(window, qtbot, editor):
    from PySide6.QtWidgets import QApplication

    axial = window.grid.widgets["axial"]
    window.activateWindow()
    axial.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is not None, timeout=2000)
    for key, tool in ((Qt.Key_2, "brush"), (Qt.Key_3, "eraser"), (Qt.Key_4, "threshold"), (Qt.Key_5, "scissors")):
        qtbot.keyClick(axial, key)
        assert editor.tool == tool and editor.tool_combo.currentData() == tool
    window.measure_tool.set_active(True)
    assert editor.tool == "navigate"
    qtbot.keyClick(axial, Qt.Key_2)                       # a tool key turns the measure tool off
    assert editor.tool == "brush" and not window.measure_tool.active
    qtbot.keyClick(axial, Qt.Key_Escape)
    assert editor.tool == "navigate" and window.grid.views["axial"].tool is None
    n = len(editor.segments)
    qtbot.keyClick(axial, Qt.Key_N, Qt.ControlModifier)     # a new segment for the next lesion
    assert len(editor.segments) == n + 1 and editor.current == max(editor.segments)


def test_segments_kept_on_disk_come_back_after_a_crash_and_go_once_exported(
        window, qtbot, editor, demo_series, demo_volume, tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings

    from medviewer.io.recovery import find_recovery
    from medviewer.ui.annotations_ui import export_layer
    from medviewer.ui.main_window import MainWindow

    monkeypatch.setenv("MEDVIEWER_RECOVERY_DIR", str(tmp_path / "recovery"))
    brush_slices(editor, demo_series, demo_volume, (0, 1), 8.0)
    editor.rename_segment(1, "tumour")
    before = editor.layer.volume.array.copy()
    qtbot.waitUntil(lambda: find_recovery(demo_volume) is not None, timeout=10000)   # a moment after the edit
    # "the crash": a second window opens the same image, as after a restart
    other = MainWindow(settings=QSettings(str(tmp_path / "other.ini"), QSettings.IniFormat), quiet=True)
    qtbot.addWidget(other)
    other.set_volume(demo_volume)
    second = other.segment_editor
    qtbot.waitUntil(lambda: "Recover kept segments" in second.status.text(), timeout=5000)
    assert second.recover_action.isEnabled()
    kept = second.recover()
    assert [s.name for s in kept] == ["tumour"]
    assert np.array_equal(second.layer.volume.array, before)
    second.undo()                                          # recovering is one undoable edit
    assert not second.layer.volume.array.any()
    other.close()
    # exported: nothing left to recover
    export_layer(window, editor.layer, str(tmp_path / "done.nii.gz"), "nifti")
    assert find_recovery(demo_volume) is None


def test_a_segment_is_compared_with_the_loaded_reference_lesion_it_overlaps(window, qtbot, editor, demo_series,
                                                                             demo_volume):
    from medviewer.core.compare import compare_masks
    from medviewer.io import read_image

    editor.compare_with_reference()                           # nothing yet: says so
    assert editor.status.text().startswith("no segment to compare")
    truth = read_image(str(demo_series / "lesions.nii.gz")).array
    c = np.asarray(lesion(demo_series, 2)["center_mm"])
    editor.radius.setValue(6.0)
    editor.paint_disc("axial", c, tool="brush")
    assert editor.compare_with_reference() is None and "no reference" in editor.status.text()
    window.load_segmentation(str(demo_series / "lesions.nii.gz"))
    result = editor.compare_with_reference()
    value = truth[tuple(demo_volume.patient_to_voxel(c))]      # the lesion painted in: one of three
    expected = compare_masks(editor.layer.volume.array == 1, truth == value, demo_volume.spacing)
    assert result == expected and 0 < result.dice < 0.5
    assert f"Dice {result.dice:.3f}" in editor.status.text() and "HD95" in editor.status.text()


def test_recover_question_tells_discard_from_decide_later(window):
    """"Recover them?" offers Recover, Discard and Decide later (it offered Yes / Discard / No)."""
    from PySide6.QtWidgets import QMessageBox

    from medviewer.ui.segment_recovery import recovery_question

    box = recovery_question(window, "2 segment(s) of this image from 3 minutes ago were kept.")
    texts = [b.text().replace("&", "") for b in box.buttons()]
    assert sorted(texts) == ["Decide later", "Discard", "Recover"]
    assert box.defaultButton() is box.recover_button and box.escapeButton() is box.later_button
    assert box.buttonRole(box.discard_button) == QMessageBox.DestructiveRole
    assert "cannot be recovered" in box.discard_button.toolTip()
    assert "Recover them?" in box.text()


def test_a_bundle_engine_with_a_long_folder_does_not_widen_the_editor(window, editor):
    """A DeepEdit or VISTA3D bundle is offered as a click engine by its folder: a long path made
    the engine box, and with it the segment editor's dock group, as wide as the path (the views
    313 pixels wide for 380). The box keeps its width; the path is its item's tooltip."""
    from PySide6.QtCore import Qt

    editor.set_tool("click")
    before = editor.minimumSizeHint().width()
    folder = "/home/someone/medviewer/models/" + "a-rather-long-folder-name-" * 6 + "vista3d"
    editor.add_bundle_engine(folder)
    assert editor.minimumSizeHint().width() <= before + 10 < 300
    assert editor.engine_combo.currentText() == folder  # the engine run is still the folder
    index = editor.engine_combo.currentIndex()
    assert editor.engine_combo.itemData(index, Qt.ItemDataRole.ToolTipRole) == folder


def test_the_editor_shows_the_options_of_the_tool_in_use_only(window, editor):
    """As Slicer's Segment Editor: the brush's radius with the brush, the threshold range only
    with the threshold brush, the engine only with the click tool, an effect's Apply button with
    that effect (and the mouse navigates meanwhile)."""
    def shown(widget):
        return not widget.isHidden() and editor.options.currentWidget().isAncestorOf(widget)

    editor.dock.show()
    editor.set_tool("brush")
    assert shown(editor.radius) and not shown(editor.engine_combo) and not shown(editor.island_ml)
    assert not editor.options.currentWidget().form.isRowVisible(editor.hu_min)
    editor.set_tool("threshold")
    assert editor.options.currentWidget().form.isRowVisible(editor.hu_min)
    editor.set_tool("click")
    assert shown(editor.engine_combo) and not shown(editor.radius)
    editor.set_tool("margin")
    assert shown(editor.margin_mm) and not shown(editor.engine_combo)
    assert all(v.tool is not editor for n, v in window.grid.views.items() if n != "3d")   # the mouse navigates
    assert editor.tool_combo.currentData() == "margin"
