"""The measure tool: lengths and elliptical regions of interest on the 2D slices, as OHIF's Length
and Elliptical ROI tools and Slicer's line and ROI statistics.

Measure > Length (Ctrl+L, or the toolbar): the left button of a 2D view draws a ruler: press at
one end, drag, release at the other; its caption is its length in mm. Measure > Ellipse ROI
(Ctrl+E): press at one corner of the ellipse's box, drag to the opposite corner; its caption is
its area and the mean, SD, minimum and maximum of the pixels inside (HU on CT,
:mod:`medviewer.core.roi_stats`), updated as it is drawn. With either on, pressing near an end
of a ruler or of an ellipse's axis on the slice shown moves that end (an ellipse keeps the
opposite end where it was), and pressing inside an ellipse and dragging moves it. A press
without a drag draws nothing. Delete (or Backspace) in a 2D view removes the measurement last
drawn or moved.

The measurements live in a "Measurements" :class:`~medviewer.core.document.RulerLayer` (the
Layers panel shows, hides and removes it); the Measure menu deletes the last one, clears them,
exports them as CSV or as a DICOM SR measurement report (:mod:`medviewer.export.measurements`),
and loads those of such a report, ours or OHIF's (:mod:`medviewer.io.measurements_sr`).

The segment editor's tools take the same button: choosing one of them turns this tool off, and
turning this tool on sets the editor to Navigate.
"""

from __future__ import annotations

import os

import numpy as np
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox

from medviewer.core.document import Ellipse, ImageLayer, Ruler, RulerLayer
from medviewer.core.errors import MedviewerError

LAYER_NAME = "Measurements"
PICK_PX = 8.0     # a press this near (screen pixels) to a ruler's or an ellipse axis' end moves that end
MIN_PX = 3.0      # a drag shorter than this is a click, not a measurement

MODES = {"length": ("&Length", "Ctrl+L", "Measure a distance: drag from one end to the other in a 2D view"),
         "ellipse": ("&Ellipse ROI", "Ctrl+E",
                     "Measure the area and HU of an ellipse: drag from one corner of its box to the other")}


def caption(start, end) -> str:
    return f"{float(np.linalg.norm(np.subtract(end, start))):.1f} mm"


