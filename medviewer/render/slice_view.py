"""A 2D view: one axial, coronal or sagittal slice of the Document, resliced in patient space.

Screen conventions (radiological): axial shows the patient's right on the screen's left and
anterior at the top; coronal shows right on the left and superior at the top; sagittal shows
anterior on the left and superior at the top. The reslice works in patient LPS mm, whatever
the volume's direction matrix, so oblique or flipped grids show the right way up.

Images: the view slices and scrolls on the reference image's grid (``Document.image``, where the
label layers live) and draws the displayed image (``Document.displayed_image``: the topmost
visible image layer), resliced through the same plane; switching the displayed image keeps the
camera, the slice and the crosshair. Window/level dragging acts on the displayed image. Boxes are
drawn as rectangles with a caption (label and score) where they cross the slice.

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

import math
from typing import Callable

import numpy as np
from vtkmodules.vtkCommonCore import vtkLookupTable, vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkSurfaceNets2D
from vtkmodules.vtkImagingCore import vtkImageReslice
from vtkmodules.vtkRenderingCore import (
    vtkActor, vtkActor2D, vtkImageActor, vtkPolyDataMapper, vtkPolyDataMapper2D, vtkRenderer,
    vtkTextActor,
)
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (the OpenGL backend)
import vtkmodules.vtkRenderingFreeType  # noqa: F401  (text)
import vtkmodules.vtkInteractionStyle  # noqa: F401

from medviewer.core.document import BoxLayer, Document, ImageLayer, LabelLayer, Layer, RulerLayer
from medviewer.core.volume import Volume
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

_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))
# Width of a segment's outline on the slices, in screen pixels.
OUTLINE_WIDTH = 2.0


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

        self._labels: dict[int, tuple[LabelLayer, vtkImageReslice, vtkImageActor]] = {}
        # Each label layer's outline on the slice (as Slicer draws a segment: a translucent fill
        # and an opaque outline, so that the CT at the segment's edge stays visible).
        self._outlines: dict[int, tuple[vtkSurfaceNets2D, vtkActor]] = {}
        #: per box layer: the layer, its rectangles, their actor, and a pool of caption actors
        self._boxes: dict[int, tuple[BoxLayer, vtkPolyData, vtkActor, list[vtkTextActor]]] = {}

        # an outline being drawn (the segment editor's scissors), closed back to its start
        self._sketch_data = vtkPolyData()
        self._sketch_actor = self._line_actor(self._sketch_data, (1.0, 1.0, 1.0), z=0.45, width=2.0)
        self._sketch_actor.VisibilityOff()

        self._cross_data = vtkPolyData()
        self._cross_actor = self._line_actor(self._cross_data, (0.2, 0.8, 1.0), z=0.5, width=1.0)
        self._cross_actor.GetProperty().SetOpacity(0.7)

        self._letters = {}
        for key, pos, just in (("left", (0.01, 0.5), (0, 1)), ("right", (0.99, 0.5), (2, 1)),
                               ("top", (0.5, 0.99), (1, 2)), ("bottom", (0.5, 0.01), (1, 0))):
            t = self._text(pos, just, size=16, color=(1.0, 0.85, 0.3))
            self._letters[key] = t
        self._title = self._text((0.01, 0.99), (0, 2), size=13, color=(0.9, 0.9, 0.9))
        self._wl_text = self._text((0.01, 0.01), (0, 0), size=12, color=(0.9, 0.9, 0.9))
        self._readout = self._text((0.99, 0.99), (2, 2), size=12, color=(0.9, 0.9, 0.9))
        self._scale_points = vtkPoints()
        self._scale_data = vtkPolyData()
        self._scale_label = self._text((0.99, 0.06), (2, 0), size=11, color=(0.9, 0.9, 0.9))
        self._scale_actor = self._scale_bar_actor()
        self.renderer.AddObserver("StartEvent", lambda *_: self._update_scale_bar())
        self._caption_anchors: dict[int, tuple[float, float]] = {}   # id(text actor) -> (u, v) asked for
        self.renderer.AddObserver("StartEvent", lambda *_: self._fit_captions())
        self.renderer.AddObserver("StartEvent", lambda *_: self._fit_top_letter())
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

    def _line_actor(self, data: vtkPolyData, color, z: float, width: float) -> vtkActor:
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(data)
        actor = vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*color)
        actor.GetProperty().SetLineWidth(width)
        actor.GetProperty().LightingOff()
        actor.SetPosition(0, 0, z)
        actor.PickableOff()
        self.renderer.AddActor(actor)
        return actor

    def _text(self, pos, justification, size: int, color) -> vtkTextActor:
        t = vtkTextActor()
        t.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
        t.SetPosition(*pos)
        prop = t.GetTextProperty()
        prop.SetFontSize(size)
        prop.SetColor(*color)
        prop.SetJustification(justification[0])
        prop.SetVerticalJustification(justification[1])
        prop.ShadowOn()
        self.renderer.AddViewProp(t)
        return t

    def _scale_bar_actor(self) -> vtkActor2D:
        self._scale_data.SetPoints(self._scale_points)
        mapper = vtkPolyDataMapper2D()
        mapper.SetInputData(self._scale_data)
        actor = vtkActor2D()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(0.9, 0.9, 0.9)
        actor.GetProperty().SetLineWidth(2)
        self.renderer.AddViewProp(actor)
        return actor

    def _set_annotations_visible(self, on: bool) -> None:
        for t in (*self._letters.values(), self._title, self._wl_text, self._readout,
                  self._scale_label, self._scale_actor):
            t.SetVisibility(on and self.show_annotations)
        self._cross_actor.SetVisibility(on and self.show_crosshair)

    def set_overlays(self, crosshair: bool | None = None, annotations: bool | None = None) -> None:
        """Show or hide the crosshair lines, and the annotations (orientation letters, slice
        title, window/level, readout, scale bar), e.g. for a clean screenshot. The crosshair
        still links the views while hidden."""
        if crosshair is not None:
            self.show_crosshair = bool(crosshair)
        if annotations is not None:
            self.show_annotations = bool(annotations)
        self._set_annotations_visible(self._volume is not None)
        self.request_render()

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
        for r in [self.reslice] + [entry[1] for entry in self._labels.values()]:
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
        for layer, r, _ in self._labels.values():
            self._update_axes(r, layer.volume)

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
            self._add_label(layer)
        elif isinstance(layer, (BoxLayer, RulerLayer)):
            self._add_boxes(layer)
        self.request_render()

    def _on_layer_removed(self, layer: Layer) -> None:
        if isinstance(layer, ImageLayer):
            self._sync_images()
        elif layer.id in self._labels:
            _, _, actor = self._labels.pop(layer.id)
            self.renderer.RemoveViewProp(actor)
            self.renderer.RemoveActor(self._outlines.pop(layer.id)[1])
        elif layer.id in self._boxes:
            _, _, actor, texts = self._boxes.pop(layer.id)
            self.renderer.RemoveActor(actor)
            for t in texts:
                self.renderer.RemoveViewProp(t)
        self.request_render()

    def _on_layer_changed(self, layer: Layer, changed: set) -> None:
        if isinstance(layer, ImageLayer) and changed & {"visible", "volume"}:
            self._sync_images()
        elif layer is self._image_layer:
            self._apply_image_props()
        elif layer.id in self._labels:
            if "volume" in changed:
                _, r, _ = self._labels[layer.id]
                r.SetInputData(local_image(layer.volume))
            self._apply_label_props(layer)
        elif layer.id in self._boxes:
            self._apply_box_props(layer)
            self._update_boxes(layer)
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
            for layer, *_ in self._boxes.values():
                self._update_boxes(layer)
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
            for layer, *_ in self._boxes.values():
                self._update_boxes(layer)
            return
        if reference is not self._reference or reference.volume is not self._volume:
            old = self._volume
            self._reference, self._volume = reference, reference.volume
            self._setup_geometry(reference.volume)
            _, _, self.offset = self.patient_to_plane(self.document.cursor)
            self._set_annotations_visible(True)
            self._update_letters()
            self._update_crosshair(self.document.cursor)
            self._update_title()
            for layer, *_ in self._boxes.values():
                self._update_boxes(layer)
            if old is None or not old.same_grid(reference.volume):
                self.reset_camera()
        if shown is not self._image_layer or shown.volume is not self._image_volume:
            self._image_layer, self._image_volume = shown, shown.volume
            self.reslice.SetInputData(local_image(shown.volume))
        self._update_all_axes()
        self._apply_image_props()

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
        self._wl_text.SetInput(f"W {layer.window:.0f}  L {layer.level:.0f}")

    def _add_label(self, layer: LabelLayer) -> None:
        r = self._make_reslice(linear=False)
        r.SetInputData(local_image(layer.volume))
        actor = vtkImageActor()
        actor.GetMapper().SetInputConnection(r.GetOutputPort())
        actor.GetMapper().BorderOn()
        actor.GetProperty().SetInterpolationTypeToNearest()
        actor.GetProperty().UseLookupTableScalarRangeOn()
        actor.SetPosition(0, 0, 0.1 * (1 + len(self._labels)))
        self.renderer.AddViewProp(actor)
        self._labels[layer.id] = (layer, r, actor)
        # The boundaries between label values on the slice, along the pixels' edges; each line
        # carries the two labels it separates (the segment's first), and is coloured by it.
        outline = vtkSurfaceNets2D()
        outline.SetInputConnection(r.GetOutputPort())
        outline.SetBackgroundLabel(0)
        outline.SmoothingOff()
        mapper = vtkPolyDataMapper()
        mapper.SetInputConnection(outline.GetOutputPort())
        mapper.SetScalarModeToUseCellFieldData()
        mapper.ColorByArrayComponent("BoundaryLabels", 0)
        mapper.SetColorModeToMapScalars()
        mapper.UseLookupTableScalarRangeOn()
        line = vtkActor()
        line.SetMapper(mapper)
        line.GetProperty().SetLineWidth(OUTLINE_WIDTH)
        line.GetProperty().LightingOff()
        line.SetPosition(0, 0, 0.1 * len(self._labels) + 0.05)   # just above its fill
        line.PickableOff()
        self.renderer.AddActor(line)
        self._outlines[layer.id] = (outline, line)
        if self._volume is not None:
            self._configure_reslice(r)
            self._update_axes(r, layer.volume)
        self._apply_label_props(layer)

    def _apply_label_props(self, layer: LabelLayer) -> None:
        _, _, actor = self._labels[layer.id]
        lut = label_lookup_table(layer)
        actor.GetProperty().SetLookupTable(lut)
        actor.GetProperty().SetOpacity(layer.opacity)
        actor.SetVisibility(layer.visible)
        outline, line = self._outlines[layer.id]
        top = lut.GetNumberOfTableValues() - 1
        outline.GenerateLabels(top, 1, top)
        line.GetMapper().SetLookupTable(lut)
        # opaque at the default fill of 0.5; a fill made fainter fades its outline along
        line.GetProperty().SetOpacity(min(1.0, 2.0 * layer.opacity))
        line.SetVisibility(layer.visible and layer.opacity > 0)

    def _add_boxes(self, layer: BoxLayer) -> None:
        data = vtkPolyData()
        actor = self._line_actor(data, layer.color, z=0.4, width=2.0)
        self._boxes[layer.id] = (layer, data, actor, [])
        self._apply_box_props(layer)
        self._update_boxes(layer)

    def _apply_box_props(self, layer: BoxLayer) -> None:
        _, _, actor, texts = self._boxes[layer.id]
        actor.GetProperty().SetColor(*layer.color)
        actor.GetProperty().SetOpacity(layer.opacity)
        actor.SetVisibility(layer.visible)
        for t in texts:
            self._style_caption(t, layer)

    def _style_caption(self, t: vtkTextActor, layer: BoxLayer) -> None:
        prop = t.GetTextProperty()
        prop.SetColor(*layer.color)
        prop.SetOpacity(layer.opacity)

    def _caption_actor(self, layer: BoxLayer) -> vtkTextActor:
        """A caption for a box: anchored at a patient-plane point (world coordinates), text
        left-aligned and sitting on it (drawn above the rectangle's top-left corner)."""
        t = vtkTextActor()
        t.GetPositionCoordinate().SetCoordinateSystemToWorld()
        prop = t.GetTextProperty()
        prop.SetFontSize(12)
        # a box's caption starts at its top-left corner; a ruler's is centred over it
        prop.SetJustificationToCentered() if isinstance(layer, RulerLayer) else prop.SetJustificationToLeft()
        prop.SetVerticalJustificationToBottom()
        prop.ShadowOn()
        t.PickableOff()
        self._style_caption(t, layer)
        self.renderer.AddViewProp(t)
        return t

    def box_captions(self, layer: BoxLayer) -> list[tuple[str, tuple[float, float, float]]]:
        """The captions shown for ``layer`` on the current slice: (text, anchor in LPS mm)."""
        _, _, _, texts = self._boxes[layer.id]
        out = []
        for t in texts:
            if t.GetVisibility():
                u, v, _ = t.GetPositionCoordinate().GetValue()
                out.append((t.GetInput(), tuple(float(c) for c in self.plane_to_patient(u, v))))
        return out

    def _update_boxes(self, layer: BoxLayer | RulerLayer) -> None:
        """Rectangles of the boxes that the current slice crosses, each with its caption; or the
        rulers, ellipses and bidirectional measurements that lie on the current slice, each with its
        caption centred above it."""
        _, data, _, texts = self._boxes[layer.id]
        if isinstance(layer, RulerLayer):
            points, segments, captions = self._ruler_lines(layer)
        else:
            points, segments, captions = self._box_lines(layer)
        while len(texts) < len(captions):
            texts.append(self._caption_actor(layer))
        for i, t in enumerate(texts):
            if i < len(captions):
                text, u, v = captions[i]
                t.SetInput(text)
                t.GetPositionCoordinate().SetValue(u, v, 0.4)
                self._caption_anchors[id(t)] = (u, v)
            t.SetVisibility(layer.visible and i < len(captions))
        pts, cells = lines_polydata_arrays(np.asarray(points, dtype=float).reshape(-1, 3),
                                           np.asarray(segments, dtype=np.int64).reshape(-1, 2))
        data.SetPoints(pts)
        data.SetLines(cells)
        data.Modified()

    def _fit_captions(self) -> None:
        """Shift each measurement's caption sideways, as each frame starts, so that all of
        it stays inside the view: centred over a measurement near the view's edge (a caption of
        three lines is wide), it would be cut off."""
        w, h = self.renderer.GetSize()
        if w <= 0 or h <= 0:
            return
        mm_per_px = 2.0 * self.renderer.GetActiveCamera().GetParallelScale() / h
        box = [0.0] * 4
        for layer, _, _, texts in self._boxes.values():
            if not isinstance(layer, RulerLayer):
                continue
            for t in texts:
                anchor = self._caption_anchors.get(id(t))
                if anchor is None or not t.GetVisibility():
                    continue
                self.renderer.SetWorldPoint(anchor[0], anchor[1], 0.4, 1.0)
                self.renderer.WorldToDisplay()
                x = self.renderer.GetDisplayPoint()[0]
                t.GetBoundingBox(self.renderer, box)
                width = box[1] - box[0]
                left = x - width / 2   # centred
                shift = max(0.0, 2 - left) if left < 2 or width > w - 4 else min(0.0, w - 2 - (left + width))
                t.GetPositionCoordinate().SetValue(anchor[0] + shift * mm_per_px, anchor[1], 0.4)

    def _fit_top_letter(self) -> None:
        """In a view too narrow for the slice title (top left) and the top orientation letter
        (top centre) side by side, put the letter just below the title, as each frame starts."""
        w, h = self.renderer.GetSize()
        letter = self._letters["top"]
        if w <= 0 or h <= 0 or not letter.GetVisibility():
            return
        title, mine = [0.0] * 4, [0.0] * 4   # each about its own anchor, in pixels
        self._title.GetBoundingBox(self.renderer, title)
        letter.GetBoundingBox(self.renderer, mine)
        (tx, ty), (lx, _) = self._title.GetPosition(), (0.5, 0.99)
        if self._title.GetVisibility() and tx * w + title[1] + 4 > lx * w + mine[0]:
            letter.SetPosition(lx, (ty * h + title[2] - 2) / h)
        else:
            letter.SetPosition(lx, 0.99)

    def _box_lines(self, layer: BoxLayer):
        half = self._half_slab()
        points, segments, captions = [], [], []
        for box in ([] if self._volume is None else layer.boxes):
            lo, hi = np.asarray(box.lower), np.asarray(box.upper)
            corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                                for z in (lo[2], hi[2])])
            d = corners - self.center
            n = d @ self.normal
            if not (n.min() - half <= self.offset <= n.max() + half):
                continue
            u, v = d @ self.right, d @ self.up
            base = len(points)
            points += [(u.min(), v.min(), 0), (u.max(), v.min(), 0), (u.max(), v.max(), 0),
                       (u.min(), v.max(), 0)]
            segments += [(base, base + 1), (base + 1, base + 2), (base + 2, base + 3), (base + 3, base)]
            text = box.caption
            if text:
                captions.append((text, float(u.min()), float(v.max())))
        return points, segments, captions

    def _ruler_lines(self, layer: RulerLayer):
        half = self._half_slab()
        points, segments, captions = [], [], []
        for ruler in ([] if self._volume is None else layer.rulers):
            ends = np.array([ruler.start, ruler.end]) - self.center
            if np.abs(ends @ self.normal - self.offset).max() > half:
                continue   # not on this slice
            u, v = ends @ self.right, ends @ self.up
            base = len(points)
            points += [(u[0], v[0], 0), (u[1], v[1], 0)]
            segments.append((base, base + 1))
            # a caliper's ticks across each end (RULER_TICK_MM either side)
            along = np.array([u[1] - u[0], v[1] - v[0]])
            if np.linalg.norm(along) > 0:
                across = np.array([-along[1], along[0]]) / np.linalg.norm(along) * RULER_TICK_MM
                for k in range(2):
                    points += [(u[k] - across[0], v[k] - across[1], 0), (u[k] + across[0], v[k] + across[1], 0)]
                    segments.append((len(points) - 2, len(points) - 1))
            if ruler.text:   # centred above the ruler's middle: on screen wherever the ruler is
                captions.append((ruler.text, float(u.mean()), float(v.max()) + 2.0))
        for ellipse in ([] if self._volume is None else layer.ellipses):
            if np.abs((ellipse.ends - self.center) @ self.normal - self.offset).max() > half:
                continue
            d = ellipse.outline() - self.center
            u, v = d @ self.right, d @ self.up
            base, n = len(points), len(d)
            points += [(a, b, 0) for a, b in zip(u, v)]
            segments += [(base + k, base + (k + 1) % n) for k in range(n)]
            if ellipse.text:   # centred above the ellipse
                captions.append((ellipse.text, float(u.mean()), float(v.max()) + 2.0))
        for cross in ([] if self._volume is None else layer.bidirectionals):
            d = cross.ends - self.center
            if np.abs(d @ self.normal - self.offset).max() > half:
                continue
            u, v = d @ self.right, d @ self.up
            base = len(points)
            points += [(a, b, 0) for a, b in zip(u, v)]
            segments += [(base, base + 1), (base + 2, base + 3)]
            if cross.text:
                captions.append((cross.text, float(u.mean()), float(v.max()) + 2.0))
        return points, segments, captions

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

    def _update_letters(self) -> None:
        self._letters["right"].SetInput(direction_letter(self.right))
        self._letters["left"].SetInput(direction_letter(-self.right))
        self._letters["top"].SetInput(direction_letter(self.up))
        self._letters["bottom"].SetInput(direction_letter(-self.up))

    def slice_index(self) -> tuple[int, int]:
        """(current slice number from 1, number of slices) along the view normal."""
        volume = self._volume
        if volume is None:
            return (0, 0)
        axis, _ = self._normal_axis(volume)
        ijk = volume.patient_to_index(self.plane_origin())
        return int(round(ijk[axis])) + 1, volume.size_xyz[axis]

    def _update_title(self) -> None:
        k, n = self.slice_index()
        slab = f"  {SLAB_MODES[self.slab[0]][0]} {self.slab[1]:g} mm" if self.slab else ""
        self._title.SetInput(f"{self.orientation.capitalize()}  {k}/{n}{slab}")

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

    def _update_scale_bar(self) -> None:
        if self._volume is None:
            return
        w, h = self.renderer.GetSize()
        if w <= 0 or h <= 0:
            return
        mm_per_px = 2.0 * self.renderer.GetActiveCamera().GetParallelScale() / h
        key = (w, h, round(mm_per_px, 9))
        if key == getattr(self, "_scale_key", None):
            return  # unchanged since the last frame
        self._scale_key = key
        length = nice_length(0.25 * w * mm_per_px)
        px = length / mm_per_px
        x1, y = w - 10, 0.04 * h
        x0 = x1 - px
        self._scale_points.SetNumberOfPoints(4)
        for i, p in enumerate([(x0, y, 0), (x1, y, 0), (x0, y + 5, 0), (x1, y + 5, 0)]):
            self._scale_points.SetPoint(i, p)
        self._scale_points.Modified()
        if self._scale_data.GetNumberOfLines() == 0:
            lines = vtkCellArray()
            for a, b in ((0, 1), (0, 2), (1, 3)):
                lines.InsertNextCell(2)
                lines.InsertCellPoint(a)
                lines.InsertCellPoint(b)
            self._scale_data.SetLines(lines)
        self._scale_data.Modified()
        self._scale_label.SetInput(f"{length:g} mm" if length < 10 or length % 10 else f"{length / 10:g} cm")
        self._scale_label.SetPosition(0.99, (y + 8) / h)

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
            self._readout.SetInput("")
        else:
            self._readout.SetInput(f"{value:.0f} HU\n({p[0]:.1f}, {p[1]:.1f}, {p[2]:.1f}) mm LPS")
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


#: half the length of the tick drawn across each end of a ruler (mm)
RULER_TICK_MM = 2.0
#: slab modes: their caption and the vtkImageReslice call that sets them
SLAB_MODES = {"max": ("MIP", "SetSlabModeToMax"), "min": ("MinIP", "SetSlabModeToMin"),
              "mean": ("Mean", "SetSlabModeToMean")}


def label_lookup_table(layer: LabelLayer) -> vtkLookupTable:
    """RGBA for label values 0..max (0 and hidden labels transparent), in the layer's colours."""
    top = max(1, int(layer.volume.array.max()))
    lut = vtkLookupTable()
    lut.SetNumberOfTableValues(top + 1)
    lut.SetTableRange(0, top)
    lut.SetTableValue(0, 0, 0, 0, 0)
    for v in range(1, top + 1):
        r, g, b = layer.color_of(v)
        lut.SetTableValue(v, r, g, b, 1.0 if layer.shows(v) else 0.0)
    lut.Build()
    return lut
