"""Point markers (e.g. click-to-segment prompts) drawn in a 2D slice view on the slices they lie on."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

from medviewer.render.slice_view import SliceView


class PointMarkers:
    """Square markers at points (LPS mm) in one :class:`SliceView`, shown on the slice through
    each point only (within half a slice); they follow the view when it scrolls."""

    def __init__(self, view: SliceView, size: float = 9.0) -> None:
        self.view = view
        self.points = np.zeros((0, 3))
        self.colors = np.zeros((0, 3), dtype=np.uint8)
        self.data = vtkPolyData()
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(self.data)
        mapper.SetColorModeToDirectScalars()
        self.actor = vtkActor()
        self.actor.SetMapper(mapper)
        prop = self.actor.GetProperty()
        prop.SetPointSize(size)
        prop.LightingOff()
        self.actor.SetPosition(0, 0, 0.7)  # above the label overlays and the crosshair
        self.actor.PickableOff()
        view.renderer.AddActor(self.actor)
        view.document.events.connect("cursor_changed", self._on_cursor)

    def close(self) -> None:
        self.view.document.events.disconnect("cursor_changed", self._on_cursor)
        self.view.renderer.RemoveActor(self.actor)

    def set_points(self, points: Sequence[Sequence[float]], colors: Sequence[Sequence[int]]) -> None:
        """Markers at ``points`` (LPS mm) in ``colors`` (RGB 0..255)."""
        self.points = np.asarray(points, dtype=float).reshape(-1, 3)
        self.colors = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
        self.update()

    def visible_points(self) -> np.ndarray:
        """Indices of the points on the view's current slice."""
        if not len(self.points):
            return np.zeros(0, dtype=int)
        view = self.view
        n = (self.points - view.center) @ view.normal
        return np.nonzero(np.abs(n - view.offset) <= max(view._half_slab(), 1e-3) + 1e-6)[0]

    def update(self) -> None:
        view = self.view
        keep = self.visible_points()
        d = self.points[keep] - view.center
        uv = np.column_stack([d @ view.right, d @ view.up, np.zeros(len(keep))])
        pts = vtkPoints()
        pts.SetData(numpy_support.numpy_to_vtk(np.ascontiguousarray(uv), deep=True))
        verts = vtkCellArray()
        for i in range(len(keep)):
            verts.InsertNextCell(1)
            verts.InsertCellPoint(i)
        self.data.SetPoints(pts)
        self.data.SetVerts(verts)
        scalars = numpy_support.numpy_to_vtk(np.ascontiguousarray(self.colors[keep]), deep=True)
        scalars.SetName("colors")
        self.data.GetPointData().SetScalars(scalars)
        self.data.Modified()
        view.request_render()

    def _on_cursor(self, _point) -> None:
        self.update()
