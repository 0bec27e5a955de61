"""Shared pieces of the click-to-segment engines (numpy and SimpleITK only, no torch).

The learned engine sees a fixed-size patch on a fixed model grid: the CT (windowed to soft
tissue) and one map per click polarity (Gaussian blobs at the positive and negative clicks).
Training and inference build these inputs with the same functions, so what the network learned
on is what it meets in the product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medviewer.core.volume import Volume

# Soft-tissue window the network sees, mapped to about [-1, 1].
HU_CENTER, HU_HALF_WIDTH = 50.0, 300.0
AIR_HU = -1000.0


def normalize_ct(hu: np.ndarray) -> np.ndarray:
    return (np.clip(hu, HU_CENTER - HU_HALF_WIDTH, HU_CENTER + HU_HALF_WIDTH) - HU_CENTER) / HU_HALF_WIDTH


@dataclass(frozen=True)
class ModelGrid:
    spacing: tuple[float, float, float]  # (x, y, z) mm
    patch_zyx: tuple[int, int, int]
    sigma_vox: float = 2.5  # Gaussian radius of a click blob, in model voxels


def axial_axes(direction) -> tuple[np.ndarray, np.ndarray]:
    """The source's index axes reordered and flipped to run as near as they can to L, P and S:
    ``(order, signs)`` such that grid axis a is ``signs[a]`` times source axis ``order[a]``. A
    sagittal, coronal or feet-first series gets the axial frame the network learned in; the grid
    stays in the source's own planes (a tilted gantry stays tilted, no corners of padding)."""
    d = np.abs(np.asarray(direction, dtype=float))
    order = np.full(3, -1)
    for _ in range(3):  # greedy on the strongest remaining alignment
        d_left = d.copy()
        d_left[:, order[order >= 0]] = -1
        d_left[order >= 0, :] = -1
        a, j = np.unravel_index(int(np.argmax(d_left)), d.shape)
        order[a] = j
    signs = np.sign(np.asarray(direction, dtype=float)[np.arange(3), order])
    return order, np.where(signs == 0, 1.0, signs)


def resample_to_spacing(volume: Volume, spacing, *, labels: bool = False, axial: bool = False) -> Volume:
    """``volume`` on a grid of ``spacing`` (x, y, z) mm covering the same extent and direction.
    With ``axial``, the grid's axes are the source's in the order and sense of L, P, S (see
    :func:`axial_axes`; the same grid for a series that is axial already)."""
    import SimpleITK as sitk

    spacing = np.asarray(spacing, dtype=float)
    extent = np.asarray(volume.size_xyz) * np.asarray(volume.spacing)
    direction = np.asarray(volume.direction, dtype=float)
    if axial:
        order, signs = axial_axes(direction)
        extent, direction = extent[order], direction[:, order] * signs
    size = np.maximum(1, np.round(extent / spacing)).astype(int)
    # Keep the grid centred on the same physical centre.
    centre_ijk = (np.asarray(volume.size_xyz) - 1) / 2.0
    centre = volume.index_to_patient(centre_ijk)
    origin = centre - direction @ ((size - 1) / 2.0 * spacing)
    image = volume.to_sitk()
    if labels:
        image = sitk.Cast(image, sitk.sitkUInt8)
    out = sitk.Resample(image, [int(s) for s in size], sitk.Transform(),
                        sitk.sitkNearestNeighbor if labels else sitk.sitkLinear,
                        tuple(origin), tuple(spacing), tuple(direction.ravel()),
                        0 if labels else AIR_HU, sitk.sitkUInt8 if labels else sitk.sitkFloat32)
    return Volume.from_sitk(out, modality=volume.modality, frame_of_reference_uid=volume.frame_of_reference_uid)


