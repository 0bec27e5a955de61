"""The length tool: distances measured on the 2D slices, as OHIF's Length tool and Slicer's line.

While it is on (Measure > Length, Ctrl+L, or the toolbar), the left button of a 2D view draws a
ruler: press at one end, drag, release at the other; its caption is its length in mm. Pressing
near an end of a ruler on the slice shown moves that end instead. A press without a drag draws
nothing. Delete (or Backspace) in a 2D view removes the ruler last drawn or moved. The rulers
live in a "Measurements" :class:`~medviewer.core.document.RulerLayer` (the Layers panel shows,
hides and removes it); the Measure menu deletes the last one, clears them, exports them as CSV or as a DICOM SR measurement report (:mod:`medviewer.export.lengths`), and
loads the lengths of such a report, ours or OHIF's (:mod:`medviewer.io.lengths_sr`).

The segment editor's tools take the same button: choosing one of them turns this tool off, and
turning this tool on sets the editor to Navigate.
"""

from __future__ import annotations

import os

import numpy as np
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox

from medviewer.core.document import ImageLayer, Ruler, RulerLayer
from medviewer.core.errors import MedviewerError

LAYER_NAME = "Measurements"
PICK_PX = 8.0     # a press this near (screen pixels) to a ruler's end moves that end
MIN_PX = 3.0      # a drag shorter than this is a click, not a ruler


def caption(start, end) -> str:
    return f"{float(np.linalg.norm(np.subtract(end, start))):.1f} mm"