class MeasureTool:
    """Draws and edits the rulers and ellipses of the "Measurements" layer; the 2D views call
    press/drag/release."""

    def __init__(self, window) -> None:
        self.window = window
        self.document = window.document
        self.layer: RulerLayer | None = None
        self.exported: tuple = ()      # the measurements as last exported (nothing to lose when unchanged)
        # while dragging: (view, kind, index, handle, last point); handle: a ruler's end 0/1, an
        # ellipse axis' end 0-3 (+a, -a, +b, -b), "move" (the whole ellipse) or "new" (drawing one)
        self._edit: tuple | None = None
        self.selected: tuple[str, int] | None = None   # (kind, index) last drawn or moved: Delete removes it
        self._undo: list[tuple] = []   # the state (rulers, ellipses) before each change, for Ctrl+Z
        self._redo: list[tuple] = []
        self._last_drawn: str | None = None   # the kind last drawn or moved: "Delete the last" takes it
        self._removing = False
        self._switching = False
        self.actions: dict[str, QAction] = {}
        for mode, (text, key, tip) in MODES.items():
            action = QAction(text, window)
            action.setCheckable(True)
            action.setShortcut(QKeySequence(key))
            action.setStatusTip(tip)
            action.toggled.connect(lambda on, m=mode: self._toggled(m, on))
            self.actions[mode] = action
        self.document.events.connect("layer_removed", self._on_layer_removed)
        self.document.events.connect("layer_added", self._on_layer_added)
        window.segment_editor.tool_changed.connect(self._editor_tool_changed)

    def install(self, window) -> None:
        """A Measure menu, and the tool's buttons on the view toolbar."""
        menu = window.menuBar().addMenu("&Measure")
        for action in self.actions.values():
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction("Delete the last measurement", self.delete_last)
        menu.addAction("Delete the selected measurement (Delete in a 2D view)", self.delete_selected)
        menu.addAction("Clear measurements", self.clear)
        menu.addAction("Export measurements...", self.choose_export)
        menu.addAction("Load measurements (DICOM SR)...", self.choose_load)
        toolbar = getattr(window, "view_toolbar", None)
        if toolbar is not None:
            toolbar.addSeparator()
            for action in self.actions.values():
                toolbar.addAction(action)

    # ---- on and off -----------------------------------------------------------------------------
    @property
    def mode(self) -> str | None:
        """"length", "ellipse", or None when the tool is off."""
        return next((m for m, a in self.actions.items() if a.isChecked()), None)

    @property
    def active(self) -> bool:
        return self.mode is not None

    def set_active(self, on: bool, mode: str = "length") -> None:
        if on:
            self.actions[mode].setChecked(True)
        else:
            for action in self.actions.values():
                action.setChecked(False)

    def _toggled(self, mode: str, on: bool) -> None:
        if on:
            for other, action in self.actions.items():   # one mode at a time
                if other != mode:
                    action.setChecked(False)
            self._switching = True
            try:
                self.window.segment_editor.set_tool("navigate")
            finally:
                self._switching = False
        elif self.active:
            return   # another mode took over
        for view in self._slice_views():
            if on:
                view.tool = self
            elif view.tool is self:
                view.tool = None
        self._edit = None
        if on:
            self.window.status_label.setText(f"{MODES[mode][0].replace('&', '')}: {MODES[mode][2].split(': ', 1)[1]}")

    def _editor_tool_changed(self, _tool: str) -> None:
        if not self._switching and self.active:
            self.set_active(False)

    def _slice_views(self):
        return [v for n, v in self.window.grid.views.items() if n != "3d"]

    # ---- the measurements -----------------------------------------------------------------------
    @property
    def rulers(self) -> list[Ruler]:
        return list(self.layer.rulers) if self.layer is not None else []

    @property
    def ellipses(self) -> list[Ellipse]:
        return list(self.layer.ellipses) if self.layer is not None else []

    def _state(self) -> tuple:
        return tuple(self.rulers), tuple(self.ellipses)

    def _set(self, rulers=None, ellipses=None) -> None:
        rulers = self.rulers if rulers is None else list(rulers)
        ellipses = self.ellipses if ellipses is None else list(ellipses)
        if self.layer is None or self.layer not in self.document.layers:
            if not (rulers or ellipses) or self.document.image is None:
                self.layer = None
                return
            self.layer = self.document.add_layer(RulerLayer(name=LAYER_NAME, rulers=rulers, ellipses=ellipses))
        elif rulers or ellipses:
            self.document.update_layer(self.layer, rulers=rulers, ellipses=ellipses)
        else:
            layer, self.layer = self.layer, None
            self._removing = True
            try:
                self.document.remove_layer(layer)
            finally:
                self._removing = False

    def _described(self, ellipse: Ellipse) -> Ellipse:
        """``ellipse`` with its statistics on the image as caption."""
        from medviewer.core.roi_stats import ellipse_caption, ellipse_stats

        image = self.document.image
        try:
            text = ellipse_caption(ellipse_stats(image.volume, ellipse)) if image is not None else ""
        except MedviewerError:   # outside the image
            text = ""
        return Ellipse(ellipse.center, ellipse.axis_a, ellipse.axis_b, text)

    # ---- undo ---------------------------------------------------------------------------------
    def _checkpoint(self) -> None:
        """Remember the measurements before a change (Ctrl+Z goes back to them while the tool is on)."""
        self._undo.append(self._state())
        self._redo.clear()

    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> None:
        if self._undo:
            self._redo.append(self._state())
            self._restore(self._undo.pop(), "Undid a measurement change")

    def redo(self) -> None:
        if self._redo:
            self._undo.append(self._state())
            self._restore(self._redo.pop(), "Redid a measurement change")

    def _restore(self, state, message: str) -> None:
        self.selected = None
        self._set(*state)
        self.window.status_label.setText(f"{message} ({self._count()})")

    def _count(self) -> str:
        n, m = len(self.rulers), len(self.ellipses)
        return f"{n} length(s)" + (f", {m} ellipse(s)" if m else "")

    def add(self, start, end) -> Ruler:
        """A ruler from ``start`` to ``end`` (LPS mm, on one slice), as if drawn."""
        ruler = Ruler(start, end, caption(start, end))
        self._checkpoint()
        self._set(rulers=self.rulers + [ruler])
        return ruler

    def add_ellipse(self, center, axis_a, axis_b) -> Ellipse:
        """An ellipse (LPS mm, on one slice), as if drawn; its caption is measured on the image."""
        ellipse = self._described(Ellipse(center, axis_a, axis_b))
        self._checkpoint()
        self._set(ellipses=self.ellipses + [ellipse])
        return ellipse

    def _last_kind(self) -> str | None:
        """The kind of the measurement drawn last (the layer keeps the two kinds apart)."""
        if self.ellipses and (self._last_drawn == "ellipse" or not self.rulers):
            return "ellipse"
        return "length" if self.rulers else None

    def delete_last(self) -> None:
        kind = self._last_kind()
        if kind is not None:
            self._checkpoint()
            if kind == "ellipse":
                self._set(ellipses=self.ellipses[:-1])
            else:
                self._set(rulers=self.rulers[:-1])
        self._last_drawn = None
        self.selected = None

    def delete_selected(self) -> None:
        """Remove the measurement last drawn or moved (Delete or Backspace in a 2D view)."""
        kind, index = self.selected or (None, -1)
        items = self.ellipses if kind == "ellipse" else self.rulers
        if kind is None or not 0 <= index < len(items):
            self.window.status_label.setText("Measure: nothing selected (draw a measurement, or drag one of its ends)")
            return
        self._checkpoint()
        removed = items.pop(index)
        self.selected = None
        self._set(**{"ellipses" if kind == "ellipse" else "rulers": items})
        what = "the length of " + removed.caption if kind == "length" else \
            "the ellipse of " + (removed.caption.split("\n")[0] or "no area")
        self.window.status_label.setText(f"Deleted {what}")

    def clear(self) -> None:
        if self.rulers or self.ellipses:
            self._checkpoint()
            self._set([], [])
        self.selected = None

    def _on_layer_removed(self, layer) -> None:
        if layer is self.layer:
            self.layer = None
            self._edit = None
            self.selected = None
            if not self._removing:   # removed from the Layers panel, or with the image: history goes too
                self._forget_history()

    def _on_layer_added(self, layer) -> None:
        if isinstance(layer, ImageLayer) and layer is self.document.image:   # a new image: new measurements
            self._forget_history()

    def _forget_history(self) -> None:
        self._undo.clear()
        self._redo.clear()

    def has_unexported(self) -> bool:
        return bool(self.rulers or self.ellipses) and self._state() != self.exported

    # ---- mouse (SliceView calls these; display pixels, y from the bottom) -----------------------
    def press(self, view, x, y, shift: bool = False) -> bool:
        image = self.document.image
        point = view.display_to_patient(x, y)
        if image is None or not image.volume.contains_point(point):
            return True   # swallowed: no crosshair jump while the tool is on
        self._checkpoint()   # taken back on release if the press changed nothing
        grab = self._handle_near(view, x, y)
        if grab is None and self.mode == "ellipse":
            inside = self._ellipse_at(view, point)
            grab = None if inside is None else ("ellipse", inside, "move")
        if grab is None and self.mode == "length":
            self._set(rulers=self.rulers + [Ruler(point, point)])
            grab = ("length", len(self.rulers) - 1, 1)
        elif grab is None:
            self._set(ellipses=self.ellipses + [Ellipse(point, (0, 0, 0), (0, 0, 0))])
            grab = ("ellipse", len(self.ellipses) - 1, "new")
        self._edit = (view, *grab, np.asarray(point, dtype=float))
        return True

    def drag(self, view, x, y) -> None:
        if self._edit is None or view is not self._edit[0] or self.layer is None:
            return
        _, kind, index, handle, last = self._edit
        point = np.asarray(view.display_to_patient(x, y), dtype=float)
        if kind == "length":
            rulers = self.rulers
            if index < len(rulers):
                old = rulers[index]
                start, stop = (point, old.end) if handle == 0 else (old.start, point)
                rulers[index] = Ruler(start, stop, caption(start, stop))
                self._set(rulers=rulers)
            return
        ellipses = self.ellipses
        if index >= len(ellipses):
            return
        old = ellipses[index]
        u, v = np.asarray(view.right, dtype=float), np.asarray(view.up, dtype=float)
        if handle == "new":   # from the pressed corner (kept in ``last``) to this one
            d = point - last
            half_u, half_v = (d @ u) / 2 * u, (d @ v) / 2 * v
            new = Ellipse(last + half_u + half_v, half_u, half_v)
        elif handle == "move":
            d = point - last
            d = (d @ u) * u + (d @ v) * v   # along the slice only
            new = Ellipse(np.add(old.center, d), old.axis_a, old.axis_b)
            self._edit = (view, kind, index, handle, point)
        else:   # an axis' end: the opposite end stays, the other axis too
            ends = old.ends
            axis = np.asarray(old.axis_a if handle < 2 else old.axis_b)
            length = np.linalg.norm(axis)
            direction = axis / length if length > 0 else (u if handle < 2 else v)
            opposite = ends[handle ^ 1]
            half = ((point - opposite) @ direction) / 2 * direction
            centre = opposite + half
            new = Ellipse(centre, half, old.axis_b) if handle < 2 else Ellipse(centre, old.axis_a, half)
        ellipses[index] = self._described(new)
        self._set(ellipses=ellipses)

    def release(self, view, x, y) -> None:
        if self._edit is None:
            return
        self.drag(view, x, y)
        _, kind, index, _, _ = self._edit
        self._edit = None
        if kind == "length":
            items = self.rulers
            if index < len(items):
                r = items[index]
                points = [r.start, r.end]
        else:
            items = self.ellipses
            if index < len(items):
                e = items[index]
                points = [e.center, np.add(e.center, e.axis_a), np.add(e.center, e.axis_b)]
        if index < len(items):
            at = [np.array(view.patient_to_display(p)) for p in points]
            if min(np.linalg.norm(p - at[0]) for p in at[1:]) < MIN_PX:   # a click, or collapsed
                del items[index]
                self._set(**{"ellipses" if kind == "ellipse" else "rulers": items})
                self.selected = None
            else:
                self.selected = (kind, index)
                self._last_drawn = kind
                name = "Length" if kind == "length" else "Ellipse"
                self.window.status_label.setText(f"{name} {index + 1}: {items[index].caption.replace(chr(10), '; ')}")
        if self._undo and self._undo[-1] == self._state():
            self._undo.pop()   # the press changed nothing: nothing to undo

    def _handle_near(self, view, x, y) -> tuple | None:
        """(kind, index, end) of the ruler end or ellipse axis end on this view's slice nearest
        (x, y), if within PICK_PX."""
        best, best_d = None, PICK_PX
        candidates = [("length", i, end, p) for i, r in enumerate(self.rulers) for end, p in enumerate((r.start, r.end))]
        candidates += [("ellipse", i, end, p) for i, e in enumerate(self.ellipses) if self._shows(view, e)
                       for end, p in enumerate(e.ends)]
        for kind, i, end, p in candidates:
            if not view.on_slice(p):
                continue
            d = float(np.hypot(*(np.array(view.patient_to_display(p)) - (x, y))))
            if d <= best_d:
                best, best_d = (kind, i, end), d
        return best

    def _ellipse_at(self, view, point) -> int | None:
        """The index of the last-drawn ellipse on this view's slice that holds ``point``."""
        for i in range(len(self.ellipses) - 1, -1, -1):
            e = self.ellipses[i]
            la, lb = np.linalg.norm(e.axis_a), np.linalg.norm(e.axis_b)
            if la == 0 or lb == 0 or not self._shows(view, e):
                continue
            d = np.subtract(point, e.center)
            if (d @ e.axis_a / la ** 2) ** 2 + (d @ e.axis_b / lb ** 2) ** 2 <= 1.0:
                return i
        return None

    @staticmethod
    def _shows(view, ellipse: Ellipse) -> bool:
        """Whether ``view``'s slice holds the whole ellipse (not one that crosses it)."""
        return all(view.on_slice(p) for p in ellipse.ends)

    # ---- load and export ----------------------------------------------------------------------
    def choose_load(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Load measurements from a DICOM SR", "",
                                              "DICOM SR (*.dcm);;All files (*)")
        if path:
            try:
                self.load(path)
            except MedviewerError as exc:
                self.window._fail(str(exc))

    def load(self, path: str):
        """Add the lengths and ellipses of a DICOM SR measurement report (ours, OHIF's) that lie
        on the open series (see :func:`medviewer.io.measurements_sr.read_measurements_sr`);
        returns what was read. Ellipses are measured on the image."""
        from medviewer.io.measurements_sr import read_measurements_sr

        image = self.document.image
        if image is None:
            raise MedviewerError("open the series the measurements were made on first", path)
        read = read_measurements_sr(path, image.volume)
        read.ellipses = [self._described(e) for e in read.ellipses]
        self._checkpoint()
        unexported = self.has_unexported()
        self._set(self.rulers + read.rulers, self.ellipses + read.ellipses)
        if not unexported:   # what was read is in a file already: nothing to lose
            self.exported = self._state()
        note = f" ({'; '.join(read.warnings)})" if read.warnings else ""
        ellipses = f" and {len(read.ellipses)} ellipse(s)" if read.ellipses else ""
        self.window.status_label.setText(
            f"Loaded {len(read.rulers)} length(s){ellipses} from {os.path.basename(path)}{note}")
        return read

    def choose_export(self) -> None:
        if not (self.rulers or self.ellipses):
            self.window._fail("no measurements to export: draw one with Measure > Length or Ellipse ROI first")
            return
        path, chosen = QFileDialog.getSaveFileName(
            self.window, "Export the measurements", "measurements.csv",
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
        from medviewer.export.measurements import write_measurements

        image = self.document.image
        if image is None:
            raise MedviewerError("no image open")
        state = self._state()
        out = write_measurements(image.volume, state[0], path, ellipses=state[1], force=force)
        self.exported = state
        self.window.status_label.setText(f"Wrote {self._count()} to {out}")
        return out

    def confirm_discard(self, action: str) -> bool:
        """Whether to go on with ``action``, which loses the measurements: yes when none is
        unexported, else as the user answers (quiet windows do not ask)."""
        if self.window.quiet or not self.has_unexported():
            return True
        n = len(self.rulers) + len(self.ellipses)
        answer = QMessageBox.question(
            self.window, "medviewer",
            f"{n} measurement{'s are' if n > 1 else ' is'} not exported. Export before {action}?",
            QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, QMessageBox.Save)
        if answer == QMessageBox.Cancel:
            return False
        if answer == QMessageBox.Save:
            self.choose_export()
            return not self.has_unexported()
        return True