def window_bounds(shape_zyx, centre_zyx, size_zyx) -> tuple[np.ndarray, np.ndarray]:
    """The network's window: at most ``size_zyx`` voxels around ``centre_zyx``, shifted and clipped
    so that it lies inside the volume (the network sees real voxels only, never padding)."""
    shape = np.asarray(shape_zyx, dtype=int)
    size = np.minimum(np.asarray(size_zyx, dtype=int), shape)
    lower = np.clip(np.rint(np.asarray(centre_zyx, dtype=float)).astype(int) - size // 2, 0, shape - size)
    return lower, lower + size


def network_windows(shape_zyx, positives_zyx, size_zyx, margin: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    """The windows the network runs on: one around the first positive click, then one around
    each later positive click that lies outside (or within ``margin`` voxels of the edge of)
    every window so far, so that a click on a large lesion's far end is always seen."""
    windows: list[tuple[np.ndarray, np.ndarray]] = []
    for p in positives_zyx:
        p = np.asarray(p, dtype=float)
        seen = any(np.all(p >= lo + margin) and np.all(p < hi - margin) for lo, hi in windows)
        if not seen:
            windows.append(window_bounds(shape_zyx, p, size_zyx))
    return windows


def pad_to_multiple(array: np.ndarray, multiple: int = 16) -> np.ndarray:
    """``array`` (..., z, y, x) padded at the high ends of its last three axes (repeating the edge)
    to a multiple of ``multiple``, the size the UNet's strides need; crop the output back."""
    spatial = np.asarray(array.shape[-3:])
    target = -(-spatial // multiple) * multiple
    pads = [(0, 0)] * (array.ndim - 3) + [(0, int(t - s)) for s, t in zip(spatial, target)]
    return np.pad(array, pads, mode="edge")


def click_map(shape_zyx, clicks_zyx, sigma_vox: float) -> np.ndarray:
    """Max of Gaussian blobs (peak 1) at continuous voxel positions ``clicks_zyx``."""
    out = np.zeros(shape_zyx, dtype=np.float32)
    if len(clicks_zyx) == 0:
        return out
    r = int(np.ceil(3 * sigma_vox))
    for c in np.asarray(clicks_zyx, dtype=float):
        centre = np.rint(c).astype(int)
        lo = np.maximum(centre - r, 0)
        hi = np.minimum(centre + r + 1, shape_zyx)
        if np.any(hi <= lo):
            continue
        zz, yy, xx = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        d2 = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2
        blob = np.exp(-d2 / (2 * sigma_vox ** 2)).astype(np.float32)
        view = out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        np.maximum(view, blob, out=view)
    return out


def network_input(ct_patch_hu: np.ndarray, positives_zyx, negatives_zyx, sigma_vox: float) -> np.ndarray:
    """The (3, z, y, x) float32 input: normalised CT, positive-click map, negative-click map."""
    return np.stack([
        normalize_ct(ct_patch_hu).astype(np.float32),
        click_map(ct_patch_hu.shape, positives_zyx, sigma_vox),
        click_map(ct_patch_hu.shape, negatives_zyx, sigma_vox),
    ])


def deepest_point(mask: np.ndarray, spacing_zyx=(1.0, 1.0, 1.0)) -> tuple[np.ndarray, float] | None:
    """The voxel of ``mask``'s largest component farthest from its boundary, and that distance (mm)."""
    import SimpleITK as sitk

    if not mask.any():
        return None
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))
    components = sitk.RelabelComponent(sitk.ConnectedComponent(image), sortByObjectSize=True)
    largest = components == 1
    padded = sitk.ConstantPad(largest, (1, 1, 1), (1, 1, 1), 0)
    distance = sitk.SignedMaurerDistanceMap(padded, insideIsPositive=True, useImageSpacing=True,
                                            squaredDistance=False)
    d = sitk.GetArrayFromImage(distance)[1:-1, 1:-1, 1:-1]
    d[~sitk.GetArrayViewFromImage(largest).astype(bool)] = -np.inf
    zyx = np.array(np.unravel_index(int(np.argmax(d)), d.shape))
    return zyx, float(d[tuple(zyx)])


def corrective_click(prediction: np.ndarray, truth: np.ndarray, spacing_zyx=(1.0, 1.0, 1.0)):
    """The robot user's next click (the reference protocol of tools/click_eval.py): in the larger
    error by voxel count (missed tumour -> positive, spill -> negative), at the deepest point of
    its largest component. Returns (zyx, is_positive) or None when there is no error."""
    missed = truth & ~prediction
    spill = prediction & ~truth
    n_missed, n_spill = int(missed.sum()), int(spill.sum())
    if n_missed == 0 and n_spill == 0:
        return None
    positive = n_missed >= n_spill
    found = deepest_point(missed if positive else spill, spacing_zyx)
    return found[0], positive


#: how far (voxels) from a positive click a part of the mask may lie and still count as the
#: clicked lesion (a small nodule's mask may miss the voxel clicked on its edge)
CLICK_REACH_VOXELS = 2


def keep_clicked(mask: np.ndarray, clicks_zyx) -> np.ndarray:
    """The connected parts of ``mask`` that hold a positive click (voxel indices z, y, x), or else
    those within :data:`CLICK_REACH_VOXELS` of one; none (an empty mask) if no part is that near.

    All of the mask came back when no part held a click, until LIDC's nodules showed what that
    gives: the learned engine unsure at a 0.6-5 mL nodule (probability under 0.5 at the click)
    returned something 13 mm to 32 slices away, Dice 0 whatever the user clicked next. An empty
    mask says "nothing found here", and "auto" then asks the classical engine."""
    import SimpleITK as sitk

    if not mask.any():
        return mask
    labels = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8))))
    hi = np.asarray(mask.shape) - 1
    keep = set()
    for c in clicks_zyx:
        at = np.clip(np.rint(c).astype(int), 0, hi)
        lo, up = np.maximum(at - CLICK_REACH_VOXELS, 0), np.minimum(at + CLICK_REACH_VOXELS + 1, hi + 1)
        near = labels[tuple(slice(a, b) for a, b in zip(lo, up))]
        inside = int(labels[tuple(at)])
        if inside:
            keep.add(inside)
        elif near.any():   # the nearest part within reach
            zz, yy, xx = np.nonzero(near)
            d = (zz + lo[0] - at[0]) ** 2 + (yy + lo[1] - at[1]) ** 2 + (xx + lo[2] - at[2]) ** 2
            k = int(np.argmin(d))
            keep.add(int(near[zz[k], yy[k], xx[k]]))
    return np.isin(labels, list(keep)) if keep else np.zeros_like(mask)