class LengthTool:
    """Draws and edits the rulers of the "Measurements" layer; the 2D views call press/drag/release."""

    def __init__(self, window) -> None:
        self.window = window
        self.document = window.document
        self.layer: RulerLayer | None = None
        self.exported: tuple = ()      # the rulers as last exported (nothing to lose when unchanged)
        self._edit: tuple | None = None   # (view, ruler index, end 0/1, press position) while dragging
        self.selected: int | None = None   # the ruler last drawn or moved: Delete removes it
        self._undo: list[tuple[Ruler, ...]] = []   # the rulers before each change, for Ctrl+Z
        self._redo: list[tuple[Ruler, ...]] = []
        self._removing = False
        self._switching = False
        self.action = QAction("&Length", window)
        self.action.setCheckable(True)
        self.action.setShortcut(QKeySequence("Ctrl+L"))
        self.action.setStatusTip("Measure a distance: drag from one end to the other in a 2D view")
        self.action.toggled.connect(self._toggled)
        self.document.events.connect("layer_removed", self._on_layer_removed)
        self.document.events.connect("layer_added", self._on_layer_added)
        window.segment_editor.tool_changed.connect(self._editor_tool_changed)

    def install(self, window) -> None:
        """A Measure menu, and the tool's button on the view toolbar."""
        menu = window.menuBar().addMenu("&Measure")
        menu.addAction(self.action)
        menu.addSeparator()
        menu.addAction("Delete the last length", self.delete_last)
        menu.addAction("Delete the selected length (Delete in a 2D view)", self.delete_selected)
        menu.addAction("Clear lengths", self.clear)
        menu.addAction("Export lengths...", self.choose_export)
        menu.addAction("Load lengths (DICOM SR)...", self.choose_load)
        toolbar = getattr(window, "view_toolbar", None)
        if toolbar is not None:
            toolbar.addSeparator()
            toolbar.addAction(self.action)

    # ---- on and off -----------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.action.isChecked()

    def set_active(self, on: bool) -> None:
        self.action.setChecked(on)

    def _toggled(self, on: bool) -> None:
        if on:
            self._switching = True
            try:
                self.window.segment_editor.set_tool("navigate")
            finally:
                self._switching = False
        for view in self._slice_views():
            if on:
                view.tool = self
            elif view.tool is self:
                view.tool = None
        self._edit = None
        if on:
            self.window.status_label.setText("Length: drag from one end to the other in a 2D view")

    def _editor_tool_changed(self, _tool: str) -> None:
        if not self._switching and self.active:
            self.set_active(False)

    def _slice_views(self):
        return [v for n, v in self.window.grid.views.items() if n != "3d"]

    # ---- the rulers ---------------------------------------------------------------------------
    @property
    def rulers(self) -> list[Ruler]:
        return list(self.layer.rulers) if self.layer is not None else []

    def _set_rulers(self, rulers: list[Ruler]) -> None:
        if self.layer is None or self.layer not in self.document.layers:
            if not rulers or self.document.image is None:
                self.layer = None
                return
            self.layer = self.document.add_layer(RulerLayer(name=LAYER_NAME, rulers=rulers))
        elif rulers:
            self.document.update_layer(self.layer, rulers=rulers)
        else:
            layer, self.layer = self.layer, None
            self._removing = True
            try:
                self.document.remove_layer(layer)
            finally:
                self._removing = False

    # ---- undo ---------------------------------------------------------------------------------
    def _checkpoint(self) -> None:
        """Remember the rulers before a change (Ctrl+Z goes back to them while the tool is on)."""
        self._undo.append(tuple(self.rulers))
        self._redo.clear()

    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> None:
        if self._undo:
            self._redo.append(tuple(self.rulers))
            self._restore(self._undo.pop(), "Undid a length change")

    def redo(self) -> None:
        if self._redo:
            self._undo.append(tuple(self.rulers))
            self._restore(self._redo.pop(), "Redid a length change")

    def _restore(self, rulers, message: str) -> None:
        self.selected = None
        self._set_rulers(list(rulers))
        self.window.status_label.setText(f"{message} ({len(rulers)} length(s))")

    def add(self, start, end) -> Ruler:
        """A ruler from ``start`` to ``end`` (LPS mm, on one slice), as if drawn."""
        ruler = Ruler(start, end, caption(start, end))
        self._checkpoint()
        self._set_rulers(self.rulers + [ruler])
        return ruler

    def delete_last(self) -> None:
        if self.rulers:
            self._checkpoint()
            self._set_rulers(self.rulers[:-1])
        self.selected = None

    def delete_selected(self) -> None:
        """Remove the ruler last drawn or moved (Delete or Backspace in a 2D view)."""
        rulers = self.rulers
        if self.selected is None or not 0 <= self.selected < len(rulers):
            self.window.status_label.setText("Length: no length selected (draw one, or drag one of its ends)")
            return
        self._checkpoint()
        removed = rulers.pop(self.selected)
        self.selected = None
        self._set_rulers(rulers)
        self.window.status_label.setText(f"Deleted the length of {removed.caption}")

    def clear(self) -> None:
        if self.rulers:
            self._checkpoint()
            self._set_rulers([])
        self.selected = None

    def _on_layer_removed(self, layer) -> None:
        if layer is self.layer:
            self.layer = None
            self._edit = None
            self.selected = None
            if not self._removing:   # removed from the Layers panel, or with the image: history goes too
                self._forget_history()

    def _on_layer_added(self, layer) -> None:
        if isinstance(layer, ImageLayer) and layer is self.document.image:   # a new image: new lengths
            self._forget_history()

    def _forget_history(self) -> None:
        self._undo.clear()
        self._redo.clear()

    def has_unexported(self) -> bool:
        return bool(self.rulers) and tuple(self.rulers) != self.exported

    # ---- mouse (SliceView calls these; display pixels, y from the bottom) -----------------------
    def press(self, view, x, y, shift: bool = False) -> bool:
        image = self.document.image
        point = view.display_to_patient(x, y)
        if image is None or not image.volume.contains_point(point):
            return True   # swallowed: no crosshair jump while the tool is on
        rulers = self.rulers
        self._checkpoint()   # taken back on release if the press changed nothing
        near = self._end_near(view, x, y, rulers)
        if near is None:
            rulers.append(Ruler(point, point))
            near = (len(rulers) - 1, 1)
            self._set_rulers(rulers)
        self._edit = (view, *near, (x, y))
        return True

    def drag(self, view, x, y) -> None:
        if self._edit is None or view is not self._edit[0] or self.layer is None:
            return
        _, index, end, _ = self._edit
        rulers = self.rulers
        if index >= len(rulers):
            return
        old = rulers[index]
        point = tuple(view.display_to_patient(x, y))
        start, stop = (point, old.end) if end == 0 else (old.start, point)
        rulers[index] = Ruler(start, stop, caption(start, stop))
        self._set_rulers(rulers)

    def release(self, view, x, y) -> None:
        if self._edit is None:
            return
        self.drag(view, x, y)
        _, index, _, _ = self._edit
        self._edit = None
        rulers = self.rulers
        if index < len(rulers):
            ruler = rulers[index]
            a, b = (np.array(view.patient_to_display(p)) for p in (ruler.start, ruler.end))
            if np.linalg.norm(a - b) < MIN_PX:   # a click, or an end dragged onto the other
                del rulers[index]
                self._set_rulers(rulers)
                self.selected = None
            else:
                self.selected = index
                self.window.status_label.setText(f"Length {index + 1}: {ruler.caption}")
        if self._undo and self._undo[-1] == tuple(self.rulers):
            self._undo.pop()   # the press changed nothing: nothing to undo

    def _end_near(self, view, x, y, rulers) -> tuple[int, int] | None:
        """(ruler index, end) of the ruler end on this view's slice nearest (x, y), if within PICK_PX."""
        best, best_d = None, PICK_PX
        for i, ruler in enumerate(rulers):
            for end, p in enumerate((ruler.start, ruler.end)):
                if not view.on_slice(p):
                    continue
                d = float(np.hypot(*(np.array(view.patient_to_display(p)) - (x, y))))
                if d <= best_d:
                    best, best_d = (i, end), d
        return best

    # ---- load and export ----------------------------------------------------------------------
    def choose_load(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Load lengths from a DICOM SR", "",
                                              "DICOM SR (*.dcm);;All files (*)")
        if path:
            try:
                self.load(path)
            except MedviewerError as exc:
                self.window._fail(str(exc))

    def load(self, path: str) -> list[Ruler]:
        """Add the lengths of a DICOM SR measurement report (ours, OHIF's) that lie on the open
        series (see :func:`medviewer.io.lengths_sr.read_lengths_sr`); returns them."""
        from medviewer.io.lengths_sr import read_lengths_sr

        image = self.document.image
        if image is None:
            raise MedviewerError("open the series the lengths were measured on first", path)
        read = read_lengths_sr(path, image.volume)
        self._checkpoint()
        had = self.rulers
        unexported = self.has_unexported()
        self._set_rulers(had + read.rulers)
        if not unexported:   # what was read is in a file already: nothing to lose
            self.exported = tuple(self.rulers)
        note = f" ({'; '.join(read.warnings)})" if read.warnings else ""
        self.window.status_label.setText(f"Loaded {len(read.rulers)} length(s) from {os.path.basename(path)}{note}")
        return read.rulers


    def choose_export(self) -> None:
        if not self.rulers:
            self.window._fail("no lengths to export: draw one with Measure > Length first")
            return
        path, chosen = QFileDialog.getSaveFileName(
            self.window, "Export the lengths", "lengths.csv",
            "CSV table (*.csv);;DICOM SR measurement report (*.dcm)")
        if not path:
            return
        if not os.path.splitext(path)[1]:
            path += ".dcm" if "SR" in chosen else ".csv"
        try:
            self.export(path, force=True)   # the dialog asked before replacing
        except MedviewerError as exc:
            self.window._fail(str(exc))

    def export(self, path: str, force: bool = False) -> str:
        from medviewer.export.lengths import write_lengths

        image = self.document.image
        if image is None:
            raise MedviewerError("no image open")
        rulers = self.rulers
        out = write_lengths(image.volume, rulers, path, force=force)
        self.exported = tuple(rulers)
        self.window.status_label.setText(f"Wrote {len(rulers)} length(s) to {out}")
        return out

    def confirm_discard(self, action: str) -> bool:
        """Whether to go on with ``action``, which loses the rulers: yes when none is unexported,
        else as the user answers (quiet windows do not ask)."""
        if self.window.quiet or not self.has_unexported():
            return True
        n = len(self.rulers)
        answer = QMessageBox.question(
            self.window, "medviewer",
            f"{n} length measurement{'s are' if n > 1 else ' is'} not exported. Export before {action}?",
            QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, QMessageBox.Save)
        if answer == QMessageBox.Cancel:
            return False
        if answer == QMessageBox.Save:
            self.choose_export()
            return not self.has_unexported()
        return True
