"""Masks and images on a voxel grid, as the click engines handle them: the ball of so many mm
around a voxel, a mask grown by a ball of so many mm, its holes filled (in 3D, or slice by
slice), the voxels nearer to some points than to others, and a Gaussian smoothing that also works
on an image a few voxels thick. Shared by the classical engine, the correction rule
(corrections), the lung rim (air_rim), auto's choice (engine_choice) and the synthetic lesions.
"""

from __future__ import annotations

import numpy as np


def smooth_image(image, sigma_mm: float):
    """Gaussian smoothing of a SimpleITK image, also on one only a few voxels thick (a single
    slice, a thin slab, a crop at the volume's edge): ITK's recursive Gaussian needs at least 4
    voxels along every axis, so a thinner axis is padded by repeating its edge, then cut back."""
    import SimpleITK as sitk

    short = [max(0, 4 - n) for n in image.GetSize()]
    if not any(short):
        return sitk.SmoothingRecursiveGaussian(image, sigma_mm)
    padded = sitk.ZeroFluxNeumannPad(image, [0, 0, 0], short)
    return sitk.Crop(sitk.SmoothingRecursiveGaussian(padded, sigma_mm), [0, 0, 0], short)


def fill_slices(mask: np.ndarray) -> np.ndarray:
    """``mask`` with each axial slice's holes filled (ITK's hole filling slice by slice gives the
    same: tests/segmentation/test_classical.py; see :func:`fill_slices_in_box`)."""
    return fill_slices_in_box(np.asarray(mask, bool))


def fill_slices_in_box(mask: np.ndarray, keep_open=()) -> np.ndarray:
    """:func:`fill_slices` on ``mask``'s bounding box, less the holes (joined from slice to slice)
    that hold a voxel of ``keep_open`` (z, y, x indices: a negative click's, which made that hole).
    The slices' background is labelled at once, 32 slices at a time, a plane of mask between
    each two: a hole is a part that touches no edge of its slice (slice by slice, ITK's hole
    filling took 1.4 s over a mask's 300 x 400 x 400 box; this, half of that, and as many
    seconds less again on a spongy mask)."""
    import SimpleITK as sitk

    if not mask.any():
        return mask.copy()
    nz = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != k))) for k in range(3)]
    box = tuple(slice(n[0], n[-1] + 1) for n in nz)
    inner = mask[box]
    holes = np.zeros(inner.shape, bool)
    for z0 in range(0, inner.shape[0], 32):
        chunk = inner[z0:z0 + 32]
        planes = np.ones((2 * len(chunk) - 1,) + chunk.shape[1:], np.uint8)
        planes[::2] = chunk
        labels = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(1 - planes), False))[::2]
        outside = np.zeros(int(labels.max()) + 1, bool)
        for edge in (labels[:, 0], labels[:, -1], labels[:, :, 0], labels[:, :, -1]):
            outside[edge] = True
        outside[0] = True  # (the mask itself)
        holes[z0:z0 + 32] = ~outside[labels]
    inside = [tuple(int(v) - b.start for v, b in zip(p, box)) for p in keep_open
              if all(b.start <= int(v) < b.stop for v, b in zip(p, box))]
    if any(holes[q] for q in inside):
        labels = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(holes.astype(np.uint8))))
        holes &= ~np.isin(labels, [int(labels[q]) for q in inside if labels[q]])
    out = mask.copy()
    out[box] |= holes
    return out


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with its holes filled: what a flood from outside (face-connected) cannot reach."""
    import SimpleITK as sitk

    padded = sitk.GetImageFromArray(np.pad(mask, 1).astype(np.uint8))
    outside = sitk.GetArrayFromImage(sitk.ConnectedThreshold(padded, seedList=[(0, 0, 0)], lower=0, upper=0,
                                                             replaceValue=1)).astype(bool)
    return ~outside[1:-1, 1:-1, 1:-1]


def ball(box, centre, spacing_zyx, radius_mm: float) -> np.ndarray:
    """The voxels of ``box`` (a tuple of slices, one per axis) within ``radius_mm`` of the voxel
    ``centre`` (in the same coordinates as the slices; it may lie outside the box)."""
    zz, yy, xx = np.ogrid[tuple(slice(b.start - c, b.stop - c) for b, c in zip(box, centre))]
    return (zz * spacing_zyx[0]) ** 2 + (yy * spacing_zyx[1]) ** 2 + (xx * spacing_zyx[2]) ** 2 <= radius_mm ** 2


def dilate(mask: np.ndarray, radius_mm: float, spacing_zyx) -> np.ndarray:
    """``mask`` grown by a ball of ``radius_mm`` (voxels within that distance of it)."""
    import SimpleITK as sitk

    if not mask.any():
        return mask.copy()
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))
    d = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(image, insideIsPositive=False,
                                                            squaredDistance=False, useImageSpacing=True))
    return mask | (d <= radius_mm)


def nearer_to(shape, neg: np.ndarray, pos: np.ndarray, spacing_zyx) -> np.ndarray:
    """Voxels nearer (in mm) to any of ``neg`` than to every one of ``pos``."""
    zz, yy, xx = np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, spacing_zyx)), indexing="ij", sparse=True)

    def nearest(points):
        best = None
        for p in points * spacing_zyx:
            d = (zz - p[0]) ** 2 + (yy - p[1]) ** 2 + (xx - p[2]) ** 2
            best = d if best is None else np.minimum(best, d)
        return best

    return nearest(neg) < nearest(pos)
