"""Boxes and measurements over a slice: a box layer's rectangles where they cross the slice,
with their captions (label and score); a measurement layer's rulers (with a caliper's ticks),
ellipses and bidirectional crosses that lie on the slice, each captioned above, the caption kept
inside the view."""

from __future__ import annotations

import numpy as np
from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkRenderingCore import vtkActor, vtkTextActor

from medviewer.core.document import BoxLayer, RulerLayer
from medviewer.render.overlays.common import line_actor
from medviewer.render.vtk_util import lines_polydata_arrays

#: half the length of the tick drawn across each end of a ruler (mm)
RULER_TICK_MM = 2.0


class ShapeOverlays:
    """The box and measurement layers of one :class:`~medviewer.render.slice_view.SliceView`."""

    def __init__(self, view) -> None:
        self.view = view
        #: per layer id: the layer, its lines, their actor, and a pool of caption actors
        self.layers: dict[int, tuple[BoxLayer, vtkPolyData, vtkActor, list[vtkTextActor]]] = {}
        self._anchors: dict[int, tuple[float, float]] = {}   # id(text actor) -> (u, v) asked for
        view.renderer.AddObserver("StartEvent", lambda *_: self.fit_captions())

    def remove(self, layer) -> bool:
        """Stop drawing ``layer``; whether it was drawn here."""
        if layer.id not in self.layers:
            return False
        _, _, actor, texts = self.layers.pop(layer.id)
        self.view.renderer.RemoveActor(actor)
        for t in texts:
            self.view.renderer.RemoveViewProp(t)
        return True

    def update_all(self) -> None:
        """Follow the slice (or the image) that changed: every layer's lines and captions."""
        for layer, *_ in self.layers.values():
            self.update(layer)

    def add(self, layer: BoxLayer) -> None:
        data = vtkPolyData()
        actor = line_actor(self.view.renderer, data, layer.color, z=0.4, width=2.0)
        self.layers[layer.id] = (layer, data, actor, [])
        self.apply(layer)
        self.update(layer)

    def apply(self, layer: BoxLayer) -> None:
        _, _, actor, texts = self.layers[layer.id]
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
        self.view.renderer.AddViewProp(t)
        return t

    def captions(self, layer: BoxLayer) -> list[tuple[str, tuple[float, float, float]]]:
        """The captions shown for ``layer`` on the current slice: (text, anchor in LPS mm)."""
        _, _, _, texts = self.layers[layer.id]
        out = []
        for t in texts:
            if t.GetVisibility():
                u, v, _ = t.GetPositionCoordinate().GetValue()
                out.append((t.GetInput(), tuple(float(c) for c in self.view.plane_to_patient(u, v))))
        return out

    def update(self, layer: BoxLayer | RulerLayer) -> None:
        """Rectangles of the boxes that the current slice crosses, each with its caption; or the
        rulers, ellipses and bidirectional measurements that lie on the current slice, each with its
        caption centred above it."""
        _, data, _, texts = self.layers[layer.id]
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
                self._anchors[id(t)] = (u, v)
            t.SetVisibility(layer.visible and i < len(captions))
        pts, cells = lines_polydata_arrays(np.asarray(points, dtype=float).reshape(-1, 3),
                                           np.asarray(segments, dtype=np.int64).reshape(-1, 2))
        data.SetPoints(pts)
        data.SetLines(cells)
        data.Modified()

    def fit_captions(self) -> None:
        """Shift each measurement's caption sideways, as each frame starts, so that all of
        it stays inside the view: centred over a measurement near the view's edge (a caption of
        three lines is wide), it would be cut off."""
        w, h = self.view.renderer.GetSize()
        if w <= 0 or h <= 0:
            return
        mm_per_px = 2.0 * self.view.renderer.GetActiveCamera().GetParallelScale() / h
        box = [0.0] * 4
        for layer, _, _, texts in self.layers.values():
            if not isinstance(layer, RulerLayer):
                continue
            for t in texts:
                anchor = self._anchors.get(id(t))
                if anchor is None or not t.GetVisibility():
                    continue
                self.view.renderer.SetWorldPoint(anchor[0], anchor[1], 0.4, 1.0)
                self.view.renderer.WorldToDisplay()
                x = self.view.renderer.GetDisplayPoint()[0]
                t.GetBoundingBox(self.view.renderer, box)
                width = box[1] - box[0]
                left = x - width / 2   # centred
                shift = max(0.0, 2 - left) if left < 2 or width > w - 4 else min(0.0, w - 2 - (left + width))
                t.GetPositionCoordinate().SetValue(anchor[0] + shift * mm_per_px, anchor[1], 0.4)

    def _box_lines(self, layer: BoxLayer):
        half = self.view._half_slab()
        points, segments, captions = [], [], []
        for box in ([] if self.view._volume is None else layer.boxes):
            lo, hi = np.asarray(box.lower), np.asarray(box.upper)
            corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])
                                for z in (lo[2], hi[2])])
            d = corners - self.view.center
            n = d @ self.view.normal
            if not (n.min() - half <= self.view.offset <= n.max() + half):
                continue
            u, v = d @ self.view.right, d @ self.view.up
            base = len(points)
            points += [(u.min(), v.min(), 0), (u.max(), v.min(), 0), (u.max(), v.max(), 0),
                       (u.min(), v.max(), 0)]
            segments += [(base, base + 1), (base + 1, base + 2), (base + 2, base + 3), (base + 3, base)]
            text = box.caption
            if text:
                captions.append((text, float(u.min()), float(v.max())))
        return points, segments, captions

    def _ruler_lines(self, layer: RulerLayer):
        half = self.view._half_slab()
        points, segments, captions = [], [], []
        for ruler in ([] if self.view._volume is None else layer.rulers):
            ends = np.array([ruler.start, ruler.end]) - self.view.center
            if np.abs(ends @ self.view.normal - self.view.offset).max() > half:
                continue   # not on this slice
            u, v = ends @ self.view.right, ends @ self.view.up
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
        for ellipse in ([] if self.view._volume is None else layer.ellipses):
            if np.abs((ellipse.ends - self.view.center) @ self.view.normal - self.view.offset).max() > half:
                continue
            d = ellipse.outline() - self.view.center
            u, v = d @ self.view.right, d @ self.view.up
            base, n = len(points), len(d)
            points += [(a, b, 0) for a, b in zip(u, v)]
            segments += [(base + k, base + (k + 1) % n) for k in range(n)]
            if ellipse.text:   # centred above the ellipse
                captions.append((ellipse.text, float(u.mean()), float(v.max()) + 2.0))
        for cross in ([] if self.view._volume is None else layer.bidirectionals):
            d = cross.ends - self.view.center
            if np.abs(d @ self.view.normal - self.view.offset).max() > half:
                continue
            u, v = d @ self.view.right, d @ self.view.up
            base = len(points)
            points += [(a, b, 0) for a, b in zip(u, v)]
            segments += [(base, base + 1), (base + 2, base + 3)]
            if cross.text:
                captions.append((cross.text, float(u.mean()), float(v.max()) + 2.0))
        return points, segments, captions
