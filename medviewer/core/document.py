"""The Document: what the viewer shows, as layers over one image, plus the cursor.

Layers (all dataclasses; change them through :meth:`Document.update_layer` so listeners hear):

* :class:`ImageLayer` - a CT (or other) :class:`~medviewer.core.volume.Volume` with its window/level.
  The first image layer added is the *reference image*: its grid is the one label layers live on
  (and the one the views slice and scroll on). The views draw one image, the *displayed image*
  (:attr:`Document.displayed_image`): the topmost visible image layer, else the reference image.
* :class:`LabelLayer` - a Volume of integer labels on the reference image's grid (0 = background),
  with a name and an RGB colour per label value.
* :class:`BoxLayer` - axis-aligned boxes in patient LPS millimetres, each with a label and score.
* :class:`RulerLayer` - line segments in patient LPS millimetres with a caption (e.g. the segment
  editor's RECIST long axes), and the measure tool's ellipses (regions of interest) and
  bidirectional measurements (two perpendicular diameters), drawn on the slices that hold them.

Every layer has ``name``, ``visible``, ``opacity`` (0..1) and ``color`` (RGB 0..1; for label layers
the colour of labels without their own colour).

Events (``document.events.connect(name, callback)``):

* ``layer_added(layer)``, ``layer_removed(layer)``
* ``layer_changed(layer, changed)`` - ``changed`` is the set of field names that changed
* ``cursor_changed(point)`` - the cursor in LPS mm, a float array of shape (3,)

Example, from a plugin that produced a mask on the open image::

    labels = doc.image.volume.with_array(mask.astype(np.uint8))
    doc.add_layer(LabelLayer(name="tumour", volume=labels, label_names={1: "tumour"}))

The Document is not thread-safe: change it on the GUI thread only (post results there from workers).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from medviewer.core.errors import MedviewerError
from medviewer.core.events import EventEmitter
from medviewer.core.volume import Volume

RGB = tuple[float, float, float]

#: Colours given to label values 1, 2, 3, ... that have none of their own (repeating).
LABEL_PALETTE: tuple[RGB, ...] = (
    (1.0, 0.2, 0.2), (0.2, 0.9, 0.2), (0.25, 0.5, 1.0), (1.0, 0.85, 0.1), (0.0, 0.9, 0.9),
    (1.0, 0.3, 1.0), (1.0, 0.6, 0.1), (0.6, 0.4, 1.0), (0.5, 1.0, 0.6), (0.9, 0.6, 0.6),
)

_ids = itertools.count(1)


@dataclass(eq=False, kw_only=True)
class Layer:
    """What every layer has. ``id`` is unique within the process."""

    name: str
    visible: bool = True
    opacity: float = 1.0
    color: RGB = (1.0, 1.0, 1.0)
    id: int = field(default_factory=lambda: next(_ids))

    def __post_init__(self) -> None:
        self.opacity = float(min(1.0, max(0.0, self.opacity)))
        self.color = tuple(float(c) for c in self.color)  # type: ignore[assignment]


@dataclass(eq=False, kw_only=True)
class ImageLayer(Layer):
    """A scalar volume shown in grey with ``window``/``level`` (HU for CT)."""

    volume: Volume
    window: float = 400.0
    level: float = 40.0


@dataclass(eq=False, kw_only=True)
class LabelLayer(Layer):
    """Integer labels on the reference image's grid; 0 is background and never drawn.

    ``label_names`` and ``label_colors`` map label values to a name and an RGB colour (0..1);
    ``hidden_labels`` are not drawn (in 2D nor in 3D), though they stay in the layer.
    """

    volume: Volume
    label_names: dict[int, str] = field(default_factory=dict)
    label_colors: dict[int, RGB] = field(default_factory=dict)
    hidden_labels: frozenset[int] = frozenset()
    opacity: float = 0.5
    color: RGB = LABEL_PALETTE[0]

    def __post_init__(self) -> None:
        super().__post_init__()
        if not np.issubdtype(self.volume.array.dtype, np.integer) and self.volume.array.dtype != bool:
            raise MedviewerError(f"label layer {self.name!r} needs integer labels, "
                                 f"got {self.volume.array.dtype}")

    def values(self) -> list[int]:
        """The label values present (without 0), ascending."""
        return [int(v) for v in np.unique(self.volume.array) if v != 0]

    def color_of(self, value: int) -> RGB:
        """The colour of label ``value``: its own, else the layer colour for the only label 1,
        else a palette colour."""
        if value in self.label_colors:
            return tuple(self.label_colors[value])  # type: ignore[return-value]
        if value == 1:
            return self.color
        return LABEL_PALETTE[(int(value) - 1) % len(LABEL_PALETTE)]

    def shows(self, value: int) -> bool:
        """Whether label ``value`` is drawn (not background, not hidden)."""
        return value != 0 and value not in self.hidden_labels

    def name_of(self, value: int) -> str:
        return self.label_names.get(value, f"label {value}")


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in patient LPS mm: ``lower`` and ``upper`` corners (each x, y, z)."""

    lower: tuple[float, float, float]
    upper: tuple[float, float, float]
    label: str = ""
    score: float | None = None

    def __post_init__(self) -> None:
        lo = np.minimum(self.lower, self.upper)
        hi = np.maximum(self.lower, self.upper)
        object.__setattr__(self, "lower", tuple(float(v) for v in lo))
        object.__setattr__(self, "upper", tuple(float(v) for v in hi))

    @property
    def center(self) -> np.ndarray:
        return (np.asarray(self.lower) + np.asarray(self.upper)) / 2.0

    @property
    def caption(self) -> str:
        """What the views write beside the box: 'label score' (score with 2 decimals), or
        whichever of the two is set ('' for neither)."""
        parts = [self.label] if self.label else []
        if self.score is not None:
            parts.append(f"{self.score:.2f}")
        return " ".join(parts)


