"""The measure tool under Xvfb: rulers and ellipses drawn with real mouse events through the VTK
interactor, their captions and pixels, moving an end or an ellipse, the segment editor's tools,
export (CSV, DICOM SR) and loading back."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PySide6.QtCore import Qt

from medviewer.core.document import RulerLayer
from medviewer.render.vtk_util import capture

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120)]


@pytest.fixture
def tool(window, demo_volume):
    window.resize(900, 700)
    window.set_volume(demo_volume)
    window.measure_tool.set_active(True)
    return window.measure_tool


def drag(window, view_name, a, b, steps=4):
    """Left press at patient point ``a``, moves, release at ``b``, as the mouse does (through the
    view's VTK interactor; display y from the bottom)."""
    view = window.grid.views[view_name]
    iren = window.grid.widgets[view_name]
    (x0, y0), (x1, y1) = view.patient_to_display(a), view.patient_to_display(b)
    iren.SetEventInformation(int(round(x0)), int(round(y0)), 0, 0)
    iren.InvokeEvent("LeftButtonPressEvent")
    for t in np.linspace(0, 1, steps + 1)[1:]:
        iren.SetEventInformation(int(round(x0 + t * (x1 - x0))), int(round(y0 + t * (y1 - y0))), 0, 0)
        iren.InvokeEvent("MouseMoveEvent")
    iren.InvokeEvent("LeftButtonReleaseEvent")


def yellow_at(view, point) -> bool:
    image = capture(view.render_window).astype(int)
    x, y = view.patient_to_display(point)
    row, col = view.render_window.GetSize()[1] - 1 - int(round(y)), int(round(x))
    near = image[row - 1:row + 2, col - 1:col + 2].reshape(-1, 3)
    return bool(((near[:, 0] > 200) & (near[:, 1] > 170) & (near[:, 2] < 80)).any())


def test_a_drag_draws_a_ruler_with_its_length_on_its_slice_only(window, tool, demo_volume):
    c = window.document.cursor
    cursor_before = c.copy()
    a, b = c + [-30.0, -10.0, 0.0], c + [20.0, 25.0, 0.0]
    drag(window, "axial", a, b)
    layer = tool.layer
    assert isinstance(layer, RulerLayer) and layer in window.document.layers and layer.name == "Measurements"
    (ruler,) = layer.rulers
    # the ends land where the mouse was, to within a screen pixel
    px = demo_volume.spacing[0] * 2
    assert np.allclose(ruler.start, a, atol=px) and np.allclose(ruler.end, b, atol=px)
    length = np.linalg.norm(np.subtract(ruler.end, ruler.start))
    assert abs(length - np.linalg.norm(b - a)) < 2 * px
    assert ruler.caption == f"{length:.1f} mm"
    assert np.allclose(window.document.cursor, cursor_before)   # the tool took the button, not the crosshair
    axial = window.grid.views["axial"]
    assert [text for text, _ in axial.box_captions(layer)] == [ruler.caption]
    assert yellow_at(axial, 0.7 * np.asarray(ruler.start) + 0.3 * np.asarray(ruler.end))
    assert window.grid.views["coronal"].box_captions(layer) == []
    assert ruler.caption in window.status_label.text()
    # another slice does not show it
    window.document.set_cursor(c + [0.0, 0.0, 3 * demo_volume.spacing[2]])
    assert axial.box_captions(layer) == []


def test_pressing_near_an_end_moves_it_and_a_click_draws_nothing(window, qtbot, tool):
    c = window.document.cursor
    a, b = c + [-30.0, 0.0, 0.0], c + [10.0, 0.0, 0.0]
    drag(window, "axial", a, b)
    (first,) = tool.rulers
    drag(window, "axial", first.end, c + [10.0, 30.0, 0.0])      # grab the end, move it
    (moved,) = tool.rulers
    assert np.allclose(moved.start, first.start)
    assert np.linalg.norm(np.subtract(moved.end, c + [10.0, 30.0, 0.0])) < 2.0
    assert moved.caption == f"{np.linalg.norm(np.subtract(moved.end, moved.start)):.1f} mm" != first.caption
    drag(window, "axial", c + [40.0, 40.0, 0.0], c + [40.0, 40.0, 0.0])   # a click: nothing
    assert len(tool.rulers) == 1
    drag(window, "coronal", c + [-20.0, 0.0, -20.0], c + [20.0, 0.0, 20.0])   # another view, another plane
    assert len(tool.rulers) == 2
    coronal = tool.rulers[1]
    drag(window, "axial", moved.end, np.add(moved.end, [0.0, 5.0, 0.0]))   # moving the first selects it
    qtbot.keyClick(window.grid.widgets["axial"], Qt.Key_Delete)     # Delete removes it
    assert tool.rulers == [coronal] and "Deleted" in window.status_label.text()
    qtbot.keyClick(window.grid.widgets["axial"], Qt.Key_Backspace)  # nothing selected now
    assert tool.rulers == [coronal]
    drag(window, "axial", a, b)
    tool.delete_last()
    assert tool.rulers == [coronal]
    tool.clear()
    assert tool.layer is None and not window.document.layers_of(RulerLayer)


def test_the_segment_editors_tools_and_the_length_tool_take_turns(window, tool):
    editor = window.segment_editor
    views = [v for n, v in window.grid.views.items() if n != "3d"]
    assert editor.tool == "navigate" and all(v.tool is tool for v in views)
    editor.set_tool("brush")
    assert not tool.active and all(v.tool is editor for v in views)
    tool.set_active(True)
    assert editor.tool == "navigate" and all(v.tool is tool for v in views)
    tool.set_active(False)
    assert all(v.tool is None for v in views)
    # a new image keeps the tool on
    tool.set_active(True)
    window.set_volume(window.document.image.volume)
    assert all(v.tool is tool for v in views)


def test_the_tool_exports_its_lengths_and_knows_when_they_are_exported(window, tool, tmp_path):
    """The format itself is tested in tests/export/test_measurements.py."""
    c = window.document.cursor
    drag(window, "axial", c + [-30.0, -10.0, 0.0], c + [20.0, 25.0, 0.0])
    assert tool.has_unexported() and window.confirm_discard("closing")   # a quiet window does not ask
    rows = list(csv.DictReader(open(tool.export(str(tmp_path / "lengths.csv")))))
    assert [(r["measurement"], r["plane"]) for r in rows] == [("1", "axial")]
    assert float(rows[0]["length_mm"]) == pytest.approx(float(tool.rulers[0].caption.split()[0]), abs=0.05)
    assert not tool.has_unexported()
    drag(window, "axial", c + [30.0, 30.0, 0.0], c + [40.0, 40.0, 0.0])
    assert tool.has_unexported()


def test_lengths_saved_as_sr_load_back_onto_the_series(window, tool, tmp_path):
    c = window.document.cursor
    drag(window, "axial", c + [-30.0, -10.0, 0.0], c + [20.0, 25.0, 0.0])
    drag(window, "coronal", c + [-20.0, 0.0, -15.0], c + [25.0, 0.0, 20.0])
    drawn = tool.rulers
    path = tool.export(str(tmp_path / "lengths.dcm"))
    tool.clear()
    loaded = tool.load(path).rulers
    assert len(loaded) == 2 and tool.rulers == loaded and not tool.has_unexported()
    for got, want in zip(loaded, drawn):
        assert np.allclose([got.start, got.end], [want.start, want.end], atol=1e-3)
        assert float(got.caption.split()[0]) == pytest.approx(float(want.caption.split()[0]), abs=0.11)
    assert "Loaded 2 length(s)" in window.status_label.text()
    axial = window.grid.views["axial"]
    assert [text for text, _ in axial.box_captions(tool.layer)] == [loaded[0].caption]


def test_ctrl_z_undoes_length_changes_while_the_tool_is_on_and_segment_edits_otherwise(window, qtbot, tool):
    from PySide6.QtWidgets import QApplication

    c = window.document.cursor
    axial = window.grid.widgets["axial"]
    window.activateWindow()      # shortcuts reach the active window (Xvfb has no window manager)
    axial.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is not None, timeout=2000)
    drag(window, "axial", c + [-30.0, 0.0, 0.0], c + [10.0, 0.0, 0.0])
    drag(window, "axial", c + [-30.0, 20.0, 0.0], c + [10.0, 20.0, 0.0])
    first, second = tool.rulers
    drag(window, "axial", c + [40.0, 40.0, 0.0], c + [40.0, 40.0, 0.0])   # a click: no change to undo
    drag(window, "axial", second.end, np.add(second.end, [0.0, 10.0, 0.0]))   # move an end
    moved = tool.rulers[1]
    qtbot.keyClick(axial, Qt.Key_Z, Qt.ControlModifier)
    assert tool.rulers == [first, second]                  # the move undone
    qtbot.keyClick(axial, Qt.Key_Z, Qt.ControlModifier)
    assert tool.rulers == [first]                          # then the second length
    qtbot.keyClick(axial, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    qtbot.keyClick(axial, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    assert tool.rulers == [first, moved]                   # and redone
    tool.clear()
    qtbot.keyClick(axial, Qt.Key_Z, Qt.ControlModifier)
    assert tool.rulers == [first, moved]                   # clearing is undone too
    # with the tool off, Ctrl+Z is the segments' again
    editor = window.segment_editor
    editor.paint_disc("axial", c, tool="brush")
    assert not tool.active and editor.layer.volume.array.any()
    qtbot.keyClick(axial, Qt.Key_Z, Qt.ControlModifier)
    assert not editor.layer.volume.array.any() and tool.rulers == [first, moved]
    # a new image starts a new history
    tool.set_active(True)
    window.set_volume(window.document.image.volume)
    assert not tool.can_undo() and tool.rulers == []


def test_an_ellipse_shows_its_area_and_hu_and_can_be_moved_resized_and_deleted(window, qtbot, tool, demo_volume):
    from medviewer.core.roi_stats import ellipse_caption, ellipse_stats

    tool.set_active(True, "ellipse")
    assert tool.mode == "ellipse" and not tool.actions["length"].isChecked()
    c = window.document.cursor
    drag(window, "axial", c + [-20.0, -10.0, 0.0], c + [20.0, 14.0, 0.0])   # corner to corner
    (e,) = tool.ellipses
    assert tool.rulers == []
    px = demo_volume.spacing[0] * 2
    assert np.allclose(e.center, c + [0.0, 2.0, 0.0], atol=px)
    assert sorted(np.abs([np.linalg.norm(e.axis_a), np.linalg.norm(e.axis_b)])) == pytest.approx([12.0, 20.0], abs=px)
    stats = ellipse_stats(demo_volume, e)
    assert e.caption == ellipse_caption(stats) and stats.pixel_count > 100 and "HU" in e.caption
    # the body of the demo phantom around the cursor: soft tissue, not air
    assert -200 < stats.mean < 300
    axial = window.grid.views["axial"]
    assert [text for text, _ in axial.box_captions(tool.layer)] == [e.caption]
    assert yellow_at(axial, np.add(e.center, e.axis_a)) and not yellow_at(axial, e.center)
    assert "Ellipse 1:" in window.status_label.text()
    # inside: the whole ellipse moves along the slice
    drag(window, "axial", e.center, np.add(e.center, [10.0, -5.0, 0.0]))
    (moved,) = tool.ellipses
    assert np.allclose(moved.center, np.add(e.center, [10.0, -5.0, 0.0]), atol=px)
    assert np.allclose(moved.axis_a, e.axis_a) and np.allclose(moved.axis_b, e.axis_b)
    drag(window, "axial", c + [60.0, 60.0, 0.0], c + [60.0, 60.0, 0.0])   # a click draws nothing
    assert tool.ellipses == [moved]
    # in a view that cuts across it, a press inside its outline draws a new ellipse there
    drag(window, "coronal", np.add(moved.center, [0.0, 0.0, -6.0]), np.add(moved.center, [8.0, 0.0, 6.0]))
    assert tool.ellipses[0] == moved and len(tool.ellipses) == 2
    tool.delete_last()
    assert tool.ellipses == [moved]
    # an axis' end: that axis grows, its opposite end stays, the other axis too
    grab = np.add(moved.center, moved.axis_a)
    far = np.subtract(moved.center, moved.axis_a)
    drag(window, "axial", grab, grab + 8.0 * np.asarray(moved.axis_a) / np.linalg.norm(moved.axis_a))
    (resized,) = tool.ellipses
    assert np.linalg.norm(resized.axis_a) == pytest.approx(np.linalg.norm(moved.axis_a) + 4.0, abs=px)
    assert np.allclose(np.subtract(resized.center, resized.axis_a), far, atol=px) or \
        np.allclose(np.add(resized.center, resized.axis_a), far, atol=px)
    assert np.allclose(resized.axis_b, moved.axis_b)
    assert resized.caption == ellipse_caption(ellipse_stats(demo_volume, resized)) != moved.caption
    # Delete removes the ellipse last drawn or moved; Ctrl+Z brings it back; another slice does not show it
    window.activateWindow()
    window.grid.widgets["axial"].setFocus()
    qtbot.keyClick(window.grid.widgets["axial"], Qt.Key_Delete)
    assert tool.ellipses == [] and tool.layer is None and "Deleted the ellipse" in window.status_label.text()
    window.undo()
    assert tool.ellipses == [resized]
    window.document.set_cursor(c + [0.0, 0.0, 3 * demo_volume.spacing[2]])
    assert axial.box_captions(tool.layer) == []


def test_ellipses_and_lengths_export_together_and_load_back(window, tool, tmp_path, demo_volume):
    c = window.document.cursor
    drag(window, "axial", c + [-30.0, -10.0, 0.0], c + [20.0, 25.0, 0.0])
    tool.set_active(True, "ellipse")
    drag(window, "coronal", c + [-15.0, 0.0, -10.0], c + [15.0, 0.0, 12.0])
    (e,) = tool.ellipses
    assert abs(demo_volume.patient_to_index(e.center)[1] - round(demo_volume.patient_to_index(e.center)[1])) < 1e-6
    rows = list(csv.DictReader(open(tool.export(str(tmp_path / "m.csv")))))
    assert [(r["kind"], r["plane"]) for r in rows] == [("length", "axial"), ("ellipse", "coronal")]
    assert not tool.has_unexported()
    path = tool.export(str(tmp_path / "m.dcm"))
    tool.clear()
    read = tool.load(path)
    assert len(read.rulers) == 1 and len(tool.ellipses) == 1 and not tool.has_unexported()
    assert np.allclose(tool.ellipses[0].ends, e.ends, atol=1e-3) and tool.ellipses[0].caption == e.caption
    assert "Loaded 1 length(s), 1 ellipse(s)" in window.status_label.text()


def test_an_ellipse_on_a_gantry_tilted_ct_is_drawn_on_the_view_and_measured_across_its_slices(window):
    """The 2D views of a tilted grid cut across its slices: the ellipse stays in the view's plane,
    shows there, and takes the voxels nearest that plane."""
    from medviewer.core.roi_stats import ellipse_stats
    from medviewer.core.volume import Volume

    t = np.radians(20.0)
    tilt = np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])
    z, y, x = np.mgrid[:40, :128, :128]
    array = np.where((x - 64) ** 2 + (y - 64) ** 2 < 40 ** 2, 40, -1000).astype(np.int16)
    array[:, 50:80, 50:80] = 100
    volume = Volume(array, spacing=(1.0, 1.0, 3.0), direction=tilt, modality="CT")
    window.resize(900, 700)
    window.set_volume(volume)
    c = volume.index_to_patient([64, 64, 20])
    window.document.set_cursor(c)
    window.measure_tool.set_active(True, "ellipse")
    drag(window, "axial", c + [-10.0, -10.0, 0.0], c + [10.0, 10.0, 0.0])
    (e,) = window.measure_tool.ellipses
    stats = ellipse_stats(volume, e)
    assert stats.plane == "oblique" and stats.pixel_count > 100
    assert (stats.mean, stats.minimum, stats.maximum) == (100.0, 100.0, 100.0)   # inside the 100 HU block
    axial = window.grid.views["axial"]
    assert [text for text, _ in axial.box_captions(window.measure_tool.layer)] == [e.caption]
    assert yellow_at(axial, np.add(e.center, e.axis_a))


