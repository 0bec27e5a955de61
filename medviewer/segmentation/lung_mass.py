"""A mass in the lung, outlined along rays from the click that end where the lung begins.

The learned engine outlines a third to two thirds of a mass of 150-400 mL in the lung (its
weights' size prior), and region growing runs from such a mass on into the chest wall, the
mediastinum or the diaphragm it lies against, or closes off only its darker centre. Yet the lung
bounds it on most sides: along rays from the click the mass ends where the lung begins (half-way
from soft tissue to aerated lung, ``LUNG_EDGE_HU``). A ray that meets no lung runs into what the
mass lies against; it ends where its nearest rays that met the lung end (the mass's face against
the wall goes on as its edge against the lung does), or sooner where it meets fat or bone.

The outline is taken (:func:`mass_to_the_lung`) only where it plainly is one: lung ends
``LEAST_LUNG`` of the rays, the ends are about round (their spread at most ``MOST_IRREGULAR`` of
their mean), and it holds ``HELD`` of the mask the engines gave and is ``LARGER`` times as large
(``CLOSED_LEAST`` times over an outline region growing closed). Four fresh draws' pasted masses
of 110-340 mL in the lung (A0001, LIDC-IDRI-0001 to 0003), after one click: 0.45-0.88 ->
0.89-1.00 (docs/click-to-segment.md gives the figures).
"""

from __future__ import annotations

import numpy as np

from medviewer.core.volume import Volume

RAY_COUNT = 400
REACH_MM = 70.0  # the longest ray (a mass of up to about 1.4 L)
STEP_MM = 1.0
SMOOTHING_MM = 1.5
LUNG_EDGE_HU = -400.0  # half-way from soft tissue to aerated lung
NOT_MASS_HU = (-60.0, 200.0)  # fat below, bone above: a ray into the wall ends there at the latest
NEIGHBOURS = 12  # a ray that met no lung ends where the median of this many nearest that did
LEAST_LUNG = 0.6
MOST_IRREGULAR = 0.26  # (rays run on through what the mass lies against: 0.27-0.35; a mass's own: 0.10-0.25)
FEW_LUNG, FEW_LUNG_IRREGULAR = 0.7, 0.22  # where lung ends fewer rays, more of the outline is the
# neighbours' guess: it must be rounder (A0001's tumour: lung 0.67, spread 0.259-0.27 as the click
# moves by a rounding; the masses outlined well with lung under 0.7: 0.62, spread 0.12)
HELD = 0.9
LARGER = (1.2, 4.0)
CLOSED_LEAST = 2.0  # (where region growing closed the mask, from this: see mass_to_the_lung)
KEPT = 0.95  # a previous mask this close to the outline (Dice) is the outline, corrected (0.8 took
# the learned engine's own corrected mask of a 170 mL mass for it: 0.843 -> 0.807 after three clicks)


def outline_to_the_lung(volume: Volume, point_mm) -> tuple[np.ndarray | None, float, float]:
    """(outline, share of rays that met the lung, the ends' spread over their mean) from the click
    ``point_mm`` (LPS mm); the outline is None where under a third of the rays met the lung.
    Kept for the last click asked: auto asks again at each corrective click."""
    from medviewer.segmentation.classical import remember_last

    return remember_last(_LAST, volume, tuple(float(v) for v in point_mm), lambda: _outline(volume, point_mm))


_LAST: list = []


def mass_to_the_lung(volume: Volume, point_mm, mask: np.ndarray, closed: bool = False) -> np.ndarray | None:
    """The outline along rays to the lung from the first click ``point_mm``, where it plainly is a
    mass in the lung and holds ``mask`` (the first click's result) as a part; else None.

    ``closed``: region growing closed ``mask`` (the classical engine's outline, with or without
    its wall), on edges it found all round; there the outline must be ``CLOSED_LEAST`` times as
    large. Where such an outline held the mass whole (0.90-0.98), the rays' outline, 1.4-1.5
    times as large, ran on into the chest wall (0.76-0.86); where it held a part (59 of 222 mL),
    the rays' was 2.2-3.7 times as large."""
    outline, lung, irregular = outline_to_the_lung(volume, point_mm)
    n = int(mask.sum())
    if outline is None or n == 0 or lung < LEAST_LUNG or irregular > MOST_IRREGULAR \
            or (lung < FEW_LUNG and irregular > FEW_LUNG_IRREGULAR):
        return None
    m = int(outline.sum())
    least = CLOSED_LEAST if closed else LARGER[0]
    if not least * n <= m <= LARGER[1] * n or (outline & mask).sum() < HELD * n:
        return None
    return outline


def outline_still_kept(volume: Volume, point_mm, previous: np.ndarray | None) -> np.ndarray | None:
    """The outline along rays to the lung from the lesion's first click ``point_mm``, where
    ``previous`` (its mask before the latest click) is that outline, corrected (Dice ``KEPT`` or
    more): a corrective click changes it near itself only (the plugin); else None."""
    from medviewer.segmentation.guidance import dice

    if previous is None or not previous.any():
        return None
    outline = outline_to_the_lung(volume, point_mm)[0]
    return outline if outline is not None and dice(outline, previous) >= KEPT else None


