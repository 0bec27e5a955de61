"""A 2D view: one axial, coronal or sagittal slice of the Document, resliced in patient space.

Screen conventions (radiological): axial shows the patient's right on the screen's left and
anterior at the top; coronal shows right on the left and superior at the top; sagittal shows
anterior on the left and superior at the top. The reslice works in patient LPS mm, whatever
the volume's direction matrix, so oblique or flipped grids show the right way up.

Images: the view slices and scrolls on the reference image's grid (``Document.image``, where the
label layers live) and draws the displayed image (``Document.displayed_image``: the topmost
visible image layer), resliced through the same plane; switching the displayed image keeps the
camera, the slice and the crosshair. Window/level dragging acts on the displayed image.

This module is the reslice pipeline, the camera, the Document's events and the mouse; what is
drawn over the image lives in :mod:`medviewer.render.overlays`, one module per kind: label layers
(fill and outline), boxes and measurements (with captions), the corner annotations (who, what,
where, W/L, zoom), orientation letters and scale bar. Click markers: :mod:`medviewer.render.markers`.

Mouse: left click/drag moves the crosshair; right drag changes window (horizontal) and level
(vertical); middle drag or shift+left drag pans; ctrl+left/right drag or ctrl+wheel zooms; wheel,
shift+right drag or alt+left drag scrolls slices. Keys: PgUp/PgDn, Up/Down, Left/Right scroll
(with shift: 10 slices); r resets the view. While an editing ``tool`` is set (the segment
editor's click/brush tools, the measure tool), the left button (with or without shift) goes to the
tool instead, and Delete or Backspace to its ``delete_selected()`` if it has one.

Slab: the image can be drawn as the maximum (MIP), minimum (MinIP) or mean of a slab of so many
mm centred on the slice (:meth:`SliceView.set_slab`), sampled every millimetre; segments, boxes,
rulers and the HU readout stay those of the slice itself.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkImagingCore import vtkImageReslice
from vtkmodules.vtkRenderingCore import vtkImageActor, vtkRenderer
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (the OpenGL backend)
import vtkmodules.vtkInteractionStyle  # noqa: F401

from medviewer.core.document import BoxLayer, Document, ImageLayer, LabelLayer, Layer, RulerLayer
from medviewer.core.volume import Volume
from medviewer.render.overlays.common import line_actor
from medviewer.render.overlays.corners import CornerAnnotations
from medviewer.render.overlays.labels import LabelOverlays
from medviewer.render.overlays.shapes import ShapeOverlays
from medviewer.render.vtk_util import lines_polydata_arrays, local_image, local_to_patient, vtk_matrix

#: Screen right and screen up, in LPS, for each view.
VIEW_AXES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "axial": ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
}

#: The direction a positive scroll (PgUp, Up, wheel forward) moves the slice, in LPS.
SCROLL_DIRECTION: dict[str, tuple[float, float, float]] = {
    "axial": (0.0, 0.0, 1.0),      # superior
    "coronal": (0.0, -1.0, 0.0),   # anterior
    "sagittal": (1.0, 0.0, 0.0),   # left
}


class SliceView:
    """One 2D view in ``render_window``; interactive when given its ``interactor``."""

    def __init__(self, document: Document, orientation: str, render_window, interactor=None,
                 request_render: Callable[[], None] | None = None,
                 on_hover: Callable[[np.ndarray | None, float | None], None] | None = None) -> None:
        self.document = document
        self.orientation = orientation
        right, up = VIEW_AXES[orientation]
        self.right = np.asarray(right)
        self.up = np.asarray(up)
        self.normal = np.cross(self.right, self.up)
        self.scroll_direction = np.asarray(SCROLL_DIRECTION[orientation])
        self.render_window = render_window
        self.interactor = interactor
        self.request_render = request_render or self.render
        self.on_hover = on_hover
        self.center = np.zeros(3)       # patient point at plane coordinates (0, 0), offset 0
        self.offset = 0.0               # position of the slice along the normal (mm from center)
        self._reference: ImageLayer | None = None     # the grid: slicing, scrolling, labels
        self._volume: Volume | None = None             # its volume
        self._image_layer: ImageLayer | None = None    # the image drawn (Document.displayed_image)
        self._image_volume: Volume | None = None       # its volume, the image reslice's input
        #: An editing tool that takes the left button when set (see :meth:`_press_left`): an object
        #: with ``press(view, x, y, shift) -> bool``, ``drag(view, x, y)`` and ``release(view, x, y)``
        #: (display pixels, y from the bottom). None: the left button moves the crosshair.
        self.tool = None
        self.slab: tuple[str, float] | None = None   # (mode, thickness in mm), None: the slice alone
        self.show_crosshair = True
        self.show_annotations = True

        # VTK asks for 8x multisampling by default: on software GL (llvmpipe) that costs 5x a
        # frame, and flat image slices gain nothing from it
        render_window.SetMultiSamples(0)
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.0, 0.0, 0.0)
        self.renderer.GetActiveCamera().ParallelProjectionOn()
        # overlays lie in fixed layers (z offsets): plain alpha blending is right, and VTK's
        # order-independent transparency costs several full-window passes on software GL
        self.renderer.SetUseOIT(False)
        render_window.AddRenderer(self.renderer)

        self.reslice = self._make_reslice(linear=True)
        self.image_actor = vtkImageActor()
        self.image_actor.GetMapper().SetInputConnection(self.reslice.GetOutputPort())
        # Draw each voxel's full width: without the border the outer half voxels are cut, and a
        # single slice seen from the side (one row) has no height at all.
        self.image_actor.GetMapper().BorderOn()
        self.image_actor.GetProperty().SetInterpolationTypeToLinear()
        self.image_actor.VisibilityOff()
        self.renderer.AddViewProp(self.image_actor)

        # what is drawn over the image, one object per kind (render/overlays/)
        self.labels = LabelOverlays(self)
        self.shapes = ShapeOverlays(self)
        self.corners = CornerAnnotations(self)
        # the names the view's tests and tools know them by
        self._labels, self._outlines, self._boxes = self.labels.layers, self.labels.outlines, self.shapes.layers
        self._letters, self._title, self._scale_actor = self.corners.letters, self.corners.title, self.corners.scale_actor

        # an outline being drawn (the segment editor's scissors), closed back to its start
        self._sketch_data = vtkPolyData()
        self._sketch_actor = line_actor(self.renderer, self._sketch_data, (1.0, 1.0, 1.0), z=0.45, width=2.0)
        self._sketch_actor.VisibilityOff()

        self._cross_data = vtkPolyData()
        self._cross_actor = line_actor(self.renderer, self._cross_data, (0.2, 0.8, 1.0), z=0.5, width=1.0)
        self._cross_actor.GetProperty().SetOpacity(0.7)
        self._set_annotations_visible(False)

        self._handlers = document.events.connect_all([
            ("layer_added", self._on_layer_added), ("layer_removed", self._on_layer_removed),
            ("layer_changed", self._on_layer_changed), ("cursor_changed", self._on_cursor_changed),
        ])
        for layer in document.layers:
            self._on_layer_added(layer)
        if interactor is not None:
            self._install_interaction(interactor)

    # ---- life cycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop following the document (call before dropping the view)."""
        self.document.events.disconnect_all(self._handlers)
        self._handlers = []

    def render(self) -> None:
        self.render_window.Render()

    # ---- building blocks ----------------------------------------------------------------------
    def _make_reslice(self, linear: bool) -> vtkImageReslice:
        r = vtkImageReslice()
        r.SetOutputDimensionality(2)
        r.SetInterpolationModeToLinear() if linear else r.SetInterpolationModeToNearestNeighbor()
        r.SetBackgroundLevel(-1024.0 if linear else 0.0)
        r.AutoCropOutputOff()
        r.TransformInputSamplingOff()
        return r

    def _set_annotations_visible(self, on: bool) -> None:
        self.corners.show = self.show_annotations
        self.corners.set_visible(on)
        self._cross_actor.SetVisibility(on and self.show_crosshair)

    def set_overlays(self, crosshair: bool | None = None, annotations: bool | None = None,
                     identity: bool | None = None) -> None:
        """Show or hide the crosshair lines, the annotations (orientation letters, corner texts,
        readout, scale bar), and within them the patient's identity (name, ID, birth date, sex,
        study date), e.g. for a screenshot that must carry none. The crosshair still links the
        views while hidden; a derived image says so whatever is hidden."""
        if crosshair is not None:
            self.show_crosshair = bool(crosshair)
        if annotations is not None:
            self.show_annotations = bool(annotations)
        if identity is not None:
            self.corners.set_identity(identity)
        self._set_annotations_visible(self._volume is not None)
        self.request_render()

    @property
    def show_identity(self) -> bool:
        return self.corners.identity

    # ---- geometry -----------------------------------------------------------------------------
    def plane_origin(self) -> np.ndarray:
        return self.center + self.offset * self.normal

    def plane_to_patient(self, u: float, v: float) -> np.ndarray:
        """Plane coordinates (mm, of the current slice) -> LPS mm."""
        return self.plane_origin() + u * self.right + v * self.up

    def patient_to_plane(self, p) -> tuple[float, float, float]:
        """LPS mm -> (u, v, distance from the centre along the normal)."""
        d = np.asarray(p, dtype=float) - self.center
        return float(d @ self.right), float(d @ self.up), float(d @ self.normal)

    def _normal_axis(self, volume: Volume) -> tuple[int, float]:
        """The index axis (x=0, y=1, z=2) closest to the view normal, and the sign of the
        scroll direction along it."""
        dots = volume.direction.T @ self.scroll_direction
        axis = int(np.argmax(np.abs(dots)))
        return axis, (1.0 if dots[axis] > 0 else -1.0)

    def _setup_geometry(self, volume: Volume) -> None:
        """Output grid of the reslices: covers the volume's projection onto the view plane."""
        size = np.asarray(volume.size_xyz)
        corners = np.array([[i, j, k] for i in (0, size[0] - 1) for j in (0, size[1] - 1)
                            for k in (0, size[2] - 1)], dtype=float)
        pts = volume.index_to_patient(corners)
        self.center = volume.index_to_patient((size - 1) / 2.0)
        d = pts - self.center
        u, v = d @ self.right, d @ self.up
        dots_r = np.abs(volume.direction.T @ self.right)
        dots_u = np.abs(volume.direction.T @ self.up)
        su = volume.spacing[int(np.argmax(dots_r))]
        sv = volume.spacing[int(np.argmax(dots_u))]
        nu = int(round((u.max() - u.min()) / su)) + 1
        nv = int(round((v.max() - v.min()) / sv)) + 1
        self._extent = (0, nu - 1, 0, nv - 1, 0, 0)
        self._origin2d = (float(u.min()), float(v.min()), 0.0)
        self._spacing2d = (float(su), float(sv), 1.0)
        self._bounds2d = (u.min(), u.max(), v.min(), v.max())
        for r in [self.reslice] + self.labels.reslices():
            self._configure_reslice(r)

    def _configure_reslice(self, r: vtkImageReslice) -> None:
        r.SetOutputExtent(*self._extent)
        r.SetOutputOrigin(*self._origin2d)
        r.SetOutputSpacing(*self._spacing2d)

    def _update_all_axes(self) -> None:
        """Put every reslice on the current plane (each through its own volume's frame)."""
        if self._volume is None:
            return
        self._update_axes(self.reslice, self._image_volume)
        self.labels.update_axes()

    def _update_axes(self, r: vtkImageReslice, volume: Volume | None) -> None:
        if volume is None or self._volume is None:
            return
        # plane frame (u, v, n) -> patient -> local frame of the volume's vtkImageData
        plane = np.eye(4)
        plane[:3, 0], plane[:3, 1], plane[:3, 2] = self.right, self.up, self.normal
        plane[:3, 3] = self.plane_origin()
        m = np.linalg.inv(local_to_patient(volume)) @ plane
        r.SetResliceAxes(vtk_matrix(m))

    # ---- document events ----------------------------------------------------------------------
    def _on_layer_added(self, layer: Layer) -> None:
        if isinstance(layer, ImageLayer):
            self._sync_images()
        elif isinstance(layer, LabelLayer):
            self.labels.add(layer)
        elif isinstance(layer, (BoxLayer, RulerLayer)):
            self.shapes.add(layer)
        self.request_render()

    def _on_layer_removed(self, layer: Layer) -> None:
        if isinstance(layer, ImageLayer):
            self._sync_images()
        elif not self.labels.remove(layer):
            self.shapes.remove(layer)
        self.request_render()

    def _on_layer_changed(self, layer: Layer, changed: set) -> None:
        if isinstance(layer, ImageLayer) and changed & {"visible", "volume"}:
            self._sync_images()
        elif layer is self._image_layer:
            self._apply_image_props()
        elif layer.id in self.labels.layers:
            self.labels.changed(layer, changed)
        elif layer.id in self.shapes.layers:
            self.shapes.apply(layer)
            self.shapes.update(layer)
        else:
            return
        self.request_render()

    def _on_cursor_changed(self, point: np.ndarray) -> None:
        if self._volume is None:
            return
        _, _, n = self.patient_to_plane(point)
        if abs(n - self.offset) > 1e-6:
            self.offset = n
            self._update_all_axes()
            self.shapes.update_all()
        self._update_crosshair(point)
        self._update_title()
        self.request_render()

    # ---- layers -------------------------------------------------------------------------------
    def _sync_images(self) -> None:
        """Follow the Document's reference image (the grid) and displayed image (what is drawn).
        A new grid re-lays the slice (and fits the camera when the grid differs); a new displayed
        image only changes what the image reslice reads, so camera, slice and crosshair stay."""
        reference, shown = self.document.image, self.document.displayed_image
        if reference is None or shown is None:
            self._reference = self._image_layer = None
            self._volume = self._image_volume = None
            self.image_actor.VisibilityOff()
            self._set_annotations_visible(False)
            self.shapes.update_all()
            return
        if reference is not self._reference or reference.volume is not self._volume:
            old = self._volume
            self._reference, self._volume = reference, reference.volume
            self._setup_geometry(reference.volume)
            _, _, self.offset = self.patient_to_plane(self.document.cursor)
            self._set_annotations_visible(True)
            self.corners.update_letters()
            self._update_crosshair(self.document.cursor)
            self.shapes.update_all()
            if old is None or not old.same_grid(reference.volume):
                self.reset_camera()
        if shown is not self._image_layer or shown.volume is not self._image_volume:
            self._image_layer, self._image_volume = shown, shown.volume
            self.reslice.SetInputData(local_image(shown.volume))
        self._update_all_axes()
        self._apply_image_props()
        self._update_title()

    def box_captions(self, layer: BoxLayer) -> list[tuple[str, tuple[float, float, float]]]:
        """The captions shown for ``layer`` on the current slice: (text, anchor in LPS mm)."""
        return self.shapes.captions(layer)

    @property
    def displayed_layer(self) -> ImageLayer | None:
        """The image layer this view draws (None without images)."""
        return self._image_layer

    def _apply_image_props(self) -> None:
        layer = self._image_layer
        if layer is None:
            return
        prop = self.image_actor.GetProperty()
        prop.SetColorWindow(layer.window)
        prop.SetColorLevel(layer.level)
        prop.SetOpacity(layer.opacity)
        self.image_actor.SetVisibility(layer.visible)
        self.corners.update_text()

    def set_sketch(self, points_mm=None) -> None:
        """Draw a closed outline through ``points_mm`` (LPS mm, on this slice) in white; None
        removes it."""
        if points_mm is None or len(points_mm) < 2:
            self._sketch_actor.VisibilityOff()
        else:
            d = np.asarray(points_mm, dtype=float).reshape(-1, 3) - self.center
            n = len(d)
            pts, cells = lines_polydata_arrays(np.c_[d @ self.right, d @ self.up, np.zeros(n)],
                                               np.c_[np.arange(n), (np.arange(n) + 1) % n])
            self._sketch_data.SetPoints(pts)
            self._sketch_data.SetLines(cells)
            self._sketch_data.Modified()
            self._sketch_actor.VisibilityOn()
        self.request_render()

    @property
    def slice_axis(self) -> int | None:
        """The index axis (x=0, y=1, z=2) across which this view cuts the image, None without one."""
        return None if self._volume is None else self._normal_axis(self._volume)[0]

    def on_slice(self, point) -> bool:
        """Whether ``point`` (LPS mm) lies on the slice shown (within half a voxel of its plane)."""
        return self._volume is not None and abs(self.patient_to_plane(point)[2] - self.offset) <= self._half_slab()

    def _half_slab(self) -> float:
        if self._volume is None:
            return 0.0
        axis, _ = self._normal_axis(self._volume)
        return self._volume.spacing[axis] / 2.0

    # ---- annotations --------------------------------------------------------------------------
    def _update_crosshair(self, point) -> None:
        if self._volume is None:
            return
        u, v, _ = self.patient_to_plane(point)
        u0, u1, v0, v1 = self._bounds2d
        corners = [(u0, v, 0.0), (u1, v, 0.0), (u, v0, 0.0), (u, v1, 0.0)]
        pts = self._cross_data.GetPoints()
        if pts is None:  # built once; later moves only change the 4 points
            pts, cells = lines_polydata_arrays(np.array(corners, dtype=float), np.array([(0, 1), (2, 3)]))
            self._cross_data.SetPoints(pts)
            self._cross_data.SetLines(cells)
        else:
            for i, p in enumerate(corners):
                pts.SetPoint(i, p)
            pts.Modified()
        self._cross_data.Modified()

    def slice_index(self) -> tuple[int, int]:
        """(current slice number from 1, number of slices) along the view normal."""
        volume = self._volume
        if volume is None:
            return (0, 0)
        axis, _ = self._normal_axis(volume)
        ijk = volume.patient_to_index(self.plane_origin())
        return int(round(ijk[axis])) + 1, volume.size_xyz[axis]

    def _update_title(self) -> None:
        self.corners.update_text()

    def slab_caption(self) -> str:
        """The slab drawn, in words (``MIP 10 mm``); empty for the slice alone."""
        return f"{SLAB_MODES[self.slab[0]][0]} {self.slab[1]:g} mm" if self.slab else ""

    def set_slab(self, mode: str | None, thickness_mm: float = 10.0) -> None:
        """Draw the image as a slab of ``thickness_mm`` centred on the slice: ``mode`` "max" (MIP),
        "min" (MinIP) or "mean"; None (or a thickness under 2 mm) draws the slice alone. The slab
        is sampled every millimetre across the slice (the reslice's output spacing)."""
        if mode is not None and mode not in SLAB_MODES:
            raise ValueError(f"unknown slab mode {mode!r}: one of {', '.join(SLAB_MODES)}")
        samples = int(round(thickness_mm)) if mode else 1
        self.slab = (mode, float(thickness_mm)) if mode and samples >= 2 else None
        r = self.reslice
        r.SetSlabNumberOfSlices(samples if self.slab else 1)
        getattr(r, SLAB_MODES[mode][1] if self.slab else "SetSlabModeToMean")()
        r.SetSlabSliceSpacingFraction(1.0)   # of the output's 1 mm spacing across the slice
        r.Modified()
        self._update_title()
        self.request_render()

    # ---- camera -------------------------------------------------------------------------------
    def reset_camera(self) -> None:
        """Fit the whole slice in the view, patient-up at the top."""
        if self._volume is None:
            return
        u0, u1, v0, v1 = self._bounds2d
        cam = self.renderer.GetActiveCamera()
        cu, cv = (u0 + u1) / 2, (v0 + v1) / 2
        cam.SetFocalPoint(cu, cv, 0)
        cam.SetPosition(cu, cv, 1000.0)
        cam.SetViewUp(0, 1, 0)
        w, h = self.renderer.GetSize()
        aspect = (w / h) if w > 0 and h > 0 else 1.0
        half_h = (v1 - v0) / 2 + 1
        half_w = (u1 - u0) / 2 + 1
        cam.SetParallelScale(max(half_h, half_w / aspect) * 1.05)
        cam.SetClippingRange(1.0, 2000.0)

    def zoom(self, factor: float) -> None:
        cam = self.renderer.GetActiveCamera()
        cam.SetParallelScale(cam.GetParallelScale() / factor)
        self.request_render()

    def pan(self, du: float, dv: float) -> None:
        cam = self.renderer.GetActiveCamera()
        fx, fy, fz = cam.GetFocalPoint()
        px, py, pz = cam.GetPosition()
        cam.SetFocalPoint(fx - du, fy - dv, fz)
        cam.SetPosition(px - du, py - dv, pz)
        self.request_render()

    # ---- slices -------------------------------------------------------------------------------
    def scroll(self, steps: int) -> None:
        """Move the cursor ``steps`` slices through the view (positive: superior for axial,
        anterior for coronal, patient left for sagittal)."""
        volume = self._volume
        if volume is None or steps == 0:
            return
        axis, sign = self._normal_axis(volume)
        ijk = volume.patient_to_index(self.document.cursor)
        ijk[axis] = np.clip(round(ijk[axis]) + sign * steps, 0, volume.size_xyz[axis] - 1)
        self.document.set_cursor(volume.index_to_patient(ijk))

    # ---- picking ------------------------------------------------------------------------------
    def display_to_plane(self, x: float, y: float) -> tuple[float, float]:
        ren = self.renderer
        ren.SetDisplayPoint(x, y, 0)
        ren.DisplayToWorld()
        wx, wy, _, ww = ren.GetWorldPoint()
        if ww:
            wx, wy = wx / ww, wy / ww
        return wx, wy

    def display_to_patient(self, x: float, y: float) -> np.ndarray:
        return self.plane_to_patient(*self.display_to_plane(x, y))

    def patient_to_display(self, p) -> tuple[float, float]:
        """LPS mm -> display pixel (x from the left, y from the bottom) of this view."""
        u, v, _ = self.patient_to_plane(p)
        ren = self.renderer
        ren.SetWorldPoint(u, v, 0, 1)
        ren.WorldToDisplay()
        x, y, _ = ren.GetDisplayPoint()
        return x, y

    def hover(self, x: float, y: float) -> None:
        """Show the value and patient coordinates under display pixel (x, y)."""
        if self._volume is None:
            return
        p = self.display_to_patient(x, y)
        value = self.document.value_at(p, self._image_layer)
        if value is None:
            self.corners.set_readout("")
        else:
            self.corners.set_readout(f"{value:.0f} HU\n({p[0]:.1f}, {p[1]:.1f}, {p[2]:.1f}) mm LPS")
        if self.on_hover is not None:
            self.on_hover(p if value is not None else None, value)
        self.request_render()

    # ---- interaction --------------------------------------------------------------------------
    def _install_interaction(self, iren) -> None:
        iren.SetInteractorStyle(None)
        self._drag: str | None = None
        self._last = (0, 0)
        self._moved = False
        for event, cb in (("LeftButtonPressEvent", self._press_left), ("LeftButtonReleaseEvent", self._release),
                          ("MiddleButtonPressEvent", self._press_middle), ("MiddleButtonReleaseEvent", self._release),
                          ("RightButtonPressEvent", self._press_right), ("RightButtonReleaseEvent", self._release),
                          ("MouseMoveEvent", self._move), ("MouseWheelForwardEvent", self._wheel_forward),
                          ("MouseWheelBackwardEvent", self._wheel_backward), ("KeyPressEvent", self._key)):
            iren.AddObserver(event, cb)

    def _press_left(self, iren, _event) -> None:
        self._last = iren.GetEventPosition()
        if self.tool is not None and self._volume is not None and \
                self.tool.press(self, *self._last, shift=bool(iren.GetShiftKey())):
            self._drag = "tool"
        elif iren.GetShiftKey():
            self._drag = "pan"
        elif iren.GetControlKey():
            self._drag = "zoom"
        elif iren.GetAltKey():
            self._drag = "scroll"
        else:
            self._drag = "cursor"
            self._set_cursor_at(*self._last)

    def _press_middle(self, iren, _event) -> None:
        self._last = iren.GetEventPosition()
        self._drag = "pan"

    def _press_right(self, iren, _event) -> None:
        self._last = iren.GetEventPosition()
        if iren.GetControlKey():
            self._drag = "zoom"
        elif iren.GetShiftKey():
            self._drag = "scroll"
        else:
            self._drag = "window"

    def _release(self, iren, _event) -> None:
        if self._drag == "tool" and self.tool is not None:
            self.tool.release(self, *iren.GetEventPosition())
        self._drag = None

    def _set_cursor_at(self, x, y) -> None:
        if self._volume is None:
            return
        p = self.display_to_patient(x, y)
        self.document.set_cursor(p)

    def _move(self, iren, _event) -> None:
        x, y = iren.GetEventPosition()
        lx, ly = self._last
        dx, dy = x - lx, y - ly
        drag = self._drag
        if drag == "cursor":
            self._set_cursor_at(x, y)
        elif drag == "tool" and self.tool is not None:
            self.tool.drag(self, x, y)
        elif drag == "pan":
            (u0, v0), (u1, v1) = self.display_to_plane(lx, ly), self.display_to_plane(x, y)
            self.pan(u1 - u0, v1 - v0)
        elif drag == "zoom":
            self.zoom(1.01 ** dy)
        elif drag == "scroll":
            steps = int(dy / 4)
            if steps:
                self.scroll(steps)
            else:
                return  # accumulate until a whole slice
        elif drag == "window" and self._image_layer is not None:
            layer = self._image_layer
            scale = max(1.0, layer.window) / 200.0
            self.document.update_layer(layer, window=max(1.0, layer.window + dx * scale),
                                       level=layer.level - dy * scale)
        self._last = (x, y)
        self.hover(x, y)

    def _wheel_forward(self, iren, _event) -> None:
        if iren.GetControlKey():
            self.zoom(1.1)
        else:
            self.scroll(1)

    def _wheel_backward(self, iren, _event) -> None:
        if iren.GetControlKey():
            self.zoom(1 / 1.1)
        else:
            self.scroll(-1)

    def _key(self, iren, _event) -> None:
        key = iren.GetKeySym() or ""
        steps = {"Prior": 1, "Next": -1, "Up": 1, "Down": -1, "Right": 1, "Left": -1}.get(key)
        if steps is not None:
            big = 10 if iren.GetShiftKey() else 1
            self.scroll(steps * big)
        elif key.lower() == "r":
            self.reset_camera()
            self.request_render()
        elif key in ("Delete", "BackSpace") and self.tool is not None and hasattr(self.tool, "delete_selected"):
            self.tool.delete_selected()


#: slab modes: their caption and the vtkImageReslice call that sets them
SLAB_MODES = {"max": ("MIP", "SetSlabModeToMax"), "min": ("MinIP", "SetSlabModeToMin"),
              "mean": ("Mean", "SetSlabModeToMean")}
