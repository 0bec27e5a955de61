"""Lesion measures from a label map on an image's grid (pure numpy).

Per segment: voxel count, volume (mL), mean/std/min/max of the image (HU for CT), centroid and
bounding box (voxel indices and LPS mm), and the longest axial diameter with its perpendicular
(RECIST style), measured on the axial slice where the long axis is largest: the slices across the
index axis nearest the patient's head-foot axis, whatever order the series is stored in (a
sagittal or coronal series is measured in its axial planes, not its own).

Diameters are measured between pixel *corners* (the outline of the voxels), so a single voxel
has a diameter of one pixel diagonal; the perpendicular is the lesion's extent across the long
axis on that slice (equal to RECIST's short axis for convex outlines).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume


@dataclass(frozen=True)
class LesionMeasures:
    label: int
    voxel_count: int
    volume_ml: float
    mean: float
    std: float
    minimum: float
    maximum: float
    centroid_mm: tuple[float, float, float]  # LPS
    bbox_min_zyx: tuple[int, int, int]  # inclusive voxel indices
    bbox_max_zyx: tuple[int, int, int]
    bbox_min_mm: tuple[float, float, float]  # LPS, outer voxel faces
    bbox_max_mm: tuple[float, float, float]
    long_axis_mm: float  # longest in-plane diameter over all slices
    short_axis_mm: float  # extent perpendicular to it, same slice
    long_axis_slice: int  # that slice's index along the axial axis (k for an axial series)
    long_axis_endpoints_mm: tuple[tuple[float, float, float], tuple[float, float, float]]

    def to_dict(self) -> dict:
        return asdict(self)


def _hull(points: np.ndarray) -> np.ndarray:
    """Convex hull (monotone chain) of 2D points, shape (n, 2)."""
    pts = np.unique(points, axis=0)
    if len(pts) <= 2:
        return pts

    def half(seq):
        out: list = []
        for p in seq:
            while len(out) >= 2:
                a, b = out[-2], out[-1]
                if (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]) <= 0:
                    out.pop()
                else:
                    break
            out.append(p)
        return out

    lower = half(pts)
    upper = half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])


def slice_diameters(mask2d: np.ndarray, pixel_xy: tuple[float, float]) -> tuple[float, float, np.ndarray]:
    """(long axis, perpendicular extent, 2 endpoint corners as (col, row) continuous indices).

    ``mask2d`` is [row, col]; ``pixel_xy`` the spacing along columns (x) and rows (y) in mm.
    Distances assume orthogonal in-plane axes (always true for a Volume).
    """
    rows, cols = np.nonzero(mask2d)
    if rows.size == 0:
        return 0.0, 0.0, np.zeros((2, 2))
    # corners of every pixel, in continuous (col, row) index units (pixel centres are integers)
    offsets = np.array([[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]])
    corners = (np.stack([cols, rows], axis=1)[:, None, :] + offsets[None]).reshape(-1, 2)
    hull = _hull(corners)
    scale = np.asarray(pixel_xy, dtype=float)
    mm = hull * scale
    d = np.linalg.norm(mm[:, None, :] - mm[None, :, :], axis=2)
    i, j = np.unravel_index(int(np.argmax(d)), d.shape)
    long_axis = float(d[i, j])
    if long_axis == 0:
        return 0.0, 0.0, hull[[i, j]]
    u = (mm[j] - mm[i]) / long_axis
    perp = np.array([-u[1], u[0]])
    proj = mm @ perp
    return long_axis, float(proj.max() - proj.min()), hull[[i, j]]


def measure_segments(image: Volume, labels: Volume, label_values=None) -> list[LesionMeasures]:
    """Measures of each label value present in ``labels`` (or of ``label_values``)."""
    if not image.same_grid(labels):
        raise MedviewerError("the label map is not on the image's grid (resample it first)")
    lab = np.asarray(labels.array)
    if label_values is None:
        label_values = [int(v) for v in np.unique(lab) if v != 0]
    values = np.asarray(image.array)
    out = []
    for value in label_values:
        mask = lab == value
        count = int(mask.sum())
        if count == 0:
            raise MedviewerError(f"segment {value} is empty")
        vox = values[mask].astype(np.float64)
        zyx = np.argwhere(mask)
        lo, hi = zyx.min(axis=0), zyx.max(axis=0)
        corners = np.array([[a, b, c] for a in (lo[0] - 0.5, hi[0] + 0.5) for b in (lo[1] - 0.5, hi[1] + 0.5)
                            for c in (lo[2] - 0.5, hi[2] + 0.5)])
        corners_mm = image.voxel_to_patient(corners)
        # The axial planes: across the array axis nearest S (axis 0, k, for an axial series).
        axis = 2 - int(np.argmax(np.abs(np.asarray(image.direction)[2])))
        rows_axis, cols_axis = [a for a in range(3) if a != axis]
        spacing_zyx = np.asarray(image.spacing)[::-1]
        best = (0.0, 0.0, int(lo[axis]), np.zeros((2, 2)))
        for k in range(int(lo[axis]), int(hi[axis]) + 1):
            box = [slice(int(a), int(b) + 1) for a, b in zip(lo, hi)]
            box[axis] = k
            plane = mask[tuple(box)]  # [rows, cols] in array order of the other two axes
            if not plane.any():
                continue
            long_axis, short_axis, ends = slice_diameters(plane, (spacing_zyx[cols_axis], spacing_zyx[rows_axis]))
            if long_axis > best[0]:
                best = (long_axis, short_axis, k, ends + np.array([lo[cols_axis], lo[rows_axis]]))
        ends_zyx = np.zeros((2, 3))
        ends_zyx[:, axis] = best[2]
        ends_zyx[:, cols_axis], ends_zyx[:, rows_axis] = best[3][:, 0], best[3][:, 1]
        ends_mm = image.voxel_to_patient(ends_zyx)
        out.append(LesionMeasures(
            label=int(value), voxel_count=count, volume_ml=count * image.voxel_volume_ml,
            mean=float(vox.mean()), std=float(vox.std()), minimum=float(vox.min()), maximum=float(vox.max()),
            centroid_mm=tuple(float(c) for c in image.voxel_to_patient(zyx.mean(axis=0))),
            bbox_min_zyx=tuple(int(v) for v in lo), bbox_max_zyx=tuple(int(v) for v in hi),
            bbox_min_mm=tuple(float(v) for v in corners_mm.min(axis=0)),
            bbox_max_mm=tuple(float(v) for v in corners_mm.max(axis=0)),
            long_axis_mm=best[0], short_axis_mm=best[1], long_axis_slice=best[2],
            long_axis_endpoints_mm=(tuple(float(v) for v in ends_mm[0]), tuple(float(v) for v in ends_mm[1])),
        ))
    return out
