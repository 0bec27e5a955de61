"""How far two segmentations of one lesion agree (as Slicer's Segment Comparison module): overlap
(Dice, Jaccard), volumes, and the distances between their surfaces in mm.

Surface distances are taken from each mask's boundary voxels (face-connected to the outside) to
the other mask's boundary, on the voxel grid with its spacing; the Hausdorff distance is their
maximum over both directions, HD95 the 95th percentile of all of them, and the mean surface
distance their mean (the "average symmetric surface distance").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Agreement:
    dice: float
    jaccard: float
    volume_ml: float             # of the segmentation
    reference_volume_ml: float   # of the reference
    volume_difference_pct: float  # (volume - reference) / reference, in %
    hausdorff_mm: float          # nan when either mask is empty
    hd95_mm: float
    mean_surface_mm: float

    def to_dict(self) -> dict:
        return asdict(self)


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a face-neighbour outside it (or at the array's edge)."""
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1, 1:-1].copy()
    for axis in range(3):
        for shift in (-1, 1):
            inner &= np.roll(padded, shift, axis=axis)[1:-1, 1:-1, 1:-1]
    return mask & ~inner


def _distance_to(mask: np.ndarray, spacing_xyz: Sequence[float]) -> np.ndarray:
    """Distance (mm) of every voxel centre to the nearest boundary voxel centre of ``mask``."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(_boundary(mask).astype(np.uint8))
    image.SetSpacing(tuple(float(s) for s in spacing_xyz))
    distance = sitk.SignedMaurerDistanceMap(image, insideIsPositive=False, squaredDistance=False,
                                            useImageSpacing=True)
    return np.abs(sitk.GetArrayFromImage(distance))


def compare_masks(mask: np.ndarray, reference: np.ndarray, spacing_xyz: Sequence[float]) -> Agreement:
    """The agreement of boolean ``mask`` with ``reference`` (same grid, ``spacing_xyz`` in mm)."""
    mask, reference = np.asarray(mask, bool), np.asarray(reference, bool)
    if mask.shape != reference.shape:
        raise ValueError(f"the masks lie on different grids: {mask.shape} and {reference.shape}")
    voxel_ml = float(np.prod(spacing_xyz)) / 1000.0
    a, b = int(mask.sum()), int(reference.sum())
    both = int((mask & reference).sum())
    union = a + b - both
    dice = 2.0 * both / (a + b) if a + b else 1.0
    jaccard = both / union if union else 1.0
    difference = 100.0 * (a - b) / b if b else float("nan")
    hausdorff = hd95 = mean = float("nan")
    if a and b:
        # only the box around both masks matters (plus a voxel for their boundaries)
        where = np.nonzero(mask | reference)
        box = tuple(slice(max(int(w.min()) - 1, 0), int(w.max()) + 2) for w in where)
        m, r = mask[box], reference[box]
        d_mr = _distance_to(r, spacing_xyz)[_boundary(m)]
        d_rm = _distance_to(m, spacing_xyz)[_boundary(r)]
        distances = np.concatenate([d_mr, d_rm])
        hausdorff = float(distances.max())
        hd95 = float(np.percentile(distances, 95))
        mean = float(distances.mean())
    return Agreement(dice, jaccard, a * voxel_ml, b * voxel_ml, difference, hausdorff, hd95, mean)