def test_a_caption_near_the_views_edge_stays_inside_the_view(window, tool, demo_volume):
    tool.set_active(True, "ellipse")
    axial = window.grid.views["axial"]
    axial.zoom(2.5)   # the image fills the view
    w, h = axial.render_window.GetSize()
    # an ellipse whose right end is 10 px from the view's right edge
    edge = np.asarray(axial.display_to_patient(w - 10, h / 2))
    centre = axial.display_to_patient(w - 40, h / 2)
    drag(window, "axial", np.add(centre, [0.0, -8.0, 0.0]) - (edge - centre), np.add(edge, [0.0, 8.0, 0.0]))
    (e,) = tool.ellipses
    assert "\n" in e.caption
    axial.render()
    (text,) = [t for t in axial._boxes[tool.layer.id][3] if t.GetVisibility()]
    box = [0.0] * 4
    text.GetBoundingBox(axial.renderer, box)          # about the caption's position
    axial.renderer.SetWorldPoint(*text.GetPositionCoordinate().GetValue(), 1.0)
    axial.renderer.WorldToDisplay()
    x = axial.renderer.GetDisplayPoint()[0]
    assert box[1] - box[0] > 60                       # a wide caption
    assert 0 <= x + box[0] and x + box[1] <= w        # all of it inside the view
    (caption, anchor), = axial.box_captions(tool.layer)
    assert anchor[0] != pytest.approx(e.center[0], abs=1.0)   # moved off the ellipse's middle to fit