@dataclass(eq=False, kw_only=True)
class BoxLayer(Layer):
    """Boxes (e.g. detections) drawn as rectangles where they cross a slice and as boxes in 3D."""

    boxes: list[Box] = field(default_factory=list)
    color: RGB = (1.0, 1.0, 0.0)


class _Measurement:
    """What the measurements share: points in LPS mm (the fields named in ``_POINTS``, made
    tuples of floats), and a ``label``, the user's name for it ("target lesion 1"; OHIF's label,
    a DICOM SR comment), shown above the ``caption`` of its values in the views."""

    _POINTS: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in self._POINTS:
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))

    @property
    def text(self) -> str:
        return f"{self.label}\n{self.caption}" if self.label and self.caption else self.label or self.caption


@dataclass(frozen=True)
class Ruler(_Measurement):
    """A line segment in patient LPS mm from ``start`` to ``end``, with a caption and a label."""

    start: tuple[float, float, float]
    end: tuple[float, float, float]
    caption: str = ""
    label: str = ""
    _POINTS = ("start", "end")


@dataclass(frozen=True)
class Ellipse(_Measurement):
    """An ellipse on one slice, in patient LPS mm: its ``center`` and two perpendicular
    semi-axes, vectors from the centre to one end of each axis; with a caption and a label."""

    center: tuple[float, float, float]
    axis_a: tuple[float, float, float]
    axis_b: tuple[float, float, float]
    caption: str = ""
    label: str = ""
    _POINTS = ("center", "axis_a", "axis_b")

    @property
    def ends(self) -> np.ndarray:
        """The four ends of its axes (4 x 3, LPS mm): +a, -a, +b, -b."""
        c, a, b = (np.asarray(v) for v in (self.center, self.axis_a, self.axis_b))
        return np.array([c + a, c - a, c + b, c - b])

    def outline(self, n: int = 72) -> np.ndarray:
        """``n`` points around it (n x 3, LPS mm)."""
        t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)[:, None]
        return np.asarray(self.center) + np.cos(t) * self.axis_a + np.sin(t) * self.axis_b


