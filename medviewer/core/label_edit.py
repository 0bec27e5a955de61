"""Editing a label map (one value per segment): brush discs, erasing, islands, click results, undo.

Pure numpy (SimpleITK for connected components, imported when used); no Qt. The segment editor
dock drives it; tests use it directly.

Edits never touch other segments: painting fills background and the segment's own voxels only,
erasing clears the segment's own voxels only. Every edit is a :class:`Change`: the bounding box
that changed with its voxels before and after (and, for click-to-segment, the segment's click list
before and after), kept on an :class:`EditStack` for undo/redo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from medviewer.core.volume import Volume

Point = tuple[float, float, float]


@dataclass(frozen=True)
class Clicks:
    """A segment's click prompts in LPS mm."""

    positive: tuple[Point, ...] = ()
    negative: tuple[Point, ...] = ()

    def add(self, point: Sequence[float], positive: bool) -> "Clicks":
        p = tuple(float(c) for c in point)
        if positive:
            return Clicks(self.positive + (p,), self.negative)
        return Clicks(self.positive, self.negative + (p,))

    def __len__(self) -> int:
        return len(self.positive) + len(self.negative)


@dataclass
class Change:
    """One undoable edit: ``before``/``after`` voxels of the box ``lower:upper`` (z, y, x)."""

    label: int
    lower: tuple[int, int, int]
    upper: tuple[int, int, int]
    before: np.ndarray
    after: np.ndarray
    clicks_before: Clicks | None = None  # set when the edit came from a click
    clicks_after: Clicks | None = None
    description: str = ""

    @property
    def box(self) -> tuple[slice, slice, slice]:
        return tuple(slice(a, b) for a, b in zip(self.lower, self.upper))  # type: ignore[return-value]

    @property
    def voxels_changed(self) -> int:
        return int(np.count_nonzero(self.before != self.after))


def bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest box holding every True voxel of ``mask`` (None: none is True). From the
    mask's projections on each axis: a few times faster than ``np.nonzero`` on a large grid."""
    box = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if hit.size == 0:
            return None
        box.append(slice(int(hit[0]), int(hit[-1]) + 1))
    return tuple(box)


def union_box(*boxes) -> tuple[slice, ...] | None:
    """The smallest box holding every box given (None ones left out)."""
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    return tuple(slice(min(b[k].start for b in boxes), max(b[k].stop for b in boxes))
                 for k in range(len(boxes[0])))


def diff(old: np.ndarray, new: np.ndarray, label: int, description: str = "",
         within: tuple[slice, ...] | None = None, **clicks) -> Change | None:
    """The change from ``old`` to ``new`` over the box that differs; None if nothing did (and no
    click list changed). ``within``: a box outside which the two are known to be equal (only it
    is compared)."""
    offset = [0] * old.ndim if within is None else [s.start for s in within]
    where = np.nonzero(old != new) if within is None else np.nonzero(old[within] != new[within])
    if where[0].size == 0:
        if clicks and clicks.get("clicks_before") != clicks.get("clicks_after"):
            empty = np.zeros((0, 0, 0), dtype=old.dtype)
            return Change(label, (0, 0, 0), (0, 0, 0), empty, empty, description=description, **clicks)
        return None
    lower = tuple(int(w.min()) + o for w, o in zip(where, offset))
    upper = tuple(int(w.max()) + 1 + o for w, o in zip(where, offset))
    box = tuple(slice(a, b) for a, b in zip(lower, upper))
    return Change(label, lower, upper, old[box].copy(), new[box].copy(), description=description, **clicks)


@dataclass
class EditStack:
    """Undo/redo of :class:`Change` s applied to one label array."""

    done: list[Change] = field(default_factory=list)
    undone: list[Change] = field(default_factory=list)
    limit: int = 100

    def push(self, change: Change) -> None:
        self.done.append(change)
        self.undone.clear()
        del self.done[:-self.limit]

    def can_undo(self) -> bool:
        return bool(self.done)

    def can_redo(self) -> bool:
        return bool(self.undone)

    def undo(self, array: np.ndarray) -> Change | None:
        """Put the last change's ``before`` back into ``array`` (in place); the change, or None."""
        if not self.done:
            return None
        change = self.done.pop()
        array[change.box] = change.before
        self.undone.append(change)
        return change

    def redo(self, array: np.ndarray) -> Change | None:
        if not self.undone:
            return None
        change = self.undone.pop()
        array[change.box] = change.after
        self.done.append(change)
        return change

    def clear(self) -> None:
        self.done.clear()
        self.undone.clear()