def test_a_bidirectional_draws_its_long_axis_and_a_short_axis_across_that_can_be_dragged(window, qtbot, tool,
                                                                                          demo_volume, tmp_path):
    tool.set_active(True, "bidirectional")
    assert tool.mode == "bidirectional" and not tool.actions["ellipse"].isChecked()
    c = window.document.cursor
    drag(window, "axial", c + [-20.0, 10.0, 0.0], c + [40.0, 10.0, 0.0])   # off the crosshair's lines
    (b,) = tool.bidirectionals
    px = demo_volume.spacing[0] * 2
    assert b.long_mm == pytest.approx(60.0, abs=px) and b.short_mm == pytest.approx(b.long_mm / 2)
    e = b.ends
    assert abs(np.dot(e[1] - e[0], e[3] - e[2])) < 1e-6 and np.allclose((e[2] + e[3]) / 2, (e[0] + e[1]) / 2)
    assert b.caption == f"L {b.long_mm:.1f} mm\nS {b.short_mm:.1f} mm"
    axial = window.grid.views["axial"]
    assert [text for text, _ in axial.box_captions(tool.layer)] == [b.caption]
    assert yellow_at(axial, 0.8 * e[0] + 0.2 * e[1]) and yellow_at(axial, 0.8 * e[2] + 0.2 * e[3])
    assert "Bidirectional 1: L" in window.status_label.text()
    # drag a short axis end outwards: it slides along its line, the other end and the long axis stay
    end = e[3]
    outward = (e[3] - e[2]) / np.linalg.norm(e[3] - e[2])
    drag(window, "axial", end, end + 10.0 * outward + np.array([2.0, 0.0, 0.0]))   # a little off its line
    (moved,) = tool.bidirectionals
    assert moved.short_mm == pytest.approx(b.short_mm + 10.0, abs=px)
    assert np.allclose(moved.ends[:3], e[:3]) and moved.caption.endswith(f"S {moved.short_mm:.1f} mm")
    # a long axis end: the short axis follows, still perpendicular
    drag(window, "axial", e[1], e[1] + [0.0, 20.0, 0.0])
    (turned,) = tool.bidirectionals
    t = turned.ends
    assert abs(np.dot(t[1] - t[0], t[3] - t[2])) < 1e-6 and turned.short_mm == pytest.approx(moved.short_mm)
    # with lengths and ellipses, exported and loaded back
    rows = list(csv.DictReader(open(tool.export(str(tmp_path / "b.csv")))))
    assert [r["kind"] for r in rows] == ["bidirectional"]
    path = tool.export(str(tmp_path / "b.dcm"))
    tool.clear()
    tool.load(path)
    (back,) = tool.bidirectionals
    assert np.allclose(back.ends, t, atol=1e-3) and back.caption == turned.caption and not tool.has_unexported()
    window.activateWindow()
    window.grid.widgets["axial"].setFocus()
    drag(window, "axial", back.ends[0], back.ends[0] + [0.0, -3.0, 0.0])   # select it
    qtbot.keyClick(window.grid.widgets["axial"], Qt.Key_Delete)
    assert tool.bidirectionals == [] and "Deleted the bidirectional" in window.status_label.text()


