"""The corner annotations of a 2D view, as radiologists read them on a workstation:

* top left: the view and slice (``Axial 12/40``, with the slab), then who: patient name, ID,
  birth date and sex;
* top right: the study date and the series (number and description);
* bottom left: the slice position (along the view's normal, ``S 12.5 mm``) and thickness, the
  zoom (100%: one screen pixel per image pixel), window and level;
* bottom right: the value under the mouse, above the scale bar;
* the orientation letters at the middle of each edge.

Identity (name, ID, birth date, sex and the study date) can be hidden on its own, for screenshots
that must carry none (:meth:`CornerAnnotations.set_identity`); everything else with the
annotations. A derived image drawn instead of the original (a plugin's result: a denoised CT)
is said in the view in orange whatever is hidden: a screenshot of it must not pass for the scan.
"""

from __future__ import annotations

import math

import numpy as np
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkRenderingCore import vtkActor2D, vtkPolyDataMapper2D

from medviewer.render.overlays.common import text_actor

_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))
_TEXT = (0.9, 0.9, 0.9)
_AMBER = (1.0, 0.55, 0.1)   # orange: apart from the orientation letters' gold


def direction_letter(v: np.ndarray) -> str:
    """The patient direction (L/R/A/P/S/I) a vector in LPS points to (dominant axis)."""
    a = int(np.argmax(np.abs(v)))
    return _LETTERS[a][1 if v[a] > 0 else 0]


def nice_length(max_mm: float) -> float:
    """The largest 1, 2 or 5 x 10^n not above ``max_mm``."""
    if max_mm <= 0:
        return 0.0
    exp = math.floor(math.log10(max_mm))
    for m in (5, 2, 1):
        if m * 10 ** exp <= max_mm:
            return m * 10 ** exp
    return 10 ** exp


def dicom_date(text) -> str:
    """DICOM's YYYYMMDD as YYYY-MM-DD (other text as it is)."""
    text = str(text or "").strip()
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text


def person_name(text) -> str:
    """DICOM's ``Family^Given^Middle`` as ``Family, Given Middle``."""
    parts = [p for p in str(text or "").split("^") if p.strip()]
    return parts[0] + (", " + " ".join(parts[1:]) if len(parts) > 1 else "") if parts else ""


def identity_lines(meta) -> list[str]:
    """Name, ID, and birth date with sex: the lines under the slice title."""
    lines = [person_name(meta.get("patient_name"))]
    if meta.get("patient_id"):
        lines.append(f"ID {meta['patient_id']}")
    born = dicom_date(meta.get("patient_birth_date"))
    lines.append("  ".join(p for p in (f"DOB {born}" if born else "", str(meta.get("patient_sex") or "")) if p))
    return [line for line in lines if line]


def study_lines(meta, identity: bool) -> list[str]:
    """The study date (with identity only: a date identifies) and the series."""
    lines = [dicom_date(meta.get("study_date"))] if identity else []
    number = meta.get("series_number")
    series = " ".join(p for p in (f"Se {number}" if number is not None else "",
                                  str(meta.get("series_description") or "")) if p)
    return [line for line in lines + [series] if line]


def elide(text: str, room: int) -> str:
    """``text`` cut to ``room`` characters, the cut marked by an ellipsis."""
    return text if len(text) <= room else text[:max(1, room - 1)].rstrip() + "\u2026"