# ---- shapes --------------------------------------------------------------------------------------
def disc_region(volume: Volume, center_mm: Sequence[float], radius_mm: float,
                normal: Sequence[float]) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """The voxels of ``volume`` within ``radius_mm`` of ``center_mm`` in the plane through it with
    ``normal`` (LPS), one voxel thick: (box slices, boolean mask of the box)."""
    center = np.asarray(center_mm, dtype=float)
    n = np.asarray(normal, dtype=float)
    n = n / np.linalg.norm(n)
    # onto the nearest voxel centre along the normal (rounding halves up, as VTK's nearest-
    # neighbour reslice of the views does), so that the disc is one slice thick
    ijk = np.clip(np.floor(volume.patient_to_index(center) + 0.5), 0, np.asarray(volume.size_xyz) - 1)
    center = center + ((volume.index_to_patient(ijk) - center) @ n) * n
    spacing_zyx = np.asarray(volume.spacing, dtype=float)[::-1]
    c = volume.patient_to_index(center)[::-1]  # continuous (z, y, x)
    margin = np.ceil(radius_mm / spacing_zyx).astype(int) + 1
    lo = np.clip(np.floor(c).astype(int) - margin, 0, volume.shape)
    hi = np.clip(np.ceil(c).astype(int) + margin + 1, lo, volume.shape)
    zz, yy, xx = np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi)), indexing="ij")
    pts = volume.voxel_to_patient(np.stack([zz, yy, xx], axis=-1)) - center
    along = pts @ n
    in_plane = np.linalg.norm(pts - along[..., None] * n, axis=-1)
    # half the voxel's extent along the normal: one slice thick whatever the grid's orientation
    half = 0.5 * float(np.abs(volume.direction.T @ n) @ np.asarray(volume.spacing, dtype=float))
    mask = (in_plane <= radius_mm) & (np.abs(along) < half)
    return tuple(slice(a, b) for a, b in zip(lo, hi)), mask  # type: ignore[return-value]


def paint(labels: np.ndarray, box, mask: np.ndarray, label: int, image: np.ndarray | None = None,
          hu_range: tuple[float, float] | None = None) -> None:
    """Paint ``label`` into ``labels`` (in place) where ``mask`` is set in ``box``, over background
    and the segment's own voxels only; with ``hu_range`` only where ``image`` lies in it."""
    sub = labels[box]
    where = mask & ((sub == 0) | (sub == label))
    if hu_range is not None and image is not None:
        lo, hi = sorted(hu_range)
        values = image[box]
        where &= (values >= lo) & (values <= hi)
    sub[where] = label


def erase(labels: np.ndarray, box, mask: np.ndarray, label: int) -> None:
    """Clear the segment ``label``'s voxels under ``mask`` (in place)."""
    sub = labels[box]
    sub[mask & (sub == label)] = 0


def replace_segment(labels: np.ndarray, label: int, result: np.ndarray,
                    within: tuple[slice, ...] | None = None) -> np.ndarray:
    """A copy of ``labels`` where segment ``label`` is ``result`` (boolean, full grid); other
    segments keep their voxels (the result does not overwrite them). ``within``: a box holding
    every voxel of the segment and of ``result`` (only it is rewritten)."""
    out = labels.copy()
    box = within if within is not None else (slice(None),) * labels.ndim
    sub = out[box]
    sub[sub == label] = 0
    sub[np.asarray(result[box], dtype=bool) & (sub == 0)] = label
    return out