def test_the_measurements_dock_lists_them_and_goes_to_each(window, tool, demo_volume, tmp_path):
    panel, dock = window.measurements, window.measurements_dock
    assert panel.table.rowCount() == 0 and not panel.empty.isHidden()
    c = np.asarray(window.document.cursor)
    drag(window, "axial", c + [-30.0, -10.0, 0.0], c + [20.0, 25.0, 0.0])
    tool.set_active(True, "ellipse")
    assert dock.isVisible()   # turning a measuring tool on shows the list
    other_slice = c + [0.0, 0.0, 4 * demo_volume.spacing[2]]
    window.document.set_cursor(other_slice)
    drag(window, "axial", other_slice + [-10.0, -10.0, 0.0], other_slice + [10.0, 12.0, 0.0])
    tool.set_active(True, "bidirectional")
    drag(window, "coronal", other_slice + [-20.0, 0.0, -10.0], other_slice + [20.0, 0.0, 10.0])
    table = panel.table
    cells = [[table.item(r, col).text() for col in range(4)] for r in range(table.rowCount())]
    assert [row[:2] for row in cells] == [["1", "Length"], ["2", "Bidirectional"], ["3", "Ellipse"]]
    assert cells[0][2] == tool.rulers[0].caption and cells[1][2].startswith("L ") and "mean" in cells[2][2]
    k = int(round(demo_volume.patient_to_index(c)[2]))
    assert cells[0][3] == f"axial {k + 1}/{demo_volume.shape[0]}" and cells[1][3].startswith("coronal ")
    # double-click the length: the crosshair goes to its middle (its slice), and it is selected
    panel.go_to(0)
    ruler = tool.rulers[0]
    assert np.allclose(window.document.cursor, (np.asarray(ruler.start) + np.asarray(ruler.end)) / 2)
    assert window.grid.views["axial"].box_captions(tool.layer)[0][0] == ruler.caption
    assert tool.selected == ("length", 0) and table.currentRow() == 0
    cross = tool.bidirectionals[0]
    window.document.set_cursor(cross.long_start)   # the coronal view shows its slice again
    drag(window, "coronal", cross.long_end, np.add(cross.long_end, [0.0, 0.0, 3.0]))
    assert tool.selected == ("bidirectional", 0) and table.currentRow() == 1   # moved in a view: selected here
    table.selectRow(2)
    assert tool.selected == ("ellipse", 0)   # picked in the list: the Delete key would remove it too
    panel.delete_current()
    assert tool.ellipses == [] and table.rowCount() == 2
    path = tool.export(str(tmp_path / "m.dcm"))
    tool.clear()
    assert table.rowCount() == 0 and not panel.empty.isHidden()
    tool.load(path)   # into no layer: the list fills
    assert table.rowCount() == 2
    window.document.remove_layer(tool.layer)   # from the Layers panel
    assert table.rowCount() == 0


