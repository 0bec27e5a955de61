"""Point markers (e.g. click-to-segment prompts) drawn in a 2D slice view on the slices they lie on.

Each marker is a square in its colour inside a ring of the opposite brightness (black around a
light marker, white around a dark one), so that it reads on any segment colour beneath it and on
the CT: a coloured square alone vanished on a segment of its own hue."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

from medviewer.render.slice_view import SliceView

#: width of the ring around each marker, in screen pixels
RING_PX = 2.0


def ring_colors(colors: np.ndarray) -> np.ndarray:
    """Black rings around light markers, white around dark ones (by luminance)."""
    colors = np.asarray(colors, dtype=float).reshape(-1, 3)
    light = colors @ np.array([0.299, 0.587, 0.114]) >= 128
    return np.where(light[:, None], 0, 255).astype(np.uint8)


class PointMarkers:
    """Square markers at points (LPS mm) in one :class:`SliceView`, shown on the slice through
    each point only (within half a slice); they follow the view when it scrolls."""

    def __init__(self, view: SliceView, size: float = 9.0, ring: float = RING_PX) -> None:
        self.view = view
        self.points = np.zeros((0, 3))
        self.colors = np.zeros((0, 3), dtype=np.uint8)
        self.data = vtkPolyData()
        self.ring_data = vtkPolyData()
        # the ring: a larger square just beneath (above the label overlays and the crosshair)
        self.ring_actor = self._actor(self.ring_data, size + 2 * ring, z=0.69)
        self.actor = self._actor(self.data, size, z=0.7)
        view.document.events.connect("cursor_changed", self._on_cursor)

    def _actor(self, data: vtkPolyData, size: float, z: float) -> vtkActor:
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(data)
        mapper.SetColorModeToDirectScalars()
        actor = vtkActor()
        actor.SetMapper(mapper)
        prop = actor.GetProperty()
        prop.SetPointSize(size)
        prop.LightingOff()
        actor.SetPosition(0, 0, z)
        actor.PickableOff()
        self.view.renderer.AddActor(actor)
        return actor

    def close(self) -> None:
        self.view.document.events.disconnect("cursor_changed", self._on_cursor)
        self.view.renderer.RemoveActor(self.actor)
        self.view.renderer.RemoveActor(self.ring_actor)

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
        colors = self.colors[keep]
        for data, rgb in ((self.data, colors), (self.ring_data, ring_colors(colors))):
            data.SetPoints(pts)
            data.SetVerts(verts)
            scalars = numpy_support.numpy_to_vtk(np.ascontiguousarray(rgb), deep=True)
            scalars.SetName("colors")
            data.GetPointData().SetScalars(scalars)
            data.Modified()
        view.request_render()

    def _on_cursor(self, _point) -> None:
        self.update()