# The learned engine's network learned from windows 192 mm deep. An image thinner than this along
# any of its axes (a single slice; a slab of 4 slices of 3.27 mm) is a few model-grid voxels deep,
# which it never saw: its masks there shrink to a fraction of the lesion (STS_019 cut to 1-4
# slices: Dice 0.21-0.60 where the classical engine gets 0.67; 5 slices, 16.4 mm: 0.69 to 0.66).
LEARNED_MIN_EXTENT_MM = 16.0


def too_thin_for_learned(volume: Volume) -> str:
    """Why the learned engine should leave ``volume`` to the classical one ("" when it need not)."""
    sizes = np.asarray(volume.shape)[::-1]  # x, y, z index axes
    extent = sizes * np.asarray(volume.spacing)
    if extent.min() >= LEARNED_MIN_EXTENT_MM:
        return ""
    n = int(sizes[int(np.argmin(extent))])
    what = "a single slice" if n == 1 else f"{n} slices ({extent.min():.1f} mm)"
    return f"the image is {what} thick, and the learned engine needs {LEARNED_MIN_EXTENT_MM:g} mm"


def reaches_image_edge(mask: np.ndarray, spacing_zyx=None, thin_mm: float = LEARNED_MIN_EXTENT_MM) -> bool:
    """Whether ``mask`` touches any face of its image: a lesion mask that does has either leaked
    (into tissue that goes on beyond the scan) or belongs to a lesion the scan cuts off. With
    ``spacing_zyx``, the faces across an axis thinner than ``thin_mm`` (a single slice, a thin
    slab) do not count: any lesion in such an image touches them."""
    thin = (np.zeros(3, bool) if spacing_zyx is None
            else np.asarray(mask.shape) * np.asarray(spacing_zyx, float) < thin_mm)
    faces = [np.take(mask, [0, -1], axis=a) for a in range(3) if not thin[a]]
    return bool(any(f.any() for f in faces))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)