def test_a_measurement_is_labelled_shown_exported_and_read_back(window, tool, demo_volume, tmp_path, monkeypatch):
    """Label... in the Measurements dock names the picked measurement: the label sits above its
    values in the view and stands for its kind in the list, survives moving it, is undone by Ctrl+Z,
    and goes into the CSV and the SR (as its comment, OHIF's label), from which Load reads it."""
    import csv

    from PySide6.QtWidgets import QInputDialog

    panel = window.measurements
    c = np.asarray(window.document.cursor)
    drag(window, "axial", c + [-30.0, -10.0, 0.0], c + [20.0, 25.0, 0.0])
    panel.table.selectRow(0)
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("target lesion 1", True))
    panel.choose_label()
    (ruler,) = tool.rulers
    assert ruler.label == "target lesion 1" and panel.table.item(0, 1).text() == "target lesion 1"   # for "Length"
    assert panel.table.item(0, 1).toolTip() == "Length: target lesion 1"
    axial = window.grid.views["axial"]
    assert axial.box_captions(tool.layer)[0][0] == "target lesion 1\n" + ruler.caption
    drag(window, "axial", ruler.end, np.add(ruler.end, [5.0, 0.0, 0.0]))   # moved: still labelled
    assert tool.rulers[0].label == "target lesion 1" and tool.rulers[0].caption != ruler.caption
    tool.undo()
    tool.undo()
    assert tool.rulers[0].label == ""   # the label was a change like any other
    tool.redo()
    rows = list(csv.DictReader(open(tool.export(str(tmp_path / "m.csv")))))
    assert rows[0]["label"] == "target lesion 1"
    tool.export(str(tmp_path / "m.dcm"))
    tool.clear()
    tool.load(str(tmp_path / "m.dcm"))
    assert [r.label for r in tool.rulers] == ["target lesion 1"]


