"""The measure tool: lengths and elliptical regions of interest on the 2D slices, as OHIF's Length
and Elliptical ROI tools and Slicer's line and ROI statistics.

Measure > Length (Ctrl+L, or the toolbar): the left button of a 2D view draws a ruler: press at
one end, drag, release at the other; its caption is its length in mm. Measure > Bidirectional
(Ctrl+B), as OHIF's tool for RECIST: drag the long axis; a short axis half as long crosses its
middle at a right angle; drag the short axis' ends to the lesion's edges; the caption gives both
(L, S) in mm. Measure > Ellipse ROI (Ctrl+E): press at one corner of the ellipse's box, drag to
the opposite corner; its caption is its area and the mean, SD, minimum and maximum of the pixels
inside (HU on CT, :mod:`medviewer.core.roi_stats`), updated as it is drawn. With any of them on,
pressing near an end of a ruler, of a bidirectional's axis or of an ellipse's axis on the slice
shown moves that end (a bidirectional stays perpendicular, see
:meth:`~medviewer.core.document.Bidirectional.with_end_moved`; an ellipse keeps the opposite end
where it was), and pressing inside an ellipse and dragging moves it. A press without a drag
draws nothing. Delete (or Backspace) in a 2D view removes the measurement last drawn or moved.

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

from medviewer.core.document import Bidirectional, Ellipse, ImageLayer, Ruler, RulerLayer
from medviewer.core.errors import MedviewerError

LAYER_NAME = "Measurements"
PICK_PX = 8.0     # a press this near (screen pixels) to a ruler's or an ellipse axis' end moves that end
MIN_PX = 3.0      # a drag shorter than this is a click, not a measurement

MODES = {"length": ("&Length", "Ctrl+L", "Measure a distance: drag from one end to the other in a 2D view"),
         "bidirectional": ("&Bidirectional", "Ctrl+B",
                           "Measure the long and short axis: drag the long axis, then the short axis' ends"),
         "ellipse": ("&Ellipse ROI", "Ctrl+E",
                     "Measure the area and HU of an ellipse: drag from one corner of its box to the other")}
#: each kind of measurement, the RulerLayer field that holds them, and what the status line calls one
FIELDS = {"length": "rulers", "bidirectional": "bidirectionals", "ellipse": "ellipses"}
NAMES = {"length": "Length", "bidirectional": "Bidirectional", "ellipse": "Ellipse"}


def caption(start, end) -> str:
    return f"{float(np.linalg.norm(np.subtract(end, start))):.1f} mm"


def cross_caption(cross: Bidirectional) -> str:
    return f"L {cross.long_mm:.1f} mm\nS {cross.short_mm:.1f} mm"


class MeasureTool:
    """Draws and edits the rulers, bidirectionals and ellipses of the "Measurements" layer; the 2D
    views call press/drag/release."""

    def __init__(self, window) -> None:
        self.window = window
        self.document = window.document
        self.layer: RulerLayer | None = None
        self.exported: tuple = ()      # the measurements as last exported (nothing to lose when unchanged)
        # while dragging: (view, kind, index, handle, last point); handle: a ruler's end 0/1, a
        # bidirectional's end 0-3 (long start, long end, short start, short end), an ellipse axis'
        # end 0-3 (+a, -a, +b, -b), "move" (the whole ellipse) or "new" (drawing one)
        self._edit: tuple | None = None
        self.selected: tuple[str, int] | None = None   # (kind, index) last drawn or moved: Delete removes it
        self._undo: list[tuple] = []   # the state (see _state) before each change, for Ctrl+Z
        self._redo: list[tuple] = []
        self._last_drawn: str | None = None   # the kind last drawn or moved: "Delete the last" takes it
        self._listeners: list = []   # called after each change of the measurements (the Measurements dock)
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
        """"length", "bidirectional", "ellipse", or None when the tool is off."""
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
    def items(self, kind: str) -> list:
        """The measurements of ``kind`` ("length", "bidirectional", "ellipse"), in drawing order."""
        return list(getattr(self.layer, FIELDS[kind])) if self.layer is not None else []

    @property
    def rulers(self) -> list[Ruler]:
        return self.items("length")

    @property
    def bidirectionals(self) -> list[Bidirectional]:
        return self.items("bidirectional")

    @property
    def ellipses(self) -> list[Ellipse]:
        return self.items("ellipse")

    def _state(self) -> tuple:
        """All the measurements, a tuple per kind (in FIELDS' order)."""
        return tuple(tuple(self.items(kind)) for kind in FIELDS)

    def _set(self, **changes) -> None:
        """Set the measurements of the kinds given (``length=[...]``, ...); the layer is made when
        the first is drawn and removed with the last."""
        values = {FIELDS[kind]: list(changes[kind]) if kind in changes else self.items(kind) for kind in FIELDS}
        anything = any(values.values())
        if self.layer is None or self.layer not in self.document.layers:
            if not anything or self.document.image is None:
                self.layer = None
            else:
                self.layer = self.document.add_layer(RulerLayer(name=LAYER_NAME, **values))
        elif anything:
            self.document.update_layer(self.layer, **values)
        else:
            layer, self.layer = self.layer, None
            self._removing = True
            try:
                self.document.remove_layer(layer)
            finally:
                self._removing = False
        self._changed()

    def on_change(self, callback) -> None:
        """Call ``callback()`` after every change of the measurements."""
        self._listeners.append(callback)

    def _changed(self) -> None:
        for callback in self._listeners:
            callback()

    def _set_state(self, state) -> None:
        self._set(**dict(zip(FIELDS, state)))

    def _described(self, ellipse: Ellipse) -> Ellipse:
        """``ellipse`` with its statistics on the image as caption."""
        from medviewer.core.roi_stats import ellipse_caption, ellipse_stats

        image = self.document.image
        try:
            text = ellipse_caption(ellipse_stats(image.volume, ellipse)) if image is not None else ""
        except MedviewerError:   # outside the image
            text = ""
        return Ellipse(ellipse.center, ellipse.axis_a, ellipse.axis_b, text, ellipse.label)

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
        self._set_state(state)
        self.window.status_label.setText(f"{message} ({self._count()})")

    def _count(self) -> str:
        counts = [(len(self.items(kind)), NAMES[kind].lower()) for kind in FIELDS]
        return ", ".join(f"{n} {name}(s)" for k, (n, name) in enumerate(counts) if n or k == 0)

    def delete_last(self) -> None:
        """Remove the measurement drawn last (of the kind drawn or moved last)."""
        kinds = [self._last_drawn] if self._last_drawn else []
        kind = next((k for k in kinds + list(FIELDS) if self.items(k)), None)
        if kind is not None:
            self._checkpoint()
            self._set(**{kind: self.items(kind)[:-1]})
        self._last_drawn = None
        self.selected = None

    def delete_selected(self) -> None:
        """Remove the measurement last drawn or moved (Delete or Backspace in a 2D view)."""
        kind, index = self.selected or (None, -1)
        items = self.items(kind) if kind else []
        if not 0 <= index < len(items):
            self.window.status_label.setText("Measure: nothing selected (draw a measurement, or drag one of its ends)")
            return
        self._checkpoint()
        removed = items.pop(index)
        self.selected = None
        self._set(**{kind: items})
        text = removed.caption.replace("\n", ", ") if kind != "ellipse" else (removed.caption.split("\n")[0] or "no area")
        self.window.status_label.setText(f"Deleted the {NAMES[kind].lower()} of {text}")

    def go_to(self, kind: str, index: int) -> None:
        """Move the crosshair to a measurement (a length's or long axis' middle, an ellipse's
        centre), so that the views show its slice, and select it (Delete removes it)."""
        items = self.items(kind)
        if not 0 <= index < len(items):
            return
        item = items[index]
        if kind == "ellipse":
            centre = np.asarray(item.center)
        else:
            ends = item.ends if kind == "bidirectional" else np.array([item.start, item.end])
            centre = (ends[0] + ends[1]) / 2
        self.document.set_cursor(centre)
        self._select(kind, index)

    def set_label(self, kind: str, index: int, label: str) -> None:
        """Name a measurement ("target lesion 1"): shown above its values in the views and the
        dock, exported (CSV, and the SR's comment, which OHIF shows as its label). Undoable."""
        from dataclasses import replace

        items = self.items(kind)
        if not 0 <= index < len(items) or items[index].label == label.strip():
            return
        self._checkpoint()
        items[index] = replace(items[index], label=label.strip())
        self._set(**{kind: items})
        self._select(kind, index)

    def _select(self, kind: str, index: int) -> None:
        """Make a measurement the selected one (Delete removes it; the dock shows it selected)."""
        self.selected = (kind, index)
        self._last_drawn = kind
        caption = self.items(kind)[index].text.replace("\n", "; ")
        self.window.status_label.setText(f"{NAMES[kind]} {index + 1}: {caption}")
        self._changed()

    def clear(self) -> None:
        if any(self._state()):
            self._checkpoint()
            self._set(**{kind: [] for kind in FIELDS})
        self.selected = None

    def _on_layer_removed(self, layer) -> None:
        if layer is self.layer:
            self.layer = None
            self._edit = None
            self.selected = None
            if not self._removing:   # removed from the Layers panel, or with the image: history goes too
                self._forget_history()
                self._changed()

    def _on_layer_added(self, layer) -> None:
        if isinstance(layer, ImageLayer) and layer is self.document.image:   # a new image: new measurements
            self._forget_history()

    def _forget_history(self) -> None:
        self._undo.clear()
        self._redo.clear()

    def has_unexported(self) -> bool:
        return any(self._state()) and self._state() != self.exported

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
        if grab is None:   # a new one, grabbed by its far end (an ellipse: by the corner)
            new, handle = {"length": (Ruler(point, point), 1),
                           "bidirectional": (Bidirectional(point, point, point, point), "new"),
                           "ellipse": (Ellipse(point, (0, 0, 0), (0, 0, 0)), "new")}[self.mode]
            self._set(**{self.mode: self.items(self.mode) + [new]})
            grab = (self.mode, len(self.items(self.mode)) - 1, handle)
        self._edit = (view, *grab, np.asarray(point, dtype=float))
        return True

    def drag(self, view, x, y) -> None:
        if self._edit is None or view is not self._edit[0] or self.layer is None:
            return
        _, kind, index, handle, last = self._edit
        items = self.items(kind)
        if index >= len(items):
            return
        point = np.asarray(view.display_to_patient(x, y), dtype=float)
        old = items[index]
        if kind == "length":
            start, stop = (point, old.end) if handle == 0 else (old.start, point)
            items[index] = Ruler(start, stop, caption(start, stop), old.label)
        elif kind == "bidirectional":
            normal = np.asarray(view.normal, dtype=float)
            new = Bidirectional.across(old.long_start, point, normal) if handle == "new" \
                else old.with_end_moved(handle, point, normal)
            items[index] = Bidirectional(*new.ends, cross_caption(new), old.label)
        else:
            moved = self._ellipse_dragged(view, old, handle, last, point)
            items[index] = self._described(Ellipse(moved.center, moved.axis_a, moved.axis_b, label=old.label))
            if handle == "move":
                self._edit = (view, kind, index, handle, point)
        self._set(**{kind: items})

    def _ellipse_dragged(self, view, old: Ellipse, handle, last, point) -> Ellipse:
        u, v = np.asarray(view.right, dtype=float), np.asarray(view.up, dtype=float)
        if handle == "new":   # from the pressed corner (kept in ``last``) to this one
            d = point - last
            half_u, half_v = (d @ u) / 2 * u, (d @ v) / 2 * v
            return Ellipse(last + half_u + half_v, half_u, half_v)
        if handle == "move":
            d = point - last
            d = (d @ u) * u + (d @ v) * v   # along the slice only
            return Ellipse(np.add(old.center, d), old.axis_a, old.axis_b)
        # an axis' end: the opposite end stays, the other axis too
        axis = np.asarray(old.axis_a if handle < 2 else old.axis_b)
        length = np.linalg.norm(axis)
        direction = axis / length if length > 0 else (u if handle < 2 else v)
        opposite = old.ends[handle ^ 1]
        half = ((point - opposite) @ direction) / 2 * direction
        centre = opposite + half
        return Ellipse(centre, half, old.axis_b) if handle < 2 else Ellipse(centre, old.axis_a, half)

    def release(self, view, x, y) -> None:
        if self._edit is None:
            return
        self.drag(view, x, y)
        _, kind, index, _, _ = self._edit
        self._edit = None
        items = self.items(kind)
        if index < len(items):
            item = items[index]
            # the points whose distance on screen tells a measurement from a click
            points = {"length": lambda r: [r.start, r.end],
                      "bidirectional": lambda b: [b.long_start, b.long_end],
                      "ellipse": lambda e: [e.center, np.add(e.center, e.axis_a), np.add(e.center, e.axis_b)]}[kind](item)
            at = [np.array(view.patient_to_display(p)) for p in points]
            if min(np.linalg.norm(p - at[0]) for p in at[1:]) < MIN_PX:   # a click, or collapsed
                del items[index]
                self._set(**{kind: items})
                self.selected = None
            else:
                self._select(kind, index)
        if self._undo and self._undo[-1] == self._state():
            self._undo.pop()   # the press changed nothing: nothing to undo

    def _handle_near(self, view, x, y) -> tuple | None:
        """(kind, index, end) of the ruler end, bidirectional axis end or ellipse axis end on this
        view's slice nearest (x, y), if within PICK_PX."""
        best, best_d = None, PICK_PX
        candidates = [("length", i, end, p) for i, r in enumerate(self.rulers) for end, p in enumerate((r.start, r.end))]
        candidates += [(kind, i, end, p) for kind in ("bidirectional", "ellipse")
                       for i, item in enumerate(self.items(kind)) if self._shows(view, item)
                       for end, p in enumerate(item.ends)]
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
    def _shows(view, item) -> bool:
        """Whether ``view``'s slice holds the whole ellipse or bidirectional (not one that crosses it)."""
        return all(view.on_slice(p) for p in item.ends)

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
        """Add the lengths, bidirectionals and ellipses of a DICOM SR measurement report (ours,
        OHIF's) that lie on the open series (see
        :func:`medviewer.io.measurements_sr.read_measurements_sr`); returns what was read.
        Ellipses are measured on the image."""
        from medviewer.io.measurements_sr import read_measurements_sr

        image = self.document.image
        if image is None:
            raise MedviewerError("open the series the measurements were made on first", path)
        read = read_measurements_sr(path, image.volume)
        read.ellipses = [self._described(e) for e in read.ellipses]
        read.bidirectionals = [Bidirectional(*b.ends, cross_caption(b), b.label) for b in read.bidirectionals]
        self._checkpoint()
        unexported = self.has_unexported()
        self._set(length=self.rulers + read.rulers, bidirectional=self.bidirectionals + read.bidirectionals,
                  ellipse=self.ellipses + read.ellipses)
        if not unexported:   # what was read is in a file already: nothing to lose
            self.exported = self._state()
        note = f" ({'; '.join(read.warnings)})" if read.warnings else ""
        found = [(len(read.rulers), "length"), (len(read.bidirectionals), "bidirectional"),
                 (len(read.ellipses), "ellipse")]
        text = ", ".join(f"{n} {name}(s)" for k, (n, name) in enumerate(found) if n or k == 0)
        self.window.status_label.setText(f"Loaded {text} from {os.path.basename(path)}{note}")
        return read

    def choose_export(self) -> None:
        if not any(self._state()):
            self.window._fail("no measurements to export: draw one with Measure > Length, Bidirectional or "
                              "Ellipse ROI first")
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
        out = write_measurements(image.volume, self.rulers, path, bidirectionals=self.bidirectionals,
                                 ellipses=self.ellipses, force=force)
        self.exported = state
        self.window.status_label.setText(f"Wrote {self._count()} to {out}")
        return out

    def confirm_discard(self, action: str) -> bool:
        """Whether to go on with ``action``, which loses the measurements: yes when none is
        unexported, else as the user answers (quiet windows do not ask)."""
        if self.window.quiet or not self.has_unexported():
            return True
        n = sum(len(items) for items in self._state())
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