def remove_islands(labels: np.ndarray, label: int, spacing_xyz: Sequence[float],
                   min_ml: float | None = None) -> np.ndarray:
    """A copy of ``labels`` with segment ``label``'s detached pieces removed: all but the largest
    (``min_ml`` None), or those smaller than ``min_ml`` millilitres. Face-connected (6-neighbour)."""
    import SimpleITK as sitk

    mask = labels == label
    out = labels.copy()
    if not mask.any():
        return out
    where = np.nonzero(mask)
    lower = [int(w.min()) for w in where]
    upper = [int(w.max()) + 1 for w in where]
    box = tuple(slice(a, b) for a, b in zip(lower, upper))
    image = sitk.GetImageFromArray(mask[box].astype(np.uint8))
    components = sitk.RelabelComponent(sitk.ConnectedComponent(image, False))  # largest first
    comp = sitk.GetArrayFromImage(components)
    if min_ml is None:
        drop = comp > 1
    else:
        voxel_ml = float(np.prod(spacing_xyz)) / 1000.0
        counts = np.bincount(comp.ravel())
        small = np.nonzero(counts * voxel_ml < min_ml)[0]
        drop = np.isin(comp, small[small > 0])
    sub = out[box]
    sub[drop] = 0
    return out


def central_voxel(mask: np.ndarray) -> np.ndarray | None:
    """The voxel (z, y, x) of ``mask`` nearest its centre of mass (inside the mask even where the
    centre is not, as for a ring), or None for an empty mask: where to put the crosshair."""
    voxels = np.argwhere(mask)
    if not len(voxels):
        return None
    return voxels[np.argmin(((voxels - voxels.mean(axis=0)) ** 2).sum(axis=1))]


def margin_radius(spacing_xyz: Sequence[float], mm: float) -> tuple[int, int, int]:
    """The margin's reach in voxels along x, y, z: ``|mm|`` over each spacing, rounded (as 3D
    Slicer's Margin effect does: 2 mm on 3.27 mm slices is one slice, on 0.98 mm pixels two)."""
    return tuple(int(np.floor(abs(mm) / float(s) + 0.5)) for s in spacing_xyz)  # type: ignore[return-value]


def margin(labels: np.ndarray, label: int, spacing_xyz: Sequence[float], mm: float) -> np.ndarray:
    """A copy of ``labels`` with segment ``label`` grown (``mm`` > 0) or shrunk (``mm`` < 0) by
    ``|mm|`` millimetres: dilated or eroded by an ellipsoid of :func:`margin_radius` voxels.
    Growing fills background only, never another segment."""
    import SimpleITK as sitk

    mask = labels == label
    out = labels.copy()
    radius = margin_radius(spacing_xyz, mm)
    if not mask.any() or not any(radius):
        return out
    box = _segment_box(mask, np.asarray(radius[::-1]) + 1)
    image = sitk.GetImageFromArray(mask[box].astype(np.uint8))
    op = sitk.BinaryDilate if mm > 0 else sitk.BinaryErode
    # ITK's erosion takes what lies beyond the image as foreground: a segment cut off by the
    # volume's edge is not eaten from there (the crop leaves background around it elsewhere).
    changed = sitk.GetArrayFromImage(op(image, list(radius), sitk.sitkBall, 0, 1)).astype(bool)
    sub = out[box]
    if mm > 0:
        sub[changed & (sub == 0)] = label
    else:
        sub[~changed & (sub == label)] = 0
    return out


def _segment_box(mask: np.ndarray, reach_zyx) -> tuple[slice, slice, slice]:
    """The bounding box of a non-empty ``mask``, widened by ``reach_zyx`` voxels, within the array."""
    where = np.nonzero(mask)
    lower = np.maximum(np.array([int(w.min()) for w in where]) - reach_zyx, 0)
    upper = np.minimum(np.array([int(w.max()) + 1 for w in where]) + reach_zyx, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lower, upper))  # type: ignore[return-value]


SMOOTHING_METHODS = {
    "median": "bumps and notches smaller than the kernel go",
    "closing": "holes and notches narrower than the kernel are filled",
    "opening": "bumps and strands thinner than the kernel are cut",
    "gaussian": "the outline is blurred and cut at half height",
}


def smoothing_radius(spacing_xyz: Sequence[float], mm: float) -> tuple[int, int, int]:
    """The smoothing kernel's radius in voxels along x, y, z: the largest whose outer voxel
    centres lie at most ``mm`` apart (4 mm: 2 on 1 mm pixels, 0 on 2.5 mm slices)."""
    return tuple(int(np.floor(abs(mm) / (2.0 * float(s)) + 1e-6)) for s in spacing_xyz)  # type: ignore[return-value]


