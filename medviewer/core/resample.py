"""Putting a label map onto an image's grid (SimpleITK, nearest neighbour, by patient space)."""

from __future__ import annotations

import numpy as np

from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume


def labels_onto_grid(labels: Volume, reference: Volume) -> Volume:
    """``labels`` sampled on ``reference``'s grid (nearest neighbour in patient mm, 0 outside).

    Returns the labels unchanged (as integers) when the grids already match. Raises
    MedviewerError when the two do not overlap at all in patient space.
    """
    array = labels.array
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        if np.issubdtype(array.dtype, np.floating) and not np.allclose(array, np.rint(array)):
            raise MedviewerError("the mask holds non-integer values (not a label map)")
        array = np.rint(array).astype(np.int16) if array.dtype != bool else array.astype(np.uint8)
        labels = labels.with_array(array)
    if labels.same_grid(reference):
        return reference.with_array(labels.array)
    import SimpleITK as sitk

    resampled = sitk.Resample(labels.to_sitk(), reference.to_sitk(), sitk.Transform(),
                              sitk.sitkNearestNeighbor, 0, labels.to_sitk().GetPixelID())
    out = sitk.GetArrayFromImage(resampled)
    if labels.array.any() and not out.any():
        raise MedviewerError("the mask does not overlap the image in patient space")
    return reference.with_array(out)