@dataclass(frozen=True)
class Bidirectional(_Measurement):
    """Two perpendicular diameters on one slice, as RECIST measures a lesion (and OHIF's
    bidirectional tool draws them): the long axis and the short axis across it, LPS mm; with a
    caption and a label. The short axis' ends lie on either side of the long axis, on one line
    perpendicular to it (not necessarily through its middle)."""

    long_start: tuple[float, float, float]
    long_end: tuple[float, float, float]
    short_start: tuple[float, float, float]
    short_end: tuple[float, float, float]
    caption: str = ""
    label: str = ""
    _POINTS = ("long_start", "long_end", "short_start", "short_end")

    @property
    def ends(self) -> np.ndarray:
        """long start, long end, short start, short end (4 x 3, LPS mm)."""
        return np.array([self.long_start, self.long_end, self.short_start, self.short_end])

    @property
    def long_mm(self) -> float:
        return float(np.linalg.norm(np.subtract(self.long_end, self.long_start)))

    @property
    def short_mm(self) -> float:
        return float(np.linalg.norm(np.subtract(self.short_end, self.short_start)))

    @classmethod
    def across(cls, start, end, normal, ratio: float = 0.5) -> "Bidirectional":
        """A long axis from ``start`` to ``end`` with a short axis through its middle, in the
        plane of unit ``normal``, ``ratio`` times as long."""
        start, end = np.asarray(start, dtype=float), np.asarray(end, dtype=float)
        middle, half = (start + end) / 2, ratio * np.linalg.norm(end - start) / 2
        across = _across(start, end, normal)
        return cls(start, end, middle - half * across, middle + half * across)

    def with_end_moved(self, end: int, point, normal) -> "Bidirectional":
        """This measurement with end ``end`` (0, 1: the long axis'; 2, 3: the short axis') dragged
        to ``point``, in the plane of unit ``normal``. A long axis end moves freely and the short
        axis follows, keeping where it crosses (as a fraction of the long axis) and how far each of
        its ends lies from the long axis; a short axis end slides along the short axis' line (it
        stays on its side of the long axis)."""
        ends = self.ends
        old_across = _across(ends[0], ends[1], normal)
        length = np.linalg.norm(ends[1] - ends[0])
        along = (ends[1] - ends[0]) / length if length > 0 else np.cross(old_across, normal)
        fraction = float((ends[2] - ends[0]) @ along / length) if length > 0 else 0.5
        sides = [float((ends[k] - ends[0]) @ old_across) for k in (2, 3)]
        point = np.asarray(point, dtype=float)
        if end in (0, 1):
            ends[end] = point
            across = _across(ends[0], ends[1], normal)
            crossing = ends[0] + fraction * (ends[1] - ends[0])
            return Bidirectional(ends[0], ends[1], crossing + sides[0] * across, crossing + sides[1] * across,
                                 self.caption)
        crossing = ends[0] + fraction * length * along
        side = float((point - crossing) @ old_across)
        other = sides[1 if end == 2 else 0]
        if side * other >= 0:   # dragged across the long axis: stop just short of it
            side = -np.sign(other) * 0.1 if other else 0.1
        ends[end] = crossing + side * old_across
        return Bidirectional(*ends, self.caption)


def _across(start, end, normal) -> np.ndarray:
    """The unit vector in the plane of ``normal`` perpendicular to start -> end."""
    d = np.cross(np.asarray(normal, dtype=float), np.subtract(end, start))
    n = np.linalg.norm(d)
    if n == 0:   # a long axis of no length yet: any direction in the plane
        d = np.cross(normal, [1.0, 0.0, 0.0]) if abs(normal[0]) < 0.9 else np.cross(normal, [0.0, 1.0, 0.0])
        n = np.linalg.norm(d)
    return d / n


@dataclass(eq=False, kw_only=True)
class RulerLayer(Layer):
    """Rulers, ellipses and bidirectional measurements drawn, with their captions, on the 2D
    slices that hold them."""

    rulers: list[Ruler] = field(default_factory=list)
    ellipses: list[Ellipse] = field(default_factory=list)
    bidirectionals: list[Bidirectional] = field(default_factory=list)
    color: RGB = (1.0, 0.85, 0.0)