def smooth(labels: np.ndarray, label: int, spacing_xyz: Sequence[float], mm: float,
           method: str = "median") -> np.ndarray:
    """A copy of ``labels`` with segment ``label`` smoothed by a kernel ``mm`` across, as 3D
    Slicer's Smoothing effect (see :data:`SMOOTHING_METHODS`): a median, a closing or an opening
    with an ellipsoid of :func:`smoothing_radius` voxels per axis (at most ``mm`` between its
    outer voxels: a 3 mm kernel leaves 3.27 mm slices alone, so a segment drawn on one slice
    survives it), or a Gaussian of sigma mm / 4 cut at 0.5. Only the segment's voxels and
    background change, never another segment."""
    import SimpleITK as sitk

    if method not in SMOOTHING_METHODS:
        raise ValueError(f"unknown smoothing {method!r}: one of {', '.join(SMOOTHING_METHODS)}")
    mask = labels == label
    out = labels.copy()
    radius = smoothing_radius(spacing_xyz, mm)
    if not mask.any() or not any(radius):
        return out
    box = _segment_box(mask, 2 * np.asarray(radius[::-1]) + 2)
    image = sitk.GetImageFromArray(mask[box].astype(np.uint8))
    image.SetSpacing(tuple(float(v) for v in spacing_xyz))
    if method == "median":
        result = sitk.BinaryMedian(image, list(radius), 1, 0)
    elif method == "closing":
        result = sitk.BinaryMorphologicalClosing(image, list(radius), sitk.sitkBall, 1)
    elif method == "opening":
        result = sitk.BinaryMorphologicalOpening(image, list(radius), sitk.sitkBall, 0, 1)
    else:
        blurred = sitk.SmoothingRecursiveGaussian(sitk.Cast(image, sitk.sitkFloat32), mm / 4.0)
        result = sitk.BinaryThreshold(blurred, 0.5, 2.0, 1, 0)
    smoothed = sitk.GetArrayFromImage(result).astype(bool)
    sub = out[box]
    sub[smoothed & (sub == 0)] = label
    sub[~smoothed & (sub == label)] = 0
    return out


def gap_axis(mask: np.ndarray) -> int | None:
    """The array axis (0 = z, 1 = y, 2 = x) along which ``mask`` has the most empty slices between
    its first and last drawn ones (the axis it was drawn slice by slice along), None without gaps."""
    best, best_gaps = None, 0
    for axis in range(3):
        drawn = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        gaps = int(drawn[-1] - drawn[0] + 1 - len(drawn)) if len(drawn) else 0
        if gaps > best_gaps:
            best, best_gaps = axis, gaps
    return best


def _signed_distance(section: np.ndarray, spacing_2d: Sequence[float]) -> np.ndarray:
    """In-plane signed distance (mm) of each pixel centre to the nearest pixel of the other kind:
    negative inside a 2D mask, positive outside (the pixels either side of its edge: -1 and +1
    pixel), so that ``< 0`` gives the mask back."""
    import SimpleITK as sitk

    def distance_to(pixels: np.ndarray) -> np.ndarray:
        image = sitk.GetImageFromArray(pixels.astype(np.uint8))
        image.SetSpacing(tuple(float(s) for s in spacing_2d[::-1]))   # (x, y) for ITK
        return sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(
            image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True))

    return np.where(section, -distance_to(~section), distance_to(section))


