"""The classical click-to-segment engine: SimpleITK region growing on a crop around the clicks.

No weights: intensity statistics around the positive clicks set a window, connected voxels within
it grow from the clicks, an opening cuts thin bridges into neighbouring tissue, holes are filled.
Negative clicks remove the part of the region nearer to them than to any positive click. If the
region reaches the crop's border the crop grows (up to ``max_radius_mm``).

Strong on lesions with contrast to their surroundings (lung nodules in air, hypodense liver
lesions); it leaks into muscle of similar density, which is what the learned engine is for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume


@dataclass(frozen=True)
class ClassicalParams:
    seed_radius_mm: float = 5.0  # sphere around each positive click that sets the statistics
    smoothing_mm: float = 1.5  # Gaussian smoothing for the statistics (CT noise) ...
    growth_smoothing_mm: float = 0.8  # ... and, lighter, for the growth (keeps small lesions' borders)
    window_sigmas: float = 2.5  # intensity window: mean +- this many standard deviations
    min_sigma_hu: float = 12.0
    max_sigma_hu: float = 60.0
    opening_mm: float = 2.0  # cuts bridges thinner than about twice this ...
    adaptive_opening: float = 0.5  # ... or than this fraction of the lesion's depth at the click
    start_radius_mm: float = 50.0
    max_radius_mm: float = 130.0


def _crop_bounds(volume: Volume, points_zyx: np.ndarray, radius_mm: float):
    spacing_zyx = np.asarray(volume.spacing)[::-1]
    margin = np.ceil(radius_mm / spacing_zyx).astype(int)
    lower = np.maximum(points_zyx.min(axis=0) - margin, 0)
    upper = np.minimum(points_zyx.max(axis=0) + margin + 1, volume.shape)
    return lower, upper


def segment_classical(volume: Volume, positives_mm: Sequence[Sequence[float]],
                      negatives_mm: Sequence[Sequence[float]] = (), params: ClassicalParams = ClassicalParams(),
                      progress: Callable[[str, float], None] | None = None,
                      cancelled: Callable[[], bool] | None = None) -> np.ndarray:
    """A boolean mask on ``volume``'s grid of the lesion under the positive clicks (LPS mm)."""
    if not len(positives_mm):
        raise MedviewerError("click-to-segment needs at least one positive point")
    pos = np.array([volume.patient_to_voxel(p) for p in positives_mm])
    neg = np.array([volume.patient_to_voxel(p) for p in negatives_mm]).reshape(-1, 3)
    radius = params.start_radius_mm
    while True:
        if cancelled is not None and cancelled():
            raise MedviewerError("segmentation cancelled")
        lower, upper = _crop_bounds(volume, np.vstack([pos, neg]) if len(neg) else pos, radius)
        crop = volume.crop(lower, upper)
        if progress is not None:
            progress("region growing", 0.2)
        mask = _grow(crop, pos - lower, neg - lower, params)
        touches = (mask[[0, -1]].any() or mask[:, [0, -1]].any() or mask[:, :, [0, -1]].any())
        at_volume_edge = np.all(lower == 0) and np.all(upper == volume.shape)
        if not touches or radius >= params.max_radius_mm or at_volume_edge:
            break
        radius = min(params.max_radius_mm, radius * 1.6)
    out = np.zeros(volume.shape, dtype=bool)
    out[lower[0]:upper[0], lower[1]:upper[1], lower[2]:upper[2]] = mask
    if progress is not None:
        progress("done", 1.0)
    return out