class Document:
    """Layers over one reference image, and a cursor in patient mm; emits events on change."""

    def __init__(self) -> None:
        self.events = EventEmitter()
        self._layers: list[Layer] = []
        self._cursor = np.zeros(3)

    # ---- layers ------------------------------------------------------------------------------
    @property
    def layers(self) -> tuple[Layer, ...]:
        """All layers, bottom first."""
        return tuple(self._layers)

    def layers_of(self, kind: type) -> list:
        return [layer for layer in self._layers if isinstance(layer, kind)]

    @property
    def image(self) -> ImageLayer | None:
        """The reference image layer (the first image layer), or None."""
        images = self.layers_of(ImageLayer)
        return images[0] if images else None

    @property
    def displayed_image(self) -> ImageLayer | None:
        """The image layer the views draw: the topmost visible image layer, or the reference
        image when no image layer is visible (None without images). Adding an image layer on
        top shows it; hiding or removing it shows the one below again."""
        images = self.layers_of(ImageLayer)
        visible = [layer for layer in images if layer.visible]
        if visible:
            return visible[-1]
        return images[0] if images else None

    def add_layer(self, layer: Layer) -> Layer:
        """Add ``layer`` on top. A label layer must lie on the reference image's grid
        (resample first, see :func:`medviewer.core.resample.labels_onto_grid`)."""
        if isinstance(layer, LabelLayer):
            image = self.image
            if image is None:
                raise MedviewerError("open an image before adding a label layer")
            if not image.volume.same_grid(layer.volume):
                raise MedviewerError(f"label layer {layer.name!r} is not on the image grid "
                                     f"({layer.volume.shape} vs {image.volume.shape})")
        first_image = isinstance(layer, ImageLayer) and self.image is None
        self._layers.append(layer)
        self.events.emit("layer_added", layer)
        if first_image:
            self.set_cursor(_volume_center(layer.volume))
        return layer

    def remove_layer(self, layer: Layer) -> None:
        self._layers.remove(layer)
        self.events.emit("layer_removed", layer)

    def clear(self) -> None:
        """Remove every layer (top first)."""
        for layer in reversed(self._layers[:]):
            self.remove_layer(layer)

    def update_layer(self, layer: Layer, **changes: Any) -> None:
        """Set fields of ``layer`` (e.g. ``visible=False``, ``window=1500``) and emit
        ``layer_changed(layer, changed_names)`` if anything changed."""
        changed = set()
        for key, value in changes.items():
            if not any(f.name == key for f in dataclasses.fields(layer)):
                raise AttributeError(f"{type(layer).__name__} has no field {key!r}")
            if key == "opacity":
                value = float(min(1.0, max(0.0, value)))
            if key == "color":
                value = tuple(float(c) for c in value)
            old = getattr(layer, key)
            if old is value or (not isinstance(value, (np.ndarray, Volume)) and old == value):
                continue
            setattr(layer, key, value)
            changed.add(key)
        if changed:
            self.events.emit("layer_changed", layer, changed)

    def layer_by_name(self, name: str) -> Layer:
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    # ---- cursor ------------------------------------------------------------------------------
    @property
    def cursor(self) -> np.ndarray:
        """The cursor (crosshair centre) in LPS mm (a copy)."""
        return self._cursor.copy()

    def set_cursor(self, point: Sequence[float]) -> None:
        """Move the cursor to ``point`` (LPS mm), clamped into the reference image."""
        p = np.asarray(point, dtype=float).reshape(3)
        image = self.image
        if image is not None:
            ijk = image.volume.patient_to_index(p)
            clamped = np.clip(ijk, 0, np.asarray(image.volume.size_xyz) - 1)
            if not np.allclose(clamped, ijk):
                p = image.volume.index_to_patient(clamped)
        if np.allclose(p, self._cursor, atol=1e-9):
            return
        self._cursor = p
        self.events.emit("cursor_changed", p.copy())

    def value_at(self, point: Sequence[float], layer: ImageLayer | None = None) -> float | None:
        """The voxel value of image ``layer`` (default: the reference image) nearest ``point``
        (LPS mm), None outside."""
        image = self.image if layer is None else layer
        if image is None or not image.volume.contains_point(point):
            return None
        z, y, x = image.volume.patient_to_voxel(point)
        return float(image.volume.array[z, y, x])


def _volume_center(volume: Volume) -> np.ndarray:
    """The voxel centre nearest the middle of the grid."""
    return volume.index_to_patient((np.asarray(volume.size_xyz) - 1) // 2)
