"""The statistics of an elliptical region of interest on one slice of an image (pure numpy), as
OHIF's elliptical ROI and Slicer's ROI statistics give them: area, and the mean, standard
deviation, minimum and maximum of the pixels inside (HU on CT).

An ellipse on a slice of the image (its centre and the ends of its axes on one index plane,
within a hundredth of a voxel: what the measure tool draws in a 2D view of an image whose grid is
not tilted) takes the pixels of that slice whose centres lie inside it (or on it). One on any
other plane (a 2D view of a gantry-tilted CT cuts across the image's slices) takes the voxels
nearest the points of a grid on its own plane, as fine as the image's finest spacing, that lie
inside it: each voxel once. The area is the ellipse's own, pi * a * b, not the pixels' (which
step with the grid).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medviewer.core.document import Ellipse
from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume


@dataclass(frozen=True)
class EllipseStats:
    area_mm2: float
    pixel_count: int
    mean: float            # nan when no pixel centre lies inside
    std: float
    minimum: float
    maximum: float
    unit: str              # "HU" for CT, else ""
    axis: int | None       # the index axis (x=0, y=1, z=2) across which it lies; None: oblique
    slice_index: int | None   # 0-based along that axis
    plane: str             # axial, coronal, sagittal or oblique


def ellipse_slice(volume: Volume, ellipse: Ellipse) -> tuple[int, int] | None:
    """(index axis, slice index) of the slice of ``volume`` that holds ``ellipse``; None when it
    lies across the slices (oblique)."""
    found = volume.slice_holding(np.vstack([ellipse.center, ellipse.ends]), tolerance=1e-2)
    if found is None:
        return None
    axis, index = found
    if not 0 <= index < volume.size_xyz[axis]:
        raise MedviewerError("the ellipse lies outside the image")
    return axis, index


def ellipse_mask(volume: Volume, ellipse: Ellipse) -> tuple[int, int, np.ndarray]:
    """(axis, slice index, mask): the pixels of that slice whose centres lie inside, as a boolean
    array shaped as ``volume.array`` indexed at that slice (e.g. (y, x) for axis 2). The ellipse
    must lie on a slice (:func:`ellipse_slice`)."""
    found = ellipse_slice(volume, ellipse)
    if found is None:
        raise MedviewerError("the ellipse does not lie on a slice of the image")
    axis, index = found
    a, b = np.asarray(ellipse.axis_a), np.asarray(ellipse.axis_b)
    la, lb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    array_axis = 2 - axis                        # index axis x, y, z -> array axis 2, 1, 0
    plane_shape = [n for k, n in enumerate(volume.shape) if k != array_axis]
    mask = np.zeros(plane_shape, dtype=bool)
    if la <= 0 or lb <= 0:
        return axis, index, mask
    # pixel centres within the rectangle around the ellipse (index coordinates)
    corners = volume.patient_to_index(np.array([np.add(ellipse.center, s * a + t * b)
                                                for s in (-1, 1) for t in (-1, 1)]))
    lo, hi = np.floor(corners.min(0)).astype(int), np.ceil(corners.max(0)).astype(int)
    size = np.asarray(volume.size_xyz)
    lo, hi = np.clip(lo, 0, size - 1), np.clip(hi, 0, size - 1)
    lo[axis] = hi[axis] = index
    grids = np.meshgrid(*[np.arange(lo[k], hi[k] + 1) for k in range(3)], indexing="ij")
    ijk = np.stack([g.ravel() for g in grids], axis=1)
    d = volume.index_to_patient(ijk) - np.asarray(ellipse.center)
    inside = ((d @ a) / la ** 2) ** 2 + ((d @ b) / lb ** 2) ** 2 <= 1.0 + 1e-9
    hit = ijk[inside]
    others = [k for k in (2, 1, 0) if k != axis]   # the slice's array axes, in array order
    mask[hit[:, others[0]], hit[:, others[1]]] = True
    return axis, index, mask


def oblique_voxels(volume: Volume, ellipse: Ellipse) -> np.ndarray:
    """The voxels (n x 3, array order z, y, x; each once) nearest the points of a grid on the
    ellipse's plane, as fine as the image's finest spacing, that lie inside the ellipse and the
    image."""
    a, b = np.asarray(ellipse.axis_a), np.asarray(ellipse.axis_b)
    la, lb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if la <= 0 or lb <= 0:
        return np.zeros((0, 3), dtype=int)
    step = min(volume.spacing)
    s = np.arange(-np.floor(la / step), np.floor(la / step) + 1) * step
    t = np.arange(-np.floor(lb / step), np.floor(lb / step) + 1) * step
    ss, tt = np.meshgrid(s, t, indexing="ij")
    inside = (ss / la) ** 2 + (tt / lb) ** 2 <= 1.0 + 1e-9
    points = np.asarray(ellipse.center) + ss[inside, None] * (a / la) + tt[inside, None] * (b / lb)
    ijk = np.rint(volume.patient_to_index(points)).astype(int)
    ijk = ijk[np.all((ijk >= 0) & (ijk < np.asarray(volume.size_xyz)), axis=1)]
    return np.unique(ijk[:, ::-1], axis=0)


def ellipse_stats(volume: Volume, ellipse: Ellipse) -> EllipseStats:
    """Area and pixel statistics of ``ellipse`` on ``volume``."""
    found = ellipse_slice(volume, ellipse)
    if found is None:
        zyx = oblique_voxels(volume, ellipse)
        values = volume.array[zyx[:, 0], zyx[:, 1], zyx[:, 2]].astype(np.float64)
        axis = index = None
        plane_name = "oblique"
    else:
        axis, index, mask = ellipse_mask(volume, ellipse)
        values = np.take(volume.array, index, axis=2 - axis)[mask].astype(np.float64)
        plane_name = volume.slice_plane(axis)
    area = float(np.pi * np.linalg.norm(ellipse.axis_a) * np.linalg.norm(ellipse.axis_b))
    if values.size:
        mean, std, lo, hi = float(values.mean()), float(values.std()), float(values.min()), float(values.max())
    else:
        mean = std = lo = hi = float("nan")
    return EllipseStats(area, int(values.size), mean, std, lo, hi, "HU" if volume.modality == "CT" else "",
                        axis, index, plane_name)


def ellipse_caption(stats: EllipseStats) -> str:
    """Two or three lines: the area, then the mean and SD, then the range (when a pixel is inside)."""
    unit = f" {stats.unit}" if stats.unit else ""
    area = f"{stats.area_mm2 / 100:.2f} cm\u00b2" if stats.area_mm2 >= 100 else f"{stats.area_mm2:.1f} mm\u00b2"
    if not stats.pixel_count:
        return f"{area}\n(no pixel inside)"
    return (f"{area}\nmean {stats.mean:.1f} \u00b1 {stats.std:.1f}{unit}\n"
            f"min {stats.minimum:.0f}, max {stats.maximum:.0f}{unit}")