def _grow(crop: Volume, pos: np.ndarray, neg: np.ndarray, params: ClassicalParams) -> np.ndarray:
    import SimpleITK as sitk

    image = sitk.Cast(crop.to_sitk(), sitk.sitkFloat32)
    # Statistics on a Gaussian-smoothed copy (CT noise would widen the window); growth on an
    # edge-preserving smoothing, so that small lesions keep their borders.
    arr = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(image, params.smoothing_mm))
    smooth = sitk.SmoothingRecursiveGaussian(image, params.growth_smoothing_mm)
    spacing_zyx = np.asarray(crop.spacing)[::-1]
    # Statistics in spheres around the positive clicks.
    r = np.ceil(params.seed_radius_mm / spacing_zyx).astype(int)
    values = []
    for p in pos:
        lo, hi = np.maximum(p - r, 0), np.minimum(p + r + 1, arr.shape)
        zz, yy, xx = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        d2 = (((zz - p[0]) * spacing_zyx[0]) ** 2 + ((yy - p[1]) * spacing_zyx[1]) ** 2
              + ((xx - p[2]) * spacing_zyx[2]) ** 2)
        values.append(arr[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]][d2 <= params.seed_radius_mm ** 2])
    values = np.concatenate(values)
    mean = float(np.median(values))
    sigma = float(np.clip(1.4826 * np.median(np.abs(values - mean)), params.min_sigma_hu, params.max_sigma_hu))
    seeds = [tuple(int(v) for v in p[::-1]) for p in pos]
    region = sitk.ConnectedThreshold(smooth, seedList=seeds, lower=mean - params.window_sigmas * sigma,
                                     upper=mean + params.window_sigmas * sigma, replaceValue=1)
    # Opening scaled to the lesion: the depth of the region at the clicks says how thick the
    # lesion is; attachments thinner than about half of that (vessels, a contact with the chest
    # wall or muscle) are cut, and what remains at the clicks is dilated back inside the region.
    distance = sitk.SignedMaurerDistanceMap(region, insideIsPositive=True, squaredDistance=False,
                                            useImageSpacing=True)
    depth_map = sitk.GetArrayViewFromImage(distance)
    depth = max(float(depth_map[tuple(p)]) for p in pos)
    opening_mm = max(params.opening_mm, params.adaptive_opening * depth)
    radius_vox = [max(1, int(round(opening_mm / s))) for s in crop.spacing]
    opened = sitk.BinaryMorphologicalOpening(region, radius_vox, sitk.sitkBall)
    core = _components_at(sitk.GetArrayFromImage(opened).astype(bool), pos)
    if core.any():
        grown = sitk.BinaryDilate(sitk.GetImageFromArray(core.astype(np.uint8)), radius_vox, sitk.sitkBall)
        kept = sitk.GetArrayFromImage(region).astype(bool) & sitk.GetArrayFromImage(grown).astype(bool)
        region = sitk.GetImageFromArray(kept.astype(np.uint8))
    mask = sitk.GetArrayFromImage(region).astype(bool)
    if len(neg):
        mask &= ~_nearer_to(mask.shape, neg, pos, spacing_zyx)
    mask = _components_at(mask, pos)
    filled = sitk.BinaryFillhole(sitk.GetImageFromArray(mask.astype(np.uint8)))
    closed = sitk.BinaryMorphologicalClosing(filled, [1, 1, 1], sitk.sitkBall)
    return sitk.GetArrayFromImage(closed).astype(bool) | mask


def _nearer_to(shape, neg: np.ndarray, pos: np.ndarray, spacing_zyx) -> np.ndarray:
    """Voxels nearer (in mm) to any of ``neg`` than to every one of ``pos``."""
    zz, yy, xx = np.meshgrid(*(np.arange(n) * s for n, s in zip(shape, spacing_zyx)), indexing="ij", sparse=True)

    def nearest(points):
        best = None
        for p in points * spacing_zyx:
            d = (zz - p[0]) ** 2 + (yy - p[1]) ** 2 + (xx - p[2]) ** 2
            best = d if best is None else np.minimum(best, d)
        return best

    return nearest(neg) < nearest(pos)


def _components_at(mask: np.ndarray, pos: np.ndarray) -> np.ndarray:
    import SimpleITK as sitk

    labels = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8))))
    keep = {int(labels[tuple(p)]) for p in pos} - {0}
    return np.isin(labels, list(keep)) if keep else np.zeros_like(mask)