def test_measurements_show_in_the_3d_view_above_the_volume_with_their_captions(window, qtbot, tool, demo_volume):
    """Drawn in 2D, a ruler, a bidirectional and an ellipse appear in the 3D view too, in the
    measurements' colour over the rendered volume (on a layer above it: inside the body they
    would vanish behind it), each caption (label and values) at its middle; a deleted one goes."""
    from medviewer.core.document import Bidirectional

    view3d = window.grid.views["3d"]
    window.apply_volume_preset("CT soft tissue")   # an opaque body in front of the measurements

    def yellow_in_3d(point) -> bool:
        renderer = view3d.renderer
        renderer.SetWorldPoint(*point, 1.0)
        renderer.WorldToDisplay()
        x, y, _ = renderer.GetDisplayPoint()
        image = capture(view3d.render_window).astype(int)
        row, col = view3d.render_window.GetSize()[1] - 1 - int(round(y)), int(round(x))
        near = image[row - 2:row + 3, col - 2:col + 3].reshape(-1, 3)
        return bool(((near[:, 0] > 200) & (near[:, 1] > 170) & (near[:, 2] < 80)).any())

    c = np.asarray(window.document.cursor)
    a, b = c + [-40.0, 0.0, 0.0], c + [30.0, 0.0, 0.0]   # across the body, seen from the front
    middle = (a + b) / 2 + [-10.0, 0.0, 0.0]
    assert not yellow_in_3d(middle)
    drag(window, "axial", a, b)
    (ruler,) = tool.rulers
    assert view3d.box_captions(tool.layer) == [(ruler.caption, tuple((np.add(ruler.start, ruler.end)) / 2))]
    assert yellow_in_3d(middle)
    layer = tool.layer
    window.document.update_layer(layer, bidirectionals=[Bidirectional.across(c + [-30.0, 0.0, 30.0], c + [30.0, 0.0, 30.0],
                                                                               (0.0, 0.0, 1.0))])
    assert yellow_in_3d(c + [-15.0, 0.0, 30.0])
    drag(window, "axial", ruler.end, np.add(ruler.end, [0.0, 2.0, 0.0]))  # select it, then delete it
    qtbot.keyClick(window.grid.widgets["axial"], Qt.Key_Delete)
    assert not tool.rulers and not yellow_in_3d(middle)
