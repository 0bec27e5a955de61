"""Density-based tissue class scores for one lesion (see the manifest: a heuristic)."""

from __future__ import annotations

import numpy as np

from medviewer.plugins.api import Box, Plugin, PluginError, ScoresResult

# Typical CT densities (HU): class -> (centre, spread). Scores are a softmax of -(d/spread)^2/2.
CLASSES = {
    "air or lung": (-850.0, 150.0),
    "fat": (-100.0, 40.0),
    "fluid": (10.0, 15.0),
    "soft tissue": (45.0, 20.0),
    "calcification": (400.0, 150.0),
}


def class_scores(median_hu: float) -> dict[str, float]:
    logits = np.array([-0.5 * ((median_hu - c) / s) ** 2 for c, s in CLASSES.values()])
    p = np.exp(logits - logits.max())
    p /= p.sum()
    return {name: float(v) for name, v in zip(CLASSES, p)}


class LesionDensity(Plugin):
    def run(self, request, progress, cancel):
        volume = request.volume
        radius = float(request.params["radius_mm"])
        if radius <= 0:
            raise PluginError("radius_mm must be positive")
        if request.prompts.positive:
            centre = np.asarray(request.prompts.positive[0], dtype=float)
            if not volume.contains_point(centre):
                raise PluginError(f"the point {centre.tolist()} mm lies outside the volume")
        else:
            centre = volume.voxel_to_patient((np.asarray(volume.shape) - 1) / 2.0)
        progress("sampling the lesion", 0.2)
        # Voxels within ``radius`` mm of the centre, in a bounding block around it.
        reach = np.ceil(radius / np.asarray(volume.spacing)[::-1]).astype(int)
        c = volume.patient_to_voxel(centre, clip=True)
        lo, hi = np.maximum(c - reach, 0), np.minimum(c + reach + 1, volume.shape)
        block = volume.crop(lo, hi)
        zz, yy, xx = np.indices(block.shape)
        pts = block.voxel_to_patient(np.stack([zz, yy, xx], axis=-1))
        inside = np.linalg.norm(pts - centre, axis=-1) <= radius
        if not inside.any():
            inside[tuple(c - lo)] = True
        cancel.check()
        values = block.array[inside].astype(float)
        median = float(np.median(values))
        progress("scoring", 0.9)
        scores = class_scores(median)
        lower = centre - radius
        region = Box(tuple(lower), tuple(centre + radius), 0, max(scores.values()), "sampled sphere")
        note = (f"median {median:.0f} HU over {int(inside.sum())} voxels within {radius:g} mm of "
                f"({', '.join(f'{v:.1f}' for v in centre)}) mm; heuristic density classes, not a trained model")
        return ScoresResult(scores, region, note)