class CornerAnnotations:
    """The corner texts, orientation letters, scale bar and derived-image note of one view."""

    def __init__(self, view) -> None:
        self.view = view
        ren = view.renderer
        self.show = True          # the annotations (set_overlays)
        self.identity = True      # who the patient is, within them
        self.letters = {key: text_actor(ren, pos, just, 16, (1.0, 0.85, 0.3))
                        for key, pos, just in (("left", (0.01, 0.5), (0, 1)), ("right", (0.99, 0.5), (2, 1)),
                                               ("top", (0.5, 0.99), (1, 2)), ("bottom", (0.5, 0.01), (1, 0)))}
        self.title = text_actor(ren, (0.01, 0.99), (0, 2), 13, _TEXT)
        self.study = text_actor(ren, (0.99, 0.99), (2, 2), 12, _TEXT)
        self.slice_text = text_actor(ren, (0.01, 0.01), (0, 0), 12, _TEXT)
        self.readout = text_actor(ren, (0.99, 0.10), (2, 0), 12, _TEXT)
        self.derived = text_actor(ren, (0.5, 0.07), (1, 0), 13, _AMBER)
        self.scale_points = vtkPoints()
        self.scale_data = vtkPolyData()
        self.scale_label = text_actor(ren, (0.99, 0.06), (2, 0), 11, _TEXT)
        self.scale_actor = self._scale_bar_actor()
        self._scale_key = None
        ren.AddObserver("StartEvent", lambda *_: self._each_frame())
        self.set_visible(False)

    def _scale_bar_actor(self) -> vtkActor2D:
        self.scale_data.SetPoints(self.scale_points)
        mapper = vtkPolyDataMapper2D()
        mapper.SetInputData(self.scale_data)
        actor = vtkActor2D()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*_TEXT)
        actor.GetProperty().SetLineWidth(2)
        self.view.renderer.AddViewProp(actor)
        return actor

    # ---- visibility ---------------------------------------------------------------------------
    def set_visible(self, on: bool) -> None:
        """``on``: an image is shown (the annotations then show as chosen)."""
        self._on = on
        for t in (*self.letters.values(), self.title, self.study, self.slice_text, self.readout,
                  self.scale_label, self.scale_actor):
            t.SetVisibility(on and self.show)
        self.update_derived()

    def set_identity(self, on: bool) -> None:
        self.identity = bool(on)
        self.update_text()

    # ---- texts --------------------------------------------------------------------------------
    def update_letters(self) -> None:
        view = self.view
        self.letters["right"].SetInput(direction_letter(view.right))
        self.letters["left"].SetInput(direction_letter(-view.right))
        self.letters["top"].SetInput(direction_letter(view.up))
        self.letters["bottom"].SetInput(direction_letter(-view.up))

    def update_text(self) -> None:
        """The corners' texts from the view's image, slice, slab, window/level and zoom."""
        view = self.view
        volume = view._volume
        if volume is None:
            return
        k, n = view.slice_index()
        slab = f"  {view.slab_caption()}" if view.slab else ""
        meta = volume.meta
        title = [f"{view.orientation.capitalize()}  {k}/{n}{slab}"]
        self.title.SetInput("\n".join(title + (identity_lines(meta) if self.identity else [])))
        # the top right may take about half the width: a long series description is cut short
        w = view.renderer.GetSize()[0]
        room = max(12, int(0.5 * w / 7)) if w > 0 else 60   # characters, at about 7 pixels each
        self.study.SetInput("\n".join(elide(line, room) for line in study_lines(meta, self.identity)))
        lines = [f"Pos {self._position()}  Thk {self._thickness():.2f} mm".replace(".00 mm", " mm")]
        zoom = self.zoom_percent()
        if zoom:
            lines.append(f"Zoom {zoom:.0f}%")
        layer = view.displayed_layer
        if layer is not None:
            lines.append(f"W {layer.window:.0f}  L {layer.level:.0f}")
        self.slice_text.SetInput("\n".join(lines))
        self.update_derived()

    def update_derived(self) -> None:
        view = self.view
        shown, reference = view.displayed_layer, view.document.image
        derived = (self._on and shown is not None and reference is not None
                   and (shown is not reference or bool(shown.volume.meta.get("derived"))))
        self.derived.SetInput(f"Derived image: {shown.name}" if derived else "")
        self.derived.SetVisibility(derived)

    def _position(self) -> str:
        """Where the slice lies along the view's normal, in patient terms (``S 12.5 mm``)."""
        p = self.view.plane_origin()
        axis = int(np.argmax(np.abs(self.view.normal)))
        return f"{_LETTERS[axis][1 if p[axis] > 0 else 0]} {abs(p[axis]):.1f} mm"

    def _thickness(self) -> float:
        """The slab's thickness, else the slice's: the series' Slice Thickness across its slices,
        the voxel spacing along the normal for the reformats."""
        view = self.view
        if view.slab:
            return view.slab[1]
        volume = view._volume
        axis, _ = view._normal_axis(volume)
        stated = volume.meta.get("slice_thickness")
        return float(stated) if axis == 2 and stated else float(volume.spacing[axis])

    def zoom_percent(self) -> float | None:
        """Screen pixels per image pixel across the view, in percent (None before the first frame)."""
        view = self.view
        h = view.renderer.GetSize()[1]
        if h <= 0 or view._volume is None:
            return None
        px_per_mm = h / (2.0 * view.renderer.GetActiveCamera().GetParallelScale())
        return 100.0 * px_per_mm * view._spacing2d[0]

    def set_readout(self, text: str) -> None:
        self.readout.SetInput(text)

    # ---- each frame ---------------------------------------------------------------------------
    def _each_frame(self) -> None:
        if self.view._volume is None:
            return
        self._update_scale_bar()
        self.update_text()      # the zoom follows the camera
        self._fit_top_letter()

    def _update_scale_bar(self) -> None:
        w, h = self.view.renderer.GetSize()
        if w <= 0 or h <= 0:
            return
        mm_per_px = 2.0 * self.view.renderer.GetActiveCamera().GetParallelScale() / h
        key = (w, h, round(mm_per_px, 9))
        if key == self._scale_key:
            return  # unchanged since the last frame
        self._scale_key = key
        length = nice_length(0.25 * w * mm_per_px)
        px = length / mm_per_px
        x1, y = w - 10, 0.04 * h
        x0 = x1 - px
        self.scale_points.SetNumberOfPoints(4)
        for i, p in enumerate([(x0, y, 0), (x1, y, 0), (x0, y + 5, 0), (x1, y + 5, 0)]):
            self.scale_points.SetPoint(i, p)
        self.scale_points.Modified()
        if self.scale_data.GetNumberOfLines() == 0:
            lines = vtkCellArray()
            for a, b in ((0, 1), (0, 2), (1, 3)):
                lines.InsertNextCell(2)
                lines.InsertCellPoint(a)
                lines.InsertCellPoint(b)
            self.scale_data.SetLines(lines)
        self.scale_data.Modified()
        self.scale_label.SetInput(f"{length:g} mm" if length < 10 or length % 10 else f"{length / 10:g} cm")
        self.scale_label.SetPosition(0.99, (y + 8) / h)
        self.readout.SetPosition(0.99, (y + 26) / h)     # above the scale bar's label

    def _fit_top_letter(self) -> None:
        """In a view too narrow for the top corner texts (the slice title on the left, the series
        on the right) and the top orientation letter (top centre) side by side, put the letter
        just below the corner text it would cover (the lower one when both)."""
        ren = self.view.renderer
        w, h = ren.GetSize()
        letter = self.letters["top"]
        if w <= 0 or h <= 0 or not letter.GetVisibility():
            return
        mine = [0.0] * 4   # about its own anchor, in pixels
        letter.GetBoundingBox(ren, mine)
        lx = 0.5
        top = 0.99 * h
        for text in (self.title, self.study):
            if not text.GetVisibility() or not text.GetInput():
                continue
            box = [0.0] * 4
            text.GetBoundingBox(ren, box)
            tx, ty = text.GetPosition()
            left, right = tx * w + box[0] - 4, tx * w + box[1] + 4
            if left < lx * w + mine[1] and right > lx * w + mine[0]:   # side by side they overlap
                top = min(top, ty * h + box[2] - 2)
        letter.SetPosition(lx, top / h)
