"""Brush, eraser and threshold brush: their options (the radius, and for the threshold brush the
HU range it paints) and the painting, a mixin of the segment editor."""

from __future__ import annotations

import numpy as np

from medviewer.core.label_edit import disc_region, erase, paint
from medviewer.ui.segment_tools import OptionsPanel


class BrushOptions(OptionsPanel):
    def __init__(self, editor) -> None:
        super().__init__(editor)
        editor.radius = self.spin("Radius", (0.5, 100.0), 5.0, " mm", "the disc painted, in the slice")
        editor.hu_min = self.spin("From", (-3000.0, 5000.0), -100.0, " HU", "the threshold brush paints "
                                  "only voxels from this value...", decimals=0)
        editor.hu_max = self.spin("To", (-3000.0, 5000.0), 200.0, " HU", "...to this one", decimals=0)
        self._threshold_rows = (editor.hu_min, editor.hu_max)
        editor.tool_changed.connect(self._tool_changed)
        self._tool_changed(editor.tool)

    def _tool_changed(self, tool: str) -> None:
        for spin in self._threshold_rows:
            self.form.setRowVisible(spin, tool == "threshold")


class BrushPainting:
    """A brush stroke: a disc of the radius in the slice, dragged (one undoable edit)."""

    def _dab(self, view, point) -> None:
        """One disc of the brush at ``point`` in ``view``'s slice, painted in place (the 2D views
        redraw now; the 3D surface and the measures when the stroke ends)."""
        from medviewer.render.vtk_util import local_image

        _, _, label = self._stroke
        volume = self.layer.volume
        box, mask = disc_region(volume, point, self.radius.value(), view.normal)
        if self.tool == "eraser":
            erase(volume.array, box, mask, label)
        else:
            hu = (self.hu_min.value(), self.hu_max.value()) if self.tool == "threshold" else None
            paint(volume.array, box, mask, label, self.document.image.volume.array, hu)
        local_image(volume).Modified()
        for v in self._slice_views():
            v.request_render()

    def paint_disc(self, view_name: str, point, tool: str | None = None) -> None:
        """Paint (or erase) one brush disc at ``point`` (LPS mm) in a view's slice, as one edit."""
        view = self.window.grid.views[view_name]
        if tool is not None:
            self.set_tool(tool)
        label = self._current_or_new()
        if label is None:
            return
        self._stroke = (view, self.layer.volume.array.copy(), label)
        self._dab(view, np.asarray(point, dtype=float))
        self.release(view, 0, 0)
