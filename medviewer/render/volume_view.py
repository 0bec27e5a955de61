"""The 3D view: volume rendering of the image with CT presets, label surfaces, boxes and
measurements (rulers, bidirectionals, ellipses), with their captions.

World coordinates are LPS mm. The camera starts anterior, looking posterior, superior up, so
the patient's right is on the screen's left (as in the coronal view).

The volume rendered is the Document's displayed image (``Document.displayed_image``: the topmost
visible image layer, else the reference image); switching to another image on the same grid
swaps the voxels and keeps the camera.

Volume rendering costs: on software OpenGL (llvmpipe, a remote desktop, Xvfb) one frame of a
chest CT takes 0.3 to 2 s, its first seconds more, all on the GUI thread (VTK is touched only
there). So it is off until asked for (:meth:`VolumeView.set_volume_rendering`, as 3D Slicer does
by default), built only while the view is shown (:meth:`VolumeView.set_active`), and drawn from a
copy of at most :data:`MAX_RENDER_VOXELS` voxels, thinned out
(:func:`reduced_for_rendering`: numpy only, which the window runs in a worker thread through the
``reduce`` callable). Segment surfaces, boxes and measurements are drawn always.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from vtkmodules.vtkCommonCore import vtkLookupTable
from vtkmodules.vtkCommonDataModel import vtkPiecewiseFunction, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkPolyDataNormals
from vtkmodules.vtkImagingCore import vtkImageShrink3D
from vtkmodules.vtkRenderingCore import (
    vtkActor, vtkBillboardTextActor3D, vtkColorTransferFunction, vtkPolyDataMapper, vtkRenderer, vtkTextActor,
    vtkVolume, vtkVolumeProperty,
)
from vtkmodules.vtkRenderingVolume import vtkFixedPointVolumeRayCastMapper
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401
import vtkmodules.vtkRenderingFreeType  # noqa: F401  (text)
import vtkmodules.vtkRenderingVolumeOpenGL2  # noqa: F401
import vtkmodules.vtkInteractionStyle  # noqa: F401
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera

from medviewer.core.document import BoxLayer, Document, ImageLayer, LabelLayer, Layer, RulerLayer
from medviewer.core.presets import DEFAULT_VOLUME_PRESET, VOLUME_PRESETS
from medviewer.render.surface import surface_nets
from medviewer.core.volume import Volume
from medviewer.render.vtk_util import lines_polydata_arrays, local_image, local_to_patient, vtk_matrix

#: the most voxels the volume rendering draws (a 512 x 512 x 300 CT of 0.8 x 0.8 x 1 mm: every
#: second pixel and every second slice)
MAX_RENDER_VOXELS = 8_000_000


def reduced_for_rendering(volume: Volume, max_voxels: int = MAX_RENDER_VOXELS) -> Volume:
    """``volume`` itself when small enough, else every f-th voxel along each axis, the finest
    axes thinned first (a chest CT of 0.8 mm pixels and 5 mm slices loses pixels, not slices).
    Voxels are taken, not averaged: averaging blurred the bone below the bone presets' threshold.
    Numpy only: safe in a worker thread."""
    factors = [1, 1, 1]   # (z, y, x)
    spacing_zyx = np.asarray(volume.spacing)[::-1]
    while int(np.prod([-(-n // f) for n, f in zip(volume.shape, factors)])) > max_voxels:
        finest = int(np.argmin(spacing_zyx * factors))
        factors[finest] += 1
    if factors == [1, 1, 1]:
        return volume
    fz, fy, fx = factors
    array = np.ascontiguousarray(volume.array[::fz, ::fy, ::fx])
    return volume.with_array(array, spacing=tuple(s * f for s, f in zip(volume.spacing, factors[::-1])),
                             origin=volume.origin)


def _around_labels(volume: Volume) -> Volume:
    """The part of a label map that holds labels, with a voxel of background round it: surface
    nets over a whole CT's grid took a second on the GUI thread for a lesion a few cm across
    (0.1 s so cropped). The crop keeps its place in patient space (its own origin)."""
    array = volume.array
    spans = [np.flatnonzero(array.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    if any(len(s) == 0 for s in spans):
        return volume
    return volume.crop([s[0] - 1 for s in spans], [s[-1] + 2 for s in spans])


def _reduce_now(volume: Volume, done: Callable[[Volume, Volume], None]) -> None:
    done(volume, reduced_for_rendering(volume))


class VolumeView:
    """3D rendering of the Document's displayed image, label layers and box layers."""

    def __init__(self, document: Document, render_window, interactor=None,
                 request_render: Callable[[], None] | None = None,
                 preset: str = DEFAULT_VOLUME_PRESET, volume_rendering: bool = False,
                 reduce: Callable[[Volume, Callable[[Volume, Volume], None]], None] | None = None) -> None:
        """``reduce(volume, done)``: make the copy to render (:func:`reduced_for_rendering`) and
        call ``done(volume, copy)`` on the GUI thread; default: at once, here."""
        self.document = document
        self.volume_rendering = volume_rendering
        self.active = True        # the view is on screen (see set_active)
        self.loading = False      # the image's voxels are still being read (see set_loading)
        self.reduce = reduce or _reduce_now
        self._reduced: tuple[Volume, Volume] | None = None   # (volume, its copy to render)
        self._reducing: Volume | None = None                 # the volume being reduced
        self.render_window = render_window
        self.request_render = request_render or self.render
        self.preset = preset
        render_window.SetMultiSamples(0)  # 8x by default: slow on software GL, no gain for volumes
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.08, 0.08, 0.12)
        render_window.AddRenderer(self.renderer)
        # Boxes and measurements on a layer above, with the same camera: a measurement inside the
        # body would otherwise vanish behind the rendered volume (as a box's lines would)
        self.overlay = vtkRenderer()
        self.overlay.SetLayer(1)
        self.overlay.InteractiveOff()
        self.overlay.SetActiveCamera(self.renderer.GetActiveCamera())
        render_window.SetNumberOfLayers(2)
        render_window.AddRenderer(self.overlay)
        # says where volume rendering is while it is off (an empty dark view looks broken)
        self.hint = vtkTextActor()
        self.hint.SetInput("volume rendering: 3D menu")
        self.hint.GetTextProperty().SetFontSize(12)
        self.hint.GetTextProperty().SetColor(0.6, 0.6, 0.65)
        self.hint.SetPosition(6, 6)
        self.hint.VisibilityOff()
        self.overlay.AddViewProp(self.hint)
        self._image_layer: ImageLayer | None = None    # the image rendered (Document.displayed_image)
        self._image_volume = None                      # its volume, the mapper's input
        self._volume_actor: vtkVolume | None = None
        self._surfaces: dict[int, tuple[LabelLayer, vtkActor]] = {}
        #: label layers whose surfaces wait for the view to be shown (surface nets over a whole
        #: CT's label map takes the GUI thread for a second: not for a hidden view)
        self._stale: dict[int, LabelLayer] = {}
        #: per box or measurement layer: its lines and captions
        self._lines: dict[int, _Lines] = {}
        self._handlers = document.events.connect_all([
            ("layer_added", self._on_layer_added), ("layer_removed", self._on_layer_removed),
            ("layer_changed", self._on_layer_changed)])
        for layer in document.layers:
            self._on_layer_added(layer)
        if interactor is not None:
            style = vtkInteractorStyleTrackballCamera()
            interactor.SetInteractorStyle(style)
            # keep VTK's one-letter shortcuts (q = quit, w = wireframe, ...) out of the viewer
            tag = interactor.AddObserver("CharEvent", self._char, 10.0)
            self._char_command = interactor.GetCommand(tag)

    def close(self) -> None:
        self.document.events.disconnect_all(self._handlers)
        self._handlers = []

    def render(self) -> None:
        self.render_window.Render()

    def _char(self, iren, _event) -> None:
        if (iren.GetKeyCode() or "").lower() == "r":
            self.reset_camera()
            self.request_render()
        self._char_command.SetAbortFlag(1)

    # ---- events -------------------------------------------------------------------------------
    def _on_layer_added(self, layer: Layer) -> None:
        if isinstance(layer, ImageLayer):
            if layer is self.document.image:   # a new reference image: the camera fits it
                self.reset_camera()
            self._sync_image()
        elif isinstance(layer, LabelLayer):
            self._add_surface(layer)
        elif isinstance(layer, (BoxLayer, RulerLayer)):
            # a box's caption starts at its corner; a measurement's is centred above its middle
            self._lines[layer.id] = _Lines(self.overlay, centred=isinstance(layer, RulerLayer))
            self._update_lines(layer)
        else:
            return
        self.request_render()

    def _on_layer_removed(self, layer: Layer) -> None:
        if isinstance(layer, ImageLayer):
            self._sync_image()
        elif layer.id in self._surfaces:
            self.renderer.RemoveActor(self._surfaces.pop(layer.id)[1])
        elif layer.id in self._lines:
            self._lines.pop(layer.id).remove()
        self._stale.pop(layer.id, None)
        self.request_render()

    def _on_layer_changed(self, layer: Layer, changed: set) -> None:
        if isinstance(layer, ImageLayer):
            if not changed & {"volume", "visible"}:
                return  # window/level belong to the 2D views
            self._sync_image()
        elif layer.id in self._surfaces:
            if changed & {"volume", "hidden_labels"}:
                self.renderer.RemoveActor(self._surfaces.pop(layer.id)[1])
                self._add_surface(layer)
            else:
                self._apply_surface_props(layer)
        elif layer.id in self._stale:
            return   # built when the view is shown
        elif layer.id in self._lines:
            self._update_lines(layer)
        else:
            return
        self.request_render()

    # ---- image --------------------------------------------------------------------------------
    def set_volume_rendering(self, on: bool) -> None:
        """Render the displayed image's volume (built when the view is next shown), or not."""
        self.volume_rendering = bool(on)
        self._sync_image()
        self.request_render()

    @property
    def building(self) -> bool:
        """Whether the copy of the image to render is being made (the volume shows after)."""
        return self._reducing is not None

    def set_loading(self, on: bool) -> None:
        """The displayed image's voxels are still being read (``on``): build nothing from them
        until they are all in (then the copy to render is made afresh)."""
        if bool(on) == self.loading:
            return
        self.loading = bool(on)
        if not on:
            if self._volume_actor is not None:
                self.renderer.RemoveVolume(self._volume_actor)
            self._volume_actor = None
            self._image_volume = self._reduced = self._reducing = None
            self._sync_image()
            self.request_render()

    def set_active(self, on: bool) -> None:
        """The view is shown (``on``) or hidden: a hidden view builds nothing."""
        if bool(on) != self.active:
            self.active = bool(on)
            self._sync_image()
            if self.active:
                stale, self._stale = self._stale, {}
                for layer in stale.values():
                    self._add_surface(layer)

    def _render_copy(self, volume: Volume) -> Volume | None:
        """The copy of ``volume`` to render, or None while it is being made (then ``_sync_image``
        runs again when it is)."""
        if self._reduced is not None and self._reduced[0] is volume:
            return self._reduced[1]
        if self._reducing is not volume:
            self._reducing = volume
            self.reduce(volume, self._reduced_ready)
        return None if self._reduced is None or self._reduced[0] is not volume else self._reduced[1]

    def _reduced_ready(self, volume: Volume, copy: Volume) -> None:
        if self._reducing is not volume:
            return   # another image meanwhile
        self._reducing = None
        self._reduced = (volume, copy)
        self._sync_image()
        self.request_render()

    def _sync_image(self) -> None:
        self.hint.SetVisibility(self.document.displayed_image is not None and not self.volume_rendering)
        self._sync_volume()

    def _sync_volume(self) -> None:
        """Render the Document's displayed image (when volume rendering is on and the view shown):
        on the same grid as the one rendered now, only the mapper's input changes (camera and
        preset stay); otherwise a new volume actor (the camera is fitted when there was none)."""
        shown = self.document.displayed_image
        if shown is None:
            if self._volume_actor is not None:
                self.renderer.RemoveVolume(self._volume_actor)
            self._volume_actor = None
            self._image_layer = self._image_volume = None
            self._reduced = self._reducing = None
            return
        if not (self.volume_rendering and self.active) or self.loading:
            if self._volume_actor is not None:
                self._volume_actor.SetVisibility(False)
            return
        if shown.volume is not self._image_volume:
            copy = self._render_copy(shown.volume)
            if copy is None:
                return   # the copy to render comes later
            if self._volume_actor is not None and self._image_volume.same_grid(shown.volume):
                self._mapper.SetInputData(local_image(copy))
            else:
                if self._volume_actor is not None:
                    self.renderer.RemoveVolume(self._volume_actor)
                self._set_image(shown, copy)
            self._image_volume = shown.volume
        self._image_layer = shown
        self._volume_actor.SetVisibility(shown.visible)

    def _set_image(self, layer: ImageLayer, volume: Volume) -> None:
        image = local_image(volume)
        mapper = vtkFixedPointVolumeRayCastMapper()
        mapper.SetInputData(image)
        mapper.SetAutoAdjustSampleDistances(1)
        mapper.SetLockSampleDistanceToInputSpacing(0)
        self._mapper = mapper
        actor = vtkVolume()
        actor.SetMapper(mapper)
        actor.SetUserMatrix(vtk_matrix(local_to_patient(volume)))
        actor.SetProperty(vtkVolumeProperty())
        actor.SetVisibility(layer.visible)
        self._volume_actor = actor
        self.set_preset(self.preset, render=False)
        self.renderer.AddVolume(actor)

    def set_preset(self, name: str, render: bool = True) -> None:
        """Apply one of :data:`medviewer.core.presets.VOLUME_PRESETS`."""
        preset = VOLUME_PRESETS[name]
        self.preset = name
        if self._volume_actor is None:
            return
        color = vtkColorTransferFunction()
        for hu, r, g, b in preset["color"]:
            color.AddRGBPoint(hu, r, g, b)
        opacity = vtkPiecewiseFunction()
        for hu, a in preset["opacity"]:
            opacity.AddPoint(hu, a)
        prop = self._volume_actor.GetProperty()
        prop.SetColor(color)
        prop.SetScalarOpacity(opacity)
        prop.SetInterpolationTypeToLinear()
        prop.SetShade(bool(preset.get("shade")))
        prop.SetAmbient(0.3)
        prop.SetDiffuse(0.7)
        prop.SetSpecular(0.2)
        if preset.get("blend") == "mip":
            self._mapper.SetBlendModeToMaximumIntensity()
        else:
            self._mapper.SetBlendModeToComposite()
        if render:
            self.request_render()

    def reset_camera(self) -> None:
        """Anterior view of the whole image, superior up."""
        image = self.document.image
        if image is None:
            return
        volume = image.volume
        size = np.asarray(volume.size_xyz)
        corners = volume.index_to_patient(np.array([[i, j, k] for i in (0, size[0] - 1)
                                                    for j in (0, size[1] - 1) for k in (0, size[2] - 1)]))
        center = corners.mean(axis=0)
        radius = float(np.linalg.norm(corners.max(axis=0) - corners.min(axis=0))) / 2
        cam = self.renderer.GetActiveCamera()
        cam.SetFocalPoint(*center)
        cam.SetPosition(*(center + np.array([0.0, -4.0 * radius, 0.0])))
        cam.SetViewUp(0, 0, 1)
        cam.SetViewAngle(30)
        cam.ParallelProjectionOff()
        self.renderer.ResetCameraClippingRange()
        # fit: distance so that the bounding sphere fills the view
        cam.SetPosition(*(center + np.array([0.0, -radius / np.tan(np.radians(15)) * 0.8, 0.0])))
        self.renderer.ResetCameraClippingRange()

    # ---- labels -------------------------------------------------------------------------------
    def _add_surface(self, layer: LabelLayer) -> None:
        if not self.active:
            self._stale[layer.id] = layer
            return
        volume = layer.volume
        top = max(1, int(volume.array.max()))
        if layer.hidden_labels:   # hidden segments become background: a neighbour's wall is its own
            array = volume.array
            volume = volume.with_array(np.where(np.isin(array, list(layer.hidden_labels)), 0, array).astype(array.dtype))
        volume = _around_labels(volume)
        surf = surface_nets(volume, 1, top)
        normals = vtkPolyDataNormals()  # also makes the polygons' order consistent
        normals.SetInputConnection(surf.GetOutputPort())
        normals.SplittingOff()
        mapper = vtkPolyDataMapper()
        mapper.SetInputConnection(normals.GetOutputPort())
        # Each polygon carries the two labels it separates, the segment's first (the background,
        # 0, last): colour by that.
        mapper.SetScalarModeToUseCellFieldData()
        mapper.ColorByArrayComponent("BoundaryLabels", 0)
        actor = vtkActor()
        actor.SetMapper(mapper)
        actor.SetUserMatrix(vtk_matrix(local_to_patient(volume)))
        self.renderer.AddActor(actor)
        self._surfaces[layer.id] = (layer, actor)
        self._apply_surface_props(layer)

    def _apply_surface_props(self, layer: LabelLayer) -> None:
        _, actor = self._surfaces[layer.id]
        top = max(1, int(layer.volume.array.max()))
        lut = vtkLookupTable()
        lut.SetNumberOfTableValues(top + 1)
        lut.SetTableRange(0, top)
        for v in range(top + 1):
            r, g, b = layer.color_of(v) if v else (0, 0, 0)
            lut.SetTableValue(v, r, g, b, 1.0)
        lut.Build()
        mapper = actor.GetMapper()
        mapper.SetLookupTable(lut)
        mapper.SetScalarRange(0, top)
        mapper.ScalarVisibilityOn()
        mapper.SetColorModeToMapScalars()  # uint8 labels are values, not colours
        actor.GetProperty().SetOpacity(max(0.05, min(1.0, layer.opacity * 2)))
        actor.SetVisibility(layer.visible)

    # ---- boxes and measurements -----------------------------------------------------------
    def _update_lines(self, layer: BoxLayer | RulerLayer) -> None:
        points, segments, captions = [], [], []

        def polyline(ends, closed: bool = False) -> None:
            base = len(points)
            points.extend(np.asarray(ends, dtype=float))
            n = len(ends)
            segments.extend((base + k, base + (k + 1) % n) for k in range(n if closed else n - 1))

        if isinstance(layer, BoxLayer):
            for box in layer.boxes:
                if box.caption:   # at the box's superior, patient-right, anterior corner
                    captions.append((box.caption, (box.lower[0], box.lower[1], box.upper[2])))
                lo, hi = box.lower, box.upper
                corners = [(x, y, z) for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
                for a, b in [(0, 4), (2, 6), (1, 5), (3, 7), (0, 2), (4, 6), (1, 3), (5, 7), (0, 1), (2, 3),
                             (4, 5), (6, 7)]:  # corner index = 4*x + 2*y + z
                    polyline([corners[a], corners[b]])
        else:  # measurements: each caption (label and values) above its middle, as in 2D
            for ruler in layer.rulers:
                polyline([ruler.start, ruler.end])
                captions.append((ruler.text, tuple((np.add(ruler.start, ruler.end)) / 2)))
            for bidi in layer.bidirectionals:
                polyline(bidi.ends[:2])
                polyline(bidi.ends[2:])
                captions.append((bidi.text, tuple(bidi.ends[:2].mean(axis=0))))
            for ellipse in layer.ellipses:
                outline = ellipse.outline()
                polyline(outline, closed=True)
                captions.append((ellipse.text, tuple(outline[np.argmax(outline[:, 2])])))  # its top
        self._lines[layer.id].set(np.asarray(points, dtype=float).reshape(-1, 3),
                                  np.asarray(segments, dtype=np.int64).reshape(-1, 2),
                                  [c for c in captions if c[0]], layer)

    def box_captions(self, layer: BoxLayer | RulerLayer) -> list[tuple[str, tuple[float, float, float]]]:
        """The captions shown for a box or measurement layer: (text, anchor in LPS mm)."""
        return [(t.GetInput(), tuple(t.GetPosition())) for t in self._lines[layer.id].texts if t.GetVisibility()]


class _Lines:
    """Line segments in LPS mm in one colour, and a pool of caption actors (billboards: they
    face the camera), for one box or measurement layer."""

    def __init__(self, renderer: vtkRenderer, centred: bool = False) -> None:
        self.renderer = renderer
        self.centred = centred
        self.data = vtkPolyData()
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(self.data)
        self.actor = vtkActor()
        self.actor.SetMapper(mapper)
        self.actor.GetProperty().LightingOff()
        self.actor.GetProperty().SetLineWidth(2.0)
        renderer.AddActor(self.actor)
        self.texts: list[vtkBillboardTextActor3D] = []

    def set(self, points: np.ndarray, segments: np.ndarray, captions, layer: Layer) -> None:
        pts, cells = lines_polydata_arrays(points, segments)
        self.data.SetPoints(pts)
        self.data.SetLines(cells)
        self.data.Modified()
        self.actor.GetProperty().SetColor(*layer.color)
        self.actor.GetProperty().SetOpacity(layer.opacity)
        self.actor.SetVisibility(layer.visible)
        while len(self.texts) < len(captions):
            t = vtkBillboardTextActor3D()
            t.GetTextProperty().SetFontSize(12)
            t.GetTextProperty().SetVerticalJustificationToBottom()
            if self.centred:
                t.GetTextProperty().SetJustificationToCentered()
            t.GetTextProperty().ShadowOn()
            t.PickableOff()
            self.renderer.AddActor(t)
            self.texts.append(t)
        for i, t in enumerate(self.texts):
            if i < len(captions):
                t.SetInput(captions[i][0])
                t.SetPosition(*captions[i][1])
            t.GetTextProperty().SetColor(*layer.color)
            t.GetTextProperty().SetOpacity(layer.opacity)
            t.SetVisibility(layer.visible and i < len(captions))

    def remove(self) -> None:
        self.renderer.RemoveActor(self.actor)
        for t in self.texts:
            self.renderer.RemoveActor(t)