def fill_between_slices(labels: np.ndarray, label: int, spacing_xyz: Sequence[float],
                        axis: int | None = None) -> tuple[np.ndarray, int | None]:
    """Segment ``label`` drawn on some slices (every third one, say), filled in on the empty slices
    between them, as 3D Slicer's "Fill between slices" and ITK-SNAP's interpolation do.

    Shape-based interpolation: on each empty slice between two drawn ones, the segment is where
    the in-plane signed distances to the two drawn outlines, weighted by nearness, are negative; a
    shape that moves or grows between them moves or grows smoothly. Drawn slices do not change, nor
    do the slices beyond the first and last drawn one; only background is filled (never another
    segment). ``axis`` (0 = z, 1 = y, 2 = x): the slices to fill across; by default the axis with
    the most empty slices between drawn ones (:func:`gap_axis`). Returns the new labels (a copy)
    and the axis used (None: no empty slices between drawn ones, nothing filled)."""
    mask = labels == label
    out = labels.copy()
    if axis is None:
        axis = gap_axis(mask)
        if axis is None:
            return out, None
    # work in the segment's in-plane bounding box, with a background border for the distances
    where = np.nonzero(mask)
    if not len(where[0]):
        return out, None
    lower = [max(0, int(w.min()) - 1) for w in where]
    upper = [min(n, int(w.max()) + 2) for w, n in zip(where, labels.shape)]
    box = [slice(a, b) for a, b in zip(lower, upper)]
    sub_mask = np.moveaxis(mask[tuple(box)], axis, 0)
    sub_out = np.moveaxis(out[tuple(box)], axis, 0)        # a view into ``out``
    spacing_zyx = np.asarray(spacing_xyz, dtype=float)[::-1]
    plane_spacing = [s for a, s in enumerate(spacing_zyx) if a != axis]
    padded = lambda s: np.pad(s, 1)  # noqa: E731  (a shape touching the box's edge still has an edge)
    drawn = np.flatnonzero(sub_mask.any(axis=(1, 2)))
    filled_any = False
    for k0, k1 in zip(drawn[:-1], drawn[1:]):
        if k1 - k0 < 2:
            continue
        d0 = _signed_distance(padded(sub_mask[k0]), plane_spacing)[1:-1, 1:-1]
        d1 = _signed_distance(padded(sub_mask[k1]), plane_spacing)[1:-1, 1:-1]
        for k in range(k0 + 1, k1):
            t = (k - k0) / (k1 - k0)
            inside = (1 - t) * d0 + t * d1 < 0
            target = sub_out[k]
            target[inside & (target == 0)] = label
            filled_any = True
    return out, (axis if filled_any else None)


SCISSORS_MODES = {"erase inside": "erase_inside", "erase outside": "erase_outside", "fill inside": "fill_inside"}


def scissors(labels: np.ndarray, label: int, volume: Volume, outline_mm, index_axis: int, mode: str = "erase_inside",
             slice_index: int | None = None) -> np.ndarray:
    """A copy of ``labels`` with segment ``label`` cut by a closed outline drawn on a slice, as 3D
    Slicer's Scissors effect: the outline (points in LPS mm on a slice across ``index_axis``, x=0,
    y=1, z=2) is extruded along that axis through every slice (``slice_index`` None) or kept on
    one slice; "erase_inside" clears the segment within it, "erase_outside" beyond it, and
    "fill_inside" paints the segment within it over background (never over another segment).
    Pixel centres on the outline count as inside."""
    from medviewer.core.polygon import polygon_mask

    if mode not in SCISSORS_MODES.values():
        raise ValueError(f"unknown scissors mode {mode!r}")
    out = labels.copy()
    ijk = volume.patient_to_index(np.asarray(outline_mm, dtype=float).reshape(-1, 3))
    if len(ijk) < 3:
        return out
    array_axis = 2 - index_axis                          # zyx
    in_plane = [a for a in (0, 1, 2) if a != index_axis]   # index axes of the slice: (col, row) order
    inside, edge = polygon_mask(ijk[:, in_plane], tuple(volume.shape[2 - a] for a in in_plane[::-1]))
    region = np.expand_dims(inside | edge, array_axis)      # broadcast along the cut axis
    if slice_index is not None:
        keep = np.zeros(labels.shape[array_axis], dtype=bool)
        if 0 <= slice_index < len(keep):
            keep[slice_index] = True
        region = region & np.expand_dims(keep, tuple(a for a in (0, 1, 2) if a != array_axis))
    region = np.broadcast_to(region, labels.shape)
    if mode == "erase_inside":
        out[region & (labels == label)] = 0
    elif mode == "erase_outside":
        out[~region & (labels == label)] = 0
    else:
        out[region & (labels == 0)] = label
    return out