def _outline(volume: Volume, point_mm) -> tuple[np.ndarray | None, float, float]:
    from medviewer.segmentation.classical import _components_at, _crop_bounds, _sample, fibonacci_directions
    from medviewer.segmentation.masks import fill_holes

    pos = np.asarray(volume.patient_to_voxel(point_mm, clip=True))
    lower, upper = _crop_bounds(volume, pos[None], REACH_MM + 4.0)
    crop = volume.crop(lower, upper)
    spacing_zyx = np.asarray(crop.spacing, float)[::-1]
    values = crop.array
    centre = pos.astype(float) - lower
    directions = fibonacci_directions(RAY_COUNT)
    radii = np.arange(0.0, REACH_MM + STEP_MM, STEP_MM)
    # the CT along each ray, smoothed along it (the lung lies 400 HU and more past the edge's
    # value, soft tissue 400 HU short of it: a noisy series' 60-100 HU need no more)
    profile = _smoothed(_sample(values, centre + directions[:, None, :] * radii[None, :, None] / spacing_zyx),
                        SMOOTHING_MM / STEP_MM)
    if float(np.median(profile[:, 0])) <= LUNG_EDGE_HU:
        return None, 0.0, 0.0  # (a click in the lung itself)

    def first(hit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # (met, radius) of two samples in a row
        steady = hit[:, :-1] & hit[:, 1:]
        return steady.any(axis=1), radii[np.argmax(steady, axis=1)]

    met, ends = first(profile < LUNG_EDGE_HU)
    lung = float(met.mean())
    if lung < 1 / 3:
        return None, lung, 0.0
    other, wall_ends = first((profile < NOT_MASS_HU[0]) | (profile > NOT_MASS_HU[1]))
    wall_ends = np.where(other, wall_ends, REACH_MM)
    similar = directions @ directions.T
    hits = np.flatnonzero(met)
    ends = ends.astype(float)
    for i in np.flatnonzero(~met):
        nearest = hits[np.argsort(-similar[i, hits])[:NEIGHBOURS]]
        ends[i] = min(float(np.median(ends[nearest])), float(wall_ends[i]))
    ends = np.median(ends[np.argsort(-similar, axis=1)[:, :7]], axis=1)  # (a ray that slipped through a vessel)
    irregular = float(np.std(ends) / max(float(np.mean(ends)), 1e-6))
    # each voxel within its nearest ray's end: the nearest ray looked up on a grid of angles
    polar_bins, turn_bins = 90, 180
    polar = (np.arange(polar_bins) + 0.5) * np.pi / polar_bins
    turn = (np.arange(turn_bins) + 0.5) * 2 * np.pi / turn_bins - np.pi
    cells = np.stack([np.repeat(np.cos(polar), turn_bins), np.outer(np.sin(polar), np.sin(turn)).ravel(),
                      np.outer(np.sin(polar), np.cos(turn)).ravel()], axis=1)
    table = ends[np.argmax(cells @ directions.T, axis=1)].reshape(polar_bins, turn_bins)
    reach = np.ceil((float(ends.max()) + STEP_MM) / spacing_zyx).astype(int)
    lo = np.maximum(pos - lower - reach, 0)
    hi = np.minimum(pos - lower + reach + 1, values.shape)
    dz, dy, dx = (((np.arange(a, b) - c) * d).astype(np.float32) for a, b, c, d in zip(lo, hi, centre, spacing_zyx))
    dz, dy, dx = dz[:, None, None], dy[None, :, None], dx[None, None, :]
    distance = np.sqrt(dz * dz + dy * dy + dx * dx)
    cos_polar = dz / np.maximum(distance, 1e-6)
    pi = np.minimum((np.arccos(np.clip(cos_polar, -1, 1)) * (polar_bins / np.pi)).astype(np.int32), polar_bins - 1)
    ti = np.minimum(((np.arctan2(dy, dx) + np.pi) * (turn_bins / (2 * np.pi))).astype(np.int32), turn_bins - 1)
    end = table.astype(np.float32)[pi, ti]
    # within its end, less what is lung (between rays, where the mass's edge is uneven) and what
    # lies past it (the wall beyond a lung's notch)
    star = (distance <= end) & (values[tuple(slice(a, b) for a, b in zip(lo, hi))] > LUNG_EDGE_HU)
    star = fill_holes(_components_at(star, (pos - lower - lo)[None]))
    out = np.zeros(volume.shape, bool)
    lo, hi = lo + lower, hi + lower
    out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = star
    return out, lung, irregular


def _smoothed(profile: np.ndarray, sigma: float) -> np.ndarray:
    """Each row of ``profile`` smoothed by a Gaussian of ``sigma`` samples (its ends held)."""
    k = int(np.ceil(3 * sigma))
    weights = np.exp(-0.5 * (np.arange(-k, k + 1) / sigma) ** 2)
    weights /= weights.sum()
    padded = np.pad(profile, ((0, 0), (k, k)), mode="edge")
    n = profile.shape[1]
    return sum(w * padded[:, j:j + n] for j, w in enumerate(weights))
