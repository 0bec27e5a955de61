"""The classical click-to-segment engine: SimpleITK region growing on a crop around the clicks.

No weights: intensity statistics around the first positive click set a window (later clicks
widen it to hold their own values: spheres around corrective clicks at a lesion's edge took in
the tissue beyond), connected voxels within it grow from the clicks, an opening cuts thin bridges
into neighbouring tissue, holes are filled. A negative click on the region's rim narrows the
window to leave out its value (it trims a partial-volume rim all round); any other removes the
part of the region nearer to it than to any positive click. If the region reaches the crop's
border the crop grows (up to ``max_radius_mm``).

Strong on lesions with contrast to their surroundings (lung nodules in air, hypodense liver
lesions); it leaks into muscle of similar density, which is what the learned engine is for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np

from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume
from medviewer.segmentation.guidance import reaches_image_edge
from medviewer.segmentation.masks import ball, dilate, fill_holes, fill_slices, nearer_to, smooth_image


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
    coarse_cut_voxels: int = 1_000_000  # a region larger than this is cut on a coarser grid ...
    cut_grid_mm: float = 2.0  # ... of about this spacing
    rim_mm: float = 2.5  # a negative click this near the region's edge trims its rim by intensity
    start_radius_mm: float = 50.0
    max_radius_mm: float = 130.0
    # A lesion's core (lesion_core): the region grown within ever wider windows about a click's
    # value, taken just before it leaks (its volume jumps, or it reaches its crop's border).
    core_radius_mm: float = 40.0
    core_ladder_hu: tuple[float, ...] = (10, 14, 19, 25, 32, 40, 50, 62, 76, 95, 120, 150, 190, 240, 300)
    core_jump: float = 4.0  # a step that multiplies the region's volume by this much leaks ...
    core_stable: float = 1.6  # ... after one that grew it by no more than this (a plateau), or that
    core_decisive: float = 5.0  # grew it by this much less than the jump (a lesion whose density runs
    # from a dark centre out to its edge, a necrotic one: it grows steadily, then leaks at once)
    core_over_window: float = 1.3  # the core is taken where the window's closed region is this much smaller
    core_min_ml: float = 0.25  # a smaller "core" was a speck of a larger lesion (A0001: 0.1 mL)
    # A faint lesion (15-35 HU from its organ, near the noise) leaks at the ladder's first steps;
    # where the ladder finds no core, a finer one on a smoother copy looks again (_faint_core).
    faint_smoothing_mm: tuple[float, ...] = (2.5, 3.5)
    faint_ladder_hu: tuple[float, ...] = tuple(round(4.0 * 1.15 ** k, 1) for k in range(24))  # 4 to 100 HU
    faint_steady_steps: int = 5  # so many steps in a row before the jump ...
    faint_step_growth: float = 1.3  # ... each growing the region by no more than this
    faint_one_side: float = 0.95  # the tissue around it on one side of its value (an organ, not noise)
    faint_contrast_hu: float = 10.0  # and at least this far from it, 3 to 8 mm out
    # Where the finer ladder finds no core either (a lesion of 10-20 HU contrast in the noise, or
    # with a soft edge: the region leaks through a few voxels of the organ's noise at the first
    # step), a star-shaped outline looks along rays from the click (_radial_core): each ray's edge
    # where the smoothed CT crosses half-way to the surroundings and stays beyond it.
    radial_directions: int = 200
    radial_reach_mm: float = 45.0  # the longest ray (a lesion of up to about 380 mL)
    radial_bands_mm: tuple[tuple[float, float], ...] = ((15.0, 30.0), (25.0, 40.0), (35.0, 50.0))  # the
    # surroundings' first guesses (beyond the first, for a plain outline only: see radial_large_ml)
    radial_smoothing_mm: float = 2.5
    radial_inside_mm: tuple[tuple[float, float], ...] = ((0.0, 2.5), (6.0, 12.0))  # the lesion's value: the
    # median of each range of radii in turn (the second: the click on a darker or brighter spot of a noisy lesion) ...
    radial_wider_larger: float = 1.5  # ... whose outline stands where it is this many times the first's,
    radial_wider_within: float = 0.9  # and its rays end beyond that range on this share of them
    radial_contrast_hu: float = 10.0  # the lesion at least this far from its surroundings ...
    radial_one_side: float = 0.85  # ... which lie beyond half-way along this share of the rays ...
    radial_open: float = 0.1  # ... at most this share of the rays finds no edge ...
    radial_irregular: float = 0.5  # ... and the ends' spread (std / mean) is at most this: round,
    # as a lesion in an organ is (the darker parts of STS_004 and STS_026: 0.53 and 0.66)
    radial_max_ml: float = 20.0  # a larger outline is a darker part of a sarcoma (STS_004, STS_026) ...
    radial_large_ml: float = 200.0  # ... unless, up to this size, it is rounder than such a part ...
    radial_large_irregular: float = 0.25  # ... (their spread: 0.33-0.53) and plainly contrasting
    radial_large_contrast_hu: float = 25.0  # (10-23 HU; a soft-edged 100 mL liver lesion: 0.14, 32 HU)
    # A plain outline in an organ (its surroundings soft tissue, radial_organ_hu or more) may be a
    # lesion at the organ's edge, bordering fat or bowel on part of it: it may lie beyond half-way
    # on fewer of its rays, and, in a second pass for such outlines only, a ray also ends (and
    # counts as bounded) where it runs the other way, by this many times the contrast and at least
    # this many HU (a hypodense liver lesion's rays into the fat beside it).
    radial_organ_hu: float = 0.0  # (a sarcoma in fat has fat around it: STS_018, -30 HU)
    radial_large_one_side: float = 0.75  # (lesions at the liver's edge: 77-84%)
    radial_other_side: float = 1.5
    radial_other_side_hu: float = 50.0
    # The finer ladder's core stops short of a faint lesion's edge where the lesion's edge is uneven
    # or borders fat on part of it (its region grows on a smoother copy, and its half-way is sought
    # only 3 mm past it): where the rays' outline holds the core and is larger, it stands instead
    # (a hypodense 36 mL lesion at the liver's edge: core 7 mL, Dice 0.33; rays 24 mL, 0.80).
    radial_over_faint_held: float = 0.9  # it holds this share of the core ...
    radial_over_faint_larger: float = 1.05  # ... and is at least this many times as large
    # A faint core (either fallback's) gives way to the one-window outline, its leaks cut (the
    # engine's window path), where that outline is plainly a bounded lesion holding the core
    # (window_over_faint_core): the ladder leaked for another reason than faintness.
    window_over_faint_held: float = 0.9  # it holds this share of the core ...
    window_over_faint_ratio: float = 10.0  # ... and is at most this many times as large ...
    window_over_faint_contrast_hu: float = 20.0  # ... this far from the tissue 3-8 mm around it ...
    window_over_faint_one_side: tuple[float, float] = (0.75, 0.85)  # ... which lies beyond half-way to
    # it on these shares of the shells 0-3 mm and 3-8 mm out
    # A noisy series (a low-dose PET-CT's CT: 60-100 HU of noise in soft tissue, against 10-20 HU
    # in the sts series) is smoothed more, in proportion to its noise above this level.
    quiet_noise_hu: float = 25.0
    max_growth_smoothing_mm: float = 2.5


def for_noise(volume: Volume, pos_zyx, params: ClassicalParams) -> ClassicalParams:
    """``params`` with smoothing for the noise around voxel ``pos_zyx`` (the first click): the
    spread of neighbouring voxels' differences, in-plane, in a box of about 10 mm. In a series
    as noisy as 70 HU, the light growth smoothing left a lesion's region spongy (no depth at the
    click: the leak cut took 29 of a pasted 30 mL lung lesion's mL away). Used for a lesion's
    core (lesion_core); the one-window growth keeps its smoothing (more of it took the A0001
    tumour's classical mask from over 90% inside its boxes to 89%)."""
    import dataclasses

    spacing_zyx = np.asarray(volume.spacing)[::-1]
    r = np.maximum(1, np.ceil(5.0 / spacing_zyx)).astype(int)
    p = np.rint(np.asarray(pos_zyx)).astype(int)
    box = volume.array[tuple(slice(max(0, c - k), c + k + 1) for c, k in zip(p, r))].astype(np.float32)
    if box.shape[-1] < 2:
        return params
    d = np.diff(box, axis=-1).ravel()
    noise = 1.4826 * float(np.median(np.abs(d - np.median(d)))) / np.sqrt(2)
    if noise <= params.quiet_noise_hu:
        return params
    growth = min(params.max_growth_smoothing_mm, params.growth_smoothing_mm * noise / params.quiet_noise_hu)
    return dataclasses.replace(params, growth_smoothing_mm=growth,
                               smoothing_mm=max(params.smoothing_mm, growth + 0.7))


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
    if progress is not None:
        progress("statistics", 0.05)
    core = lesion_core(volume, positives_mm[0], params)
    superseding = window_over_faint_core(volume, positives_mm[0], params) if core is not None else None
    if superseding is not None:
        # a faint core the window's outline supersedes (judged on the first click alone, as below)
        if len(pos) == 1 and not len(neg):
            return superseding.copy()
        core = None
    noisy = for_noise(volume, pos[0], params)  # the core's smoothing; the window's stays as it was
    # (the window's region below grows with the series' own smoothing: where that leaks past its
    # first crop, the core is better, whatever the smoother window did: a pasted 32 mL lesion
    # against the chest wall of noisy A0001 had a 26 mL core, Dice 0.89, and leaked to 2 L)
    if core is not None and (_core_is_better(volume, pos[0], core, noisy)
                             or not region_closes_near(volume, positives_mm[0], params)):
        return _from_cores(volume, core, positives_mm, pos, neg, noisy)
    if core is not None:
        # The first click's own mask, leaks cut: where the cut took off much of what the core holds
        # (a lesion pressed against the chest wall, cut off at its contact: a pasted 11 mL one came
        # out at 3.4 mL, its core 7.9 mL), the core outlines it. Judged on the first click alone, so
        # that corrective clicks never switch between the two under the user.
        first = _first_click_mask(volume, pos[0], params)
        if core.sum() > params.core_over_window * first.sum():
            return _from_cores(volume, core, positives_mm, pos, neg, noisy)
        if len(pos) == 1 and not len(neg):
            return first.copy()
    if len(pos) == 1 and not len(neg) and region_closes_near(volume, positives_mm[0], params):
        return _first_click_mask(volume, pos[0], params).copy()  # what _window_mask gives, with a wall
    return _window_mask(volume, pos, neg, params, progress, cancelled)


def _window_mask(volume: Volume, pos: np.ndarray, neg: np.ndarray, params: ClassicalParams,
                 progress: Callable[[str, float], None] | None = None,
                 cancelled: Callable[[], bool] | None = None) -> np.ndarray:
    """The engine's window path: the region grown within the first click's window from the clicks
    (voxels), on a crop that grows while the region reaches its border, leaks cut."""
    window = _seed_window(volume, pos[:1], params)
    # The crop grows (up to max_radius_mm) while the grown region reaches its border; the costly
    # refinement runs once, on the last crop. (Refining at each step, and stopping where the
    # refined mask no longer reached the border, gave the very same masks on all 24 sts cases in
    # a third more time.)
    radius = params.start_radius_mm
    while True:
        if cancelled is not None and cancelled():
            raise MedviewerError("segmentation cancelled")
        lower, upper = _crop_bounds(volume, np.vstack([pos, neg]) if len(neg) else pos, radius)
        crop = volume.crop(lower, upper)
        if progress is not None:
            progress("region growing", 0.2)
        region = _grow(crop, pos - lower, window, params, neg - lower)
        at_volume_edge = np.all(lower == 0) and np.all(upper == volume.shape)
        if not reaches_image_edge(region) or radius >= params.max_radius_mm or at_volume_edge:
            break
        # Grow by 1.6; a step that would stop short of the largest crop goes all the way.
        radius = params.max_radius_mm if radius * 1.6 >= 0.75 * params.max_radius_mm else radius * 1.6
    if progress is not None:
        progress("cutting leaks", 0.6)
    mask = _refine(region, pos - lower, neg - lower, np.asarray(crop.spacing)[::-1], params)
    out = np.zeros(volume.shape, dtype=bool)
    out[lower[0]:upper[0], lower[1]:upper[1], lower[2]:upper[2]] = mask
    if progress is not None:
        progress("done", 1.0)
    return out


def _core_is_better(volume: Volume, p, core: np.ndarray, params: ClassicalParams) -> bool:
    """Whether the first click's core (see lesion_core) outlines the lesion better than the one
    window grown from it: where that region leaks past its first crop (into an organ of the
    lesion's density), or closes but holds much less than the core (in a noisy series its window
    is too narrow for the lesion's own noise: a pasted 5 mL lung lesion came out at 2 mL). Where
    both close alike (the demo's spheres), the window's region stays: its corrective clicks
    widen the window around the whole lesion, where a core's add only near themselves."""
    _lower, _crop, region = _first_region(volume, p, params)
    if reaches_image_edge(region):
        return True
    return bool(core.sum() > params.core_over_window * fill_holes(region).sum())


def window_outline(volume: Volume, point_mm, params: ClassicalParams = ClassicalParams()) -> np.ndarray | None:
    """The one-window outline from the click ``point_mm`` (LPS mm), leaks cut, where its region
    closes inside the first crop (else None): what the engine returns where the lesion has no
    core, and what a core replaced where it has one (engine_choice looks at both)."""
    if not region_closes_near(volume, point_mm, params):
        return None
    return _first_click_mask(volume, volume.patient_to_voxel(point_mm), params)


_WINDOW_CACHE: list = []  # the last (volume, click, params, mask): the engine and auto's mass check share it


def _first_click_mask(volume: Volume, p: np.ndarray, params: ClassicalParams) -> np.ndarray:
    """The engine's mask from the one click ``p`` (voxel) where its region closes inside the first
    crop (the caller has checked): grown within the click's window, leaks cut, holes filled."""
    return remember_last(_WINDOW_CACHE, volume, (tuple(int(v) for v in p), params),
                         lambda: _first_click_mask_uncached(volume, p, params))


def remember_last(cache: list, volume: Volume, key, compute: Callable):
    """``compute()``, kept in the one-entry ``cache`` for the last ``volume`` (by identity) and
    ``key`` asked: auto's choice, its checks and the engine ask the same of one click in turn."""
    if not (cache and cache[0][0] is volume and cache[0][1] == key):
        cache[:] = [(volume, key, compute())]
    return cache[0][2]


def _first_click_mask_uncached(volume: Volume, p: np.ndarray, params: ClassicalParams) -> np.ndarray:
    import SimpleITK as sitk

    lower, crop, region = _first_region(volume, p, params)
    upper = lower + np.asarray(crop.shape)
    spacing_zyx = np.asarray(crop.spacing)[::-1]
    mask = _refine(region, (p - lower)[None], np.zeros((0, 3)), spacing_zyx, params)
    if mask.any() and not reaches_image_edge(region):
        # a closed region may be a lesion's darker centre inside its wall (a necrotic or
        # rim-enhancing lesion whose centre the window closes off): its wall, as a core gets. The
        # region's edge is not half-way out as a core's is: its first shells hold the lesion's own
        # partial-volume edge (a hyperdense lesion in A0001's 5 mm slices: 10-20 HU above the
        # liver for 3 mm), so a wall must differ from the organ by contrast_hu on either side.
        smooth = sitk.GetArrayFromImage(smooth_image(sitk.Cast(crop.to_sitk(), sitk.sitkFloat32), params.smoothing_mm))
        mask = _with_wall(crop.array.astype(np.float32), smooth, mask, p - lower, spacing_zyx,
                          float(np.median(smooth[mask])), between_hu=15.0)
    out = np.zeros(volume.shape, bool)
    out[lower[0]:upper[0], lower[1]:upper[1], lower[2]:upper[2]] = mask
    return out


def _from_cores(volume: Volume, core: np.ndarray, positives_mm, pos: np.ndarray, neg: np.ndarray,
                params: ClassicalParams) -> np.ndarray:
    """The lesion from its first click's core: each later positive click outside it adds its own
    core (the bright wall of a rim-enhancing lesion, around its dark centre) or, where it has
    none, the layer it marks (:func:`_layer_at`: a necrotic lesion's faint rim); negative clicks
    cut what lies nearer to them than to any positive click; holes are filled."""
    mask = core.copy()
    spacing_zyx = np.asarray(volume.spacing)[::-1]
    for p_mm, p in zip(positives_mm[1:], pos[1:]):
        if mask[tuple(p)]:
            continue
        more = lesion_core(volume, p_mm, params)
        if more is None:
            more = _layer_at(volume, mask, p, params)
        if more is None:  # (no mask near the click)
            box = tuple(slice(a, b) for a, b in zip(*_crop_bounds(volume, p[None], params.seed_radius_mm)))
            more = np.zeros(volume.shape, bool)
            more[box] = ball(box, p, spacing_zyx, params.seed_radius_mm)
        mask |= more
    points = np.vstack([pos, neg]) if len(neg) else pos
    nz = np.argwhere(mask)
    lo = np.maximum(np.minimum(nz.min(0), points.min(0)) - 2, 0)
    hi = np.minimum(np.maximum(nz.max(0), points.max(0)) + 3, volume.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    inside = [p - lo for p in neg if mask[tuple(p)]]
    out = np.zeros(volume.shape, bool)
    out[box] = _cut_and_fill(mask[box], pos - lo, inside, spacing_zyx)
    return out


def _layer_at(volume: Volume, mask: np.ndarray, p: np.ndarray, params: ClassicalParams) -> np.ndarray | None:
    """What a later positive click ``p`` (voxel) outside ``mask``, at a distance d from it, adds
    where it has no core of its own: the layer of the lesion it marks. Its voxels lie within 2 d
    of ``mask`` and within the lesion's radius (or ``seed_radius_mm``) of the click, on the
    click's side of half-way between its value and the organ's beyond (the median of the CT 3 to
    10 mm past that layer; where those two are within 5 HU, in the click's own window instead),
    joined to the click through the layer or ``mask``. None where ``mask`` is empty near the click.

    A necrotic liver lesion whose first click lands in its dark centre gets that centre (its
    faint viable rim, 15-30 HU below the liver, is no core), and each click on the missed rim
    added a ball of ``seed_radius_mm``, which the correction rule then cut to a sliver (a pasted
    8 mL lesion in A0001: 0.533 -> 0.581 over four clicks on its rim). The rim runs all round
    the centre: a layer, as the correction rule's layers are (medviewer.segmentation.corrections)."""
    import SimpleITK as sitk

    spacing_zyx = np.asarray(volume.spacing)[::-1]
    ml = mask.sum() * volume.voxel_volume_ml
    reach = max((3 * ml * 1000 / (4 * np.pi)) ** (1 / 3), params.seed_radius_mm)
    lo, hi = _crop_bounds(volume, p[None], reach + 2 * float(spacing_zyx.max()))
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    if not mask[box].any():
        return None
    crop = volume.crop(lo, hi)
    q = tuple(p - lo)
    dist = _distance_inside(~mask[box], spacing_zyx)  # mm to the mask (0 in it)
    d = float(dist[q])
    near = ball(box, p, spacing_zyx, reach)
    low, high = _seed_window(volume, p[None], params)
    value = (low + high) / 2
    beyond = near & (dist > 2 * d + 3.0) & (dist <= 2 * d + 10.0)
    organ = float(np.median(crop.array[beyond])) if beyond.sum() >= 20 else value
    smooth = sitk.GetArrayFromImage(smooth_image(sitk.Cast(crop.to_sitk(), sitk.sitkFloat32), params.smoothing_mm))
    if abs(organ - value) >= 5.0:
        half = (organ + value) / 2
        side = smooth <= half if value < organ else smooth >= half
    else:
        side = (smooth >= low) & (smooth <= high)
    layer = (dist <= 2 * d + 0.5 * float(spacing_zyx.min())) & near & side
    layer[q] = True
    layer &= ~mask[box]
    out = np.zeros(volume.shape, bool)  # the layer's parts that touch the click, or the mask with it
    out[box] = _components_at(layer | mask[box], np.array([q])) & layer
    return out


def reached_reach(volume: Volume, mask: np.ndarray, positives_mm: Sequence[Sequence[float]],
                  negatives_mm: Sequence[Sequence[float]] = (), params: ClassicalParams = ClassicalParams()) -> bool:
    """Whether ``mask`` reaches the border of the largest crop the engine looks at (``max_radius_mm``
    around the clicks) where that border lies inside the volume: the region grew as far as the
    engine looks, so it has most likely leaked beyond the lesion (a click in an organ or muscle)."""
    points = [volume.patient_to_voxel(p) for p in list(positives_mm) + list(negatives_mm)]
    if not points or not mask.any():
        return False
    lower, upper = _crop_bounds(volume, np.array(points), params.max_radius_mm)
    for axis in range(3):
        for face, inner in ((lower[axis], lower[axis] > 0), (upper[axis] - 1, upper[axis] < volume.shape[axis])):
            box = [slice(lo, hi) for lo, hi in zip(lower, upper)]
            box[axis] = slice(face, face + 1)
            if inner and mask[tuple(box)].any():
                return True
    return False


def region_closes_near(volume: Volume, point_mm, params: ClassicalParams = ClassicalParams()) -> bool:
    """Whether the region grown from ``point_mm`` (LPS mm) closes inside the first crop
    (``start_radius_mm`` around it): bounded on every side by tissue outside its intensity window,
    short of the crop's border and of the volume's edge. The engine's own first step, without
    its refinement."""
    _lower, _crop, region = _first_region(volume, volume.patient_to_voxel(point_mm), params)  # MedviewerError
    # for a point outside
    return bool(region.any()) and not reaches_image_edge(region)


_REGION_CACHE: list = []  # the last (volume, click, params, first region): auto's checks and the engine share it


def _first_region(volume: Volume, p: np.ndarray, params: ClassicalParams) -> tuple[np.ndarray, Volume, np.ndarray]:
    """(lower corner, crop, region): the region grown from the one click ``p`` (voxel) within its
    own window on the first crop (``start_radius_mm`` around it). region_closes_near, the
    engine's first-click mask and _core_is_better each look at it; it is grown once a click."""
    def grow():
        window = _seed_window(volume, p[None], params)
        lower, upper = _crop_bounds(volume, p[None], params.start_radius_mm)
        crop = volume.crop(lower, upper)
        region = _grow(crop, (p - lower)[None], window, params)
        region.flags.writeable = False  # shared: read, never changed
        return lower, crop, region

    return remember_last(_REGION_CACHE, volume, (tuple(int(v) for v in p), params), grow)


_CORE_CACHE: list = []  # the last (volume, point, params, core): auto's choice, the engine and the check share it


def lesion_core(volume: Volume, point_mm, params: ClassicalParams = ClassicalParams()) -> np.ndarray | None:
    """The compact lesion at ``point_mm`` (a boolean mask on ``volume``'s grid), or None where
    there is none to be sure of.

    Region growing within one intensity window leaks from a small lesion into an organ of nearly
    its density (a hypodense liver metastasis into the liver: 540-1,900 mL from a click in a
    2.5-10 mL lesion). Grown within ever wider windows about the click's own value, such a
    lesion's region first holds still (a plateau: the window spans the lesion's own noise) and
    then jumps (the window reaches the organ's density, or the region its crop's border). The
    region just before the jump is the lesion (a lesion against air never jumps: the widest
    window's region). A lesion whose density runs from a dark centre out to its edge (a necrotic
    one) grows steadily instead, and then jumps at once: a jump ``core_decisive`` times its last
    step marks it too. Where neither, and one window's region from the click leaks, the core of a
    faint lesion (15-35 HU from its organ), found on a finer ladder (:func:`_faint_core`), or the
    rays' outline (:func:`_radial_core`) where it holds that core and is larger (the core, grown on
    a smoother copy, stops short of an uneven edge or one that borders fat: of 22 such first
    clicks of the benchmark's own lesions and four fresh draws, the rays replaced 10, 8 of them
    for 0.05-0.48 more Dice, 2 for 0.02 less); else None."""
    return _core_and_kind(volume, point_mm, params)[0]


def core_is_faint(volume: Volume, point_mm, params: ClassicalParams = ClassicalParams()) -> bool:
    """Whether :func:`lesion_core` at ``point_mm`` is a faint lesion's, found on the finer ladder
    (:func:`_faint_core`) or along rays, and the engine outlines it so (no one-window outline
    supersedes it, :func:`window_over_faint_core`): auto asks the learned engine about it too
    (engine_choice)."""
    return _core_and_kind(volume, point_mm, params)[1] and window_over_faint_core(volume, point_mm, params) is None


_WINDOW_OVER_FAINT_CACHE: list = []


def window_over_faint_core(volume: Volume, point_mm, params: ClassicalParams = ClassicalParams()) -> np.ndarray | None:
    """The one-window outline from the click ``point_mm`` (the engine's window path, leaks cut)
    where it supersedes the click's faint core (see :func:`core_is_faint`), else None.

    The ladder also breaks at its first steps where the lesion is not faint at all but a thin
    path of its density leads away from it: a lesion at the liver's edge, bulging out of it,
    whose value the partial-volume layer between the liver and the fat around it passes through
    (a soft-edged 87 mL one, 45 HU from the liver, in a 3 mm CT: the finer ladder's core 10 mL,
    Dice 0.21). The window's region leaks along that layer too, and the leak cut takes it off
    (Dice 0.94). So where the faint core has such an outline around it, holding
    ``window_over_faint_held`` of it, at most ``window_over_faint_ratio`` times as large, short
    of the engine's reach, and plainly bounded (``window_over_faint_contrast_hu`` from the tissue
    3-8 mm around it, which lies beyond half-way to it on ``window_over_faint_one_side`` of the
    shells 0-3 and 3-8 mm out), that outline is the lesion. A faint liver lesion's window leaks
    into the liver (8 to 640 times its core), a sarcoma's darker part's into the muscle around
    it (STS_041: 27 times)."""
    return remember_last(_WINDOW_OVER_FAINT_CACHE, volume, (tuple(float(v) for v in point_mm), params),
                         lambda: _window_over_faint_core(volume, point_mm, params))


def _window_over_faint_core(volume: Volume, point_mm, params: ClassicalParams) -> np.ndarray | None:
    core, faint = _core_and_kind(volume, point_mm, params)
    if core is None or not faint:
        return None
    pos = np.array([volume.patient_to_voxel(point_mm)])
    n = int(core.sum())
    # A lesion of up to window_over_faint_ratio times the core lies well inside a crop of twice its
    # radius: the window's crop grows no further (a faint lesion's window leaked on to 130 mm and
    # 2 L in noisy A0001, 0.4 s of a first click for nothing)
    largest_mm = (3 * params.window_over_faint_ratio * n * volume.voxel_volume_ml * 1000 / (4 * np.pi)) ** (1 / 3)
    params = replace(params, max_radius_mm=min(params.max_radius_mm, max(params.start_radius_mm, 2.0 * largest_mm)))
    window = _window_mask(volume, pos, np.zeros((0, 3)), params)
    if not window.any() or (window & core).sum() < params.window_over_faint_held * n \
            or window.sum() > params.window_over_faint_ratio * n or reached_reach(volume, window, [point_mm], [], params):
        return None
    contrast, near, far = _surroundings(volume, window, params.smoothing_mm)
    if abs(contrast) < params.window_over_faint_contrast_hu or near < params.window_over_faint_one_side[0] \
            or far < params.window_over_faint_one_side[1]:
        return None
    return window


def _surroundings(volume: Volume, mask: np.ndarray, smoothing_mm: float) -> tuple[float, float, float]:
    """(contrast, near, far) of ``mask``'s surroundings on the CT smoothed by ``smoothing_mm``:
    the median of the shell 3-8 mm around it less the median inside it, and the shares of the
    shells 0-3 mm and 3-8 mm out that lie beyond half-way between the two."""
    import SimpleITK as sitk

    spacing_zyx = np.asarray(volume.spacing)[::-1]
    nz = np.argwhere(mask)
    margin = np.ceil(10.0 / spacing_zyx).astype(int) + 1
    lower, upper = np.maximum(nz.min(0) - margin, 0), np.minimum(nz.max(0) + margin + 1, volume.shape)
    inner = mask[tuple(slice(a, b) for a, b in zip(lower, upper))]
    values = sitk.GetArrayFromImage(smooth_image(sitk.Cast(volume.crop(lower, upper).to_sitk(), sitk.sitkFloat32),
                                                 smoothing_mm))
    within3 = dilate(inner, 3.0, spacing_zyx)
    near, far = within3 & ~inner, dilate(inner, 8.0, spacing_zyx) & ~within3
    if not near.any() or not far.any():
        return 0.0, 0.0, 0.0
    inside, around = float(np.median(values[inner])), float(np.median(values[far]))
    half, brighter = (inside + around) / 2, around > inside
    return (around - inside, float(np.mean((values[near] > half) == brighter)),
            float(np.mean((values[far] > half) == brighter)))


def _core_and_kind(volume: Volume, point_mm, params: ClassicalParams) -> tuple[np.ndarray | None, bool]:
    return remember_last(_CORE_CACHE, volume, (tuple(float(v) for v in point_mm), params),
                         lambda: _lesion_core(volume, point_mm, params))


def _lesion_core(volume: Volume, point_mm, params: ClassicalParams) -> tuple[np.ndarray | None, bool]:
    import SimpleITK as sitk

    pos = np.asarray(volume.patient_to_voxel(point_mm))
    base, params = params, for_noise(volume, pos, params)
    lower, upper = _crop_bounds(volume, pos[None], params.core_radius_mm)
    crop = volume.crop(lower, upper)
    smooth = smooth_image(sitk.Cast(crop.to_sitk(), sitk.sitkFloat32), params.smoothing_mm)
    seed = tuple(int(v) for v in (pos - lower)[::-1])
    centre = float(smooth[seed])
    min_voxels = params.core_min_ml / crop.voxel_volume_ml
    before, grew, jump = None, np.inf, 0.0
    for w in params.core_ladder_hu:
        region = sitk.GetArrayFromImage(sitk.ConnectedThreshold(
            smooth, seedList=[seed], lower=centre - w, upper=centre + w, replaceValue=1)).astype(bool)
        n = int(region.sum())
        if reaches_image_edge(region) or (before is not None and n > params.core_jump * before.sum()):
            jump = n / max(1, before.sum()) if before is not None else 0.0
            break
        grew = n / max(1, before.sum()) if before is not None else np.inf
        before = region
    # (a region that never leaked: a lesion in air, a lung nodule; the widest window's region)
    steady = grew <= params.core_stable or jump >= params.core_decisive * grew
    faint = before is None or before.sum() < min_voxels or not steady
    from_the_finer_ladder = False
    if faint:
        # a faint lesion: where one window's region leaks (where it closes, that region is the lesion)
        if region_closes_near(volume, point_mm, base):
            return None, False
        before, smooth = _faint_core(crop, seed, params)
        from_the_finer_ladder = before is not None
        if before is None:
            # the rays' outline already ends half-way to the surroundings (the ladder's regions
            # reach out to nearly their value): it stands as it is (half-way again on its 2.5 mm
            # smoothing took 0.04 of the Dice off two of the benchmark's faint liver lesions)
            radial = _radial_core(volume, pos, params)
            return (radial, True) if radial is not None else (None, False)
    out = np.zeros(volume.shape, bool)
    out[lower[0]:upper[0], lower[1]:upper[1], lower[2]:upper[2]] = _half_way(
        crop.array.astype(np.float32), sitk.GetArrayFromImage(smooth), fill_holes(before), seed[::-1],
        np.asarray(crop.spacing)[::-1])
    if from_the_finer_ladder:
        radial = _radial_core(volume, pos, params)
        if radial is not None and radial.sum() >= params.radial_over_faint_larger * out.sum() \
                and (radial & out).sum() >= params.radial_over_faint_held * out.sum():
            return radial, True
    return out, faint


def _faint_core(crop: Volume, seed, params: ClassicalParams):
    """(core, the smoothed crop it was grown on) of a faint lesion at ``seed`` (x, y, z index in
    ``crop``), or (None, None). A lesion 15-35 HU from its organ (a liver metastasis of low
    contrast) leaks at the ladder's first window: the organ's noise spans the step. On a smoother
    copy and a finer ladder (``faint_ladder_hu``, steps of 15%) its region grows step by step,
    by at most ``faint_step_growth`` for ``faint_steady_steps`` steps in a row, and then jumps (the
    window reached the organ). A region in tissue of the click's own density (a sarcoma's
    muscle, the tumour itself) either leaks at once or stops on noise; one that stops on a
    sarcoma's darker part has tissue on both sides of its value around it. So the tissue 0-3 mm
    and 3-8 mm out must lie on one side of the core's value (``faint_one_side`` of it) and the
    latter at least ``faint_contrast_hu`` from it. Smoothings ``faint_smoothing_mm`` in turn
    (more for a noisy series, as for_noise says), the first that finds one."""
    import SimpleITK as sitk

    spacing_zyx = np.asarray(crop.spacing)[::-1]
    min_voxels = params.core_min_ml / crop.voxel_volume_ml
    image = sitk.Cast(crop.to_sitk(), sitk.sitkFloat32)
    for sigma in params.faint_smoothing_mm:
        smooth = smooth_image(image, max(sigma, params.smoothing_mm))
        centre = float(smooth[seed])
        before, steady = None, 0
        for w in params.faint_ladder_hu:
            region = sitk.GetArrayFromImage(sitk.ConnectedThreshold(
                smooth, seedList=[seed], lower=centre - w, upper=centre + w, replaceValue=1)).astype(bool)
            n = int(region.sum())
            if reaches_image_edge(region) or (before is not None and n > params.core_jump * before.sum()):
                break
            if before is not None:
                steady = steady + 1 if n <= params.faint_step_growth * before.sum() else 0
            before = region
        else:
            continue  # never leaked within the ladder: not a faint lesion
        if before is None or steady < params.faint_steady_steps or before.sum() < min_voxels:
            continue
        core = fill_holes(before)
        values = sitk.GetArrayFromImage(smooth)
        inside = float(np.median(values[core]))
        near = dilate(core, 3.0, spacing_zyx)
        far = dilate(core, 8.0, spacing_zyx) & ~near
        near &= ~core
        if not near.any() or not far.any():
            continue
        around = float(np.median(values[far]))
        brighter = around > inside
        one_side = min(float(np.mean((values[shell] > inside) == brighter)) for shell in (near, far))
        if one_side >= params.faint_one_side and abs(around - inside) >= params.faint_contrast_hu:
            return core, smooth
    return None, None


def fibonacci_directions(n: int) -> np.ndarray:
    """``n`` unit vectors (z, y, x) spread evenly over the sphere (a Fibonacci lattice)."""
    i = np.arange(n) + 0.5
    polar, turn = np.arccos(1 - 2 * i / n), np.pi * (1 + 5 ** 0.5) * i
    return np.stack([np.cos(polar), np.sin(polar) * np.sin(turn), np.sin(polar) * np.cos(turn)], axis=1)


def _sample(array: np.ndarray, points_zyx: np.ndarray) -> np.ndarray:
    """``array`` at fractional voxel positions (..., 3), trilinear, clamped to its edge."""
    top = np.asarray(array.shape) - 1
    p = np.clip(points_zyx, 0, top)
    low = np.minimum(np.floor(p).astype(int), np.maximum(top - 1, 0))
    t = p - low
    out = np.zeros(p.shape[:-1], np.float64)
    for corner in np.ndindex(2, 2, 2):
        c = np.asarray(corner)
        idx = np.minimum(low + c, top)
        weight = np.prod(np.where(c, t, 1 - t), axis=-1)
        out += weight * array[idx[..., 0], idx[..., 1], idx[..., 2]]
    return out


def _radial_core(volume: Volume, pos, params: ClassicalParams) -> np.ndarray | None:
    """The outline of a faint lesion at the voxel ``pos`` (z, y, x) as a star-shaped region on
    ``volume``'s grid, or None.

    Region growing joins voxels through the organ's noise: from a liver lesion 10-20 HU from the
    liver, or with a soft edge, the first window already leaks, on every smoothing. Along a ray
    from the click the noise averages out instead: on the smoothed CT (``radial_smoothing_mm``)
    each of ``radial_directions`` rays ends where it crosses half-way from the lesion's value (the
    median within 2.5 mm of the click) to its surroundings' and stays beyond for 2 mm; each ray's
    end is then the median of its 10 nearest rays' (twice: a ray that slipped out through a
    vessel, or stopped on noise, takes its neighbours'). The surroundings' value starts as the
    median of a band of radii (``radial_bands_mm``, each in turn) and becomes that of the shell
    1.5-6 mm beyond the ends (three rounds). An outline is taken where it is plainly a lesion in
    an organ: at least ``radial_contrast_hu`` from its surroundings, which lie beyond half-way on
    ``radial_one_side`` of the rays (a sarcoma's darker part has tumour, muscle and fat around
    it, on both sides), at most ``radial_open`` of the rays without an edge, about round (the
    ends' spread at most ``radial_irregular`` of their mean), and, from the first band, no larger
    than ``radial_max_ml``; from any band, an outline up to ``radial_large_ml`` that is plainly a
    lesion (its ends' spread at most ``radial_large_irregular`` of their mean, at least
    ``radial_large_contrast_hu`` from its surroundings: a sarcoma's darker parts are less round
    and less contrasting). Of the outlines so taken, the one with the most contrast: a band that
    starts inside a large lesion (15-30 mm out in a 100 mL one, its inside uneven) stops its rays
    on the lesion's own unevenness, with more lesion beyond them 10-15 HU away, where a band beyond
    the lesion finds its edge, 30 HU and more away (a soft-edged 100 mL lesion at the liver's edge:
    1.7 mL, Dice 0.03, against 111 mL, Dice 0.93). (The sizes are the star's, from the ends.)

    A lesion at an organ's edge borders fat or bowel on part of its surface. A hypodense one's rays
    into the fat never cross half-way towards the organ: they end where their neighbours do, or
    run open, and its surroundings lie beyond half-way on only 75-85% of its rays. So a plain
    outline in an organ (its surroundings ``radial_organ_hu`` or more: soft tissue) needs
    ``radial_large_one_side`` of them, and a second pass, whose outlines are taken only where so,
    also ends a ray where it runs the other way, ``radial_other_side`` times the contrast and at
    least ``radial_other_side_hu`` past the lesion's value, and counts it bounded (hypodense
    lesions of 56-150 mL at the liver's edge of TotalSegmentator's 3 mm CT: Dice 0.02-0.38 after
    one click, against 0.82-0.89). A sarcoma's darker parts are never plain. A sarcoma in fat can
    be (STS_018: fat around it, -30 HU; its rays' outline, Dice 0.76, took it from the learned
    engine's 0.89 until the surroundings had to be soft tissue)."""
    import SimpleITK as sitk

    step, shell = 0.5, (1.5, 6.0)
    lower, upper = _crop_bounds(volume, np.asarray(pos)[None], params.radial_reach_mm + shell[1] + 2.0)
    crop = volume.crop(lower, upper)
    spacing_zyx = np.asarray(crop.spacing, float)[::-1]
    smooth = smooth_image(sitk.Cast(crop.to_sitk(), sitk.sitkFloat32), params.radial_smoothing_mm)
    values = sitk.GetArrayFromImage(smooth)
    centre = np.asarray(pos, float) - lower
    directions = fibonacci_directions(params.radial_directions)
    radii = np.arange(0.0, params.radial_reach_mm + shell[1] + step, step)
    points = centre + directions[:, None, :] * radii[None, :, None] / spacing_zyx
    profile = _sample(values, points)
    neighbours = np.argsort(-(directions @ directions.T), axis=1)[:, :10]
    steady = int(round(2.0 / step))  # samples beyond half-way in a row
    searched = (radii >= 1.0) & (radii <= params.radial_reach_mm)
    best = {}  # each range of radii's outline with the most contrast: (contrast, ends, size)
    passes = [(inside, i, band, both_ways) for inside in params.radial_inside_mm for both_ways in (False, True)
              for i, band in enumerate(params.radial_bands_mm)]

    def bounded(values, around, both_ways):  # beyond half-way to the surroundings (or, both ways, far the other way)
        sign = 1.0 if around > inside else -1.0
        out = sign * (values - (inside + around) / 2) > 0
        if both_ways:
            other = inside - sign * max(params.radial_other_side * abs(around - inside), params.radial_other_side_hu)
            out |= sign * (other - values) > 0
        return out

    for inside_mm, i, band, both_ways in passes:
        inside = float(np.median(profile[:, (radii >= inside_mm[0]) & (radii <= inside_mm[1])]))
        around = float(np.median(profile[:, (radii >= band[0]) & (radii <= band[1])]))
        for _ in range(3):
            beyond = bounded(profile, around, both_ways).astype(int)
            runs = np.concatenate([np.zeros((len(directions), 1), int), np.cumsum(beyond, axis=1)], axis=1)
            ahead = np.zeros_like(beyond, bool)
            ahead[:, :len(radii) - steady + 1] = (runs[:, steady:] - runs[:, :-steady]) == steady
            ahead &= searched
            ends = np.where(ahead.any(axis=1), radii[np.argmax(ahead, axis=1)], params.radial_reach_mm)
            for _ in range(2):
                ends = np.median(ends[neighbours], axis=1)
            out_shell = (radii >= ends[:, None] + shell[0]) & (radii <= ends[:, None] + shell[1])
            around = float(np.median(profile[out_shell]))
        ray_around = np.array([profile[k, out_shell[k]].mean() for k in range(len(directions))])
        one_side = float(np.mean(bounded(ray_around, around, both_ways)))
        open_share = float(np.mean(ends >= params.radial_reach_mm))
        contrast, irregular = abs(around - inside), float(np.std(ends) / np.mean(ends))
        size_ml = 4 / 3 * np.pi * float(np.mean(ends ** 3)) / 1000  # the star-shaped outline's volume
        plain = irregular <= params.radial_large_irregular and contrast >= params.radial_large_contrast_hu
        at_an_organs_edge = plain and around >= params.radial_organ_hu
        if contrast < params.radial_contrast_hu or open_share > params.radial_open \
                or irregular > params.radial_irregular or (both_ways and not at_an_organs_edge) \
                or one_side < (params.radial_large_one_side if at_an_organs_edge else params.radial_one_side):
            continue
        if not ((i == 0 and size_ml <= params.radial_max_ml) or (plain and size_ml <= params.radial_large_ml)):
            continue
        if inside_mm != params.radial_inside_mm[0] and np.mean(ends > inside_mm[1]) < params.radial_wider_within:
            continue  # (its value was not the lesion's: a smaller lesion's median 6-12 mm out holds its surroundings)
        if contrast > best.get(inside_mm, (0.0,))[0]:
            best[inside_mm] = (contrast, ends, size_ml)
    # the click's own value's outline, unless it found none, or the wider look's is
    # radial_wider_larger times as large: the click on a darker spot of a noisy lesion, whose
    # outline ended on that spot's edge (a 131 mL one at the liver's edge: 2 mL, Dice 0.03, against
    # 128 mL, 0.93); where the wider look's outline is smaller, the click's own value was the
    # lesion's (a soft-edged one grows darker inwards: its median 6-12 mm in moved the edge in)
    found = [best[r] for r in params.radial_inside_mm if r in best]
    if not found:
        return None
    chosen = found[0]
    for other in found[1:]:
        if other[2] >= params.radial_wider_larger * chosen[2]:
            chosen = other
    best = chosen[1]
    # the outline: each voxel within its nearest ray's end
    reach = np.ceil(params.radial_reach_mm / spacing_zyx).astype(int) + 1
    lo = np.maximum(centre.astype(int) - reach, 0)
    hi = np.minimum(centre.astype(int) + reach + 1, values.shape)
    grid = np.stack(np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi)), indexing="ij"), axis=-1)
    offsets = (grid - centre) * spacing_zyx
    distance = np.linalg.norm(offsets, axis=-1)
    nearest = np.argmax(offsets.reshape(-1, 3) @ directions.T, axis=1).reshape(distance.shape)
    core = np.zeros(values.shape, bool)
    core[tuple(slice(a, b) for a, b in zip(lo, hi))] = distance <= best[nearest]
    if core.sum() < params.core_min_ml / crop.voxel_volume_ml:
        return None
    out = np.zeros(volume.shape, bool)
    out[lower[0]:upper[0], lower[1]:upper[1], lower[2]:upper[2]] = core
    return out


def _half_way(raw: np.ndarray, smooth: np.ndarray, core: np.ndarray, seed_zyx, spacing_zyx,
              shell_mm: float = 3.0) -> np.ndarray:
    """The lesion's edge half-way between its density and its surroundings'. The ladder's last
    region reaches out to nearly the surroundings' density, into the partial-volume rim (the
    demo's liver lesion came out 15% too large, Dice 0.85): here the lesion's value is the median
    inside that region, the surroundings' the median of a shell ``shell_mm`` thick around it,
    and the lesion is what lies on the lesion's side of half-way, connected to the click, within
    the shell."""
    import SimpleITK as sitk

    near = dilate(core, shell_mm, spacing_zyx)
    inside, around = float(np.median(smooth[core])), float(np.median(smooth[near & ~core]))
    half = (inside + around) / 2
    side = smooth <= half if around > inside else smooth >= half
    lesion = near & side
    image = sitk.GetImageFromArray(lesion.astype(np.uint8))
    seed = tuple(int(v) for v in seed_zyx[::-1])
    if not lesion[tuple(seed_zyx)]:
        return core
    grown = sitk.GetArrayFromImage(sitk.ConnectedThreshold(image, seedList=[seed], lower=1, upper=1)).astype(bool)
    return _with_wall(raw, smooth, fill_holes(grown), seed_zyx, spacing_zyx, inside)


AIR_SIDE_HU = -300.0


def _with_wall(raw: np.ndarray, smooth: np.ndarray, lesion: np.ndarray, seed_zyx, spacing_zyx, inside: float,
               contrast_hu: float = 15.0, between_hu: float = 10.0, min_wall_mm: float = 3.0, widest_mm: int = 10,
               organ_mm=(12, 18), flat: float = 0.5, most: float = 8.0, beyond_share: float = 0.35) -> np.ndarray:
    """``lesion`` (the core the click lands in) with its wall, where it has one: the zone of
    another density between the core and the organ around it, as the radial profile out from the
    core shows it. ``raw`` (the crop, unsmoothed) gives the profile: the median of each 1 mm shell
    out to ``organ_mm``, over hundreds of voxels, needs no smoothing (a noisy series' smoothing
    blurred a sharp edge over several mm, which read as a wall). The organ's value is the
    median of the shells ``organ_mm`` out; the wall is the run of shells, starting within 3 mm,
    that differ from it by ``contrast_hu`` or more on one side (``between_hu`` on the core's side:
    a necrotic lesion's viable rim may lie 10-15 HU from the liver), at least ``min_wall_mm`` and at
    most ``widest_mm`` thick; where its shells rise to a ring and then ramp down to the organ (a
    blurred outer edge), the wall ends where they fall below half the ring's height. Two kinds:

    * brighter than the organ around a darker core: a rim-enhancing lesion's ring;
    * between the core's density and the organ's: a necrotic lesion's viable rim around its
      darker centre (a liver metastasis), or a core of one density inside a lesion of another.

    A partial-volume edge is a millimetre or two, thinner than ``min_wall_mm``. The wall's voxels
    are those on the wall's side of half-way between its value and the organ's (on ``smooth``),
    within the run's reach of the core; the band between core and wall is filled, slice by slice.
    Not where that would multiply the lesion by more than ``most`` (a neighbouring organ's edge,
    not a wall), nor in the lung, where the shells are partial volume against air, nor where more
    than ``beyond_share`` of the shell 3 to 6 mm past the wall lies on the wall's side (the organ
    itself, not a wall: beyond a wall lies the organ)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(lesion.astype(np.uint8))
    image.SetSpacing(tuple(float(s) for s in np.asarray(spacing_zyx)[::-1]))
    dist = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(image, insideIsPositive=False, squaredDistance=False,
                                                               useImageSpacing=True))
    shells = np.full(organ_mm[1] + 1, np.nan)
    for k in range(1, organ_mm[1] + 1):
        values = raw[(dist > k - 1) & (dist <= k)]
        if values.size >= 20:
            shells[k] = float(np.median(values))
    far = shells[organ_mm[0]:organ_mm[1] + 1]
    if np.isnan(far).sum() > len(far) // 2:
        return lesion
    # On a coarse grid (3 mm voxels) some 1 mm shells hold no voxel centre: such a gap between
    # shells that do is bridged, so that a ring several voxels thick reads as one run
    known = np.flatnonzero(~np.isnan(shells))
    gaps = np.arange(known[0], known[-1] + 1)
    shells[gaps] = np.interp(gaps, known, shells[known])
    organ = float(np.nanmedian(far))
    off = shells - organ

    def far_enough(k: int) -> bool:  # off the organ's value by contrast_hu, or by between_hu on the core's side
        return abs(off[k]) >= (between_hu if np.sign(off[k]) == np.sign(inside - organ) else contrast_hu)

    def run_from(k: int) -> int:  # the last shell of the run of shells off the organ's value, on one side, from k
        if not far_enough(k):
            return k - 1
        end = k
        while end + 1 <= widest_mm and far_enough(end + 1) and np.sign(off[end + 1]) == np.sign(off[k]):
            end += 1
        return end

    # the longest run starting within 3 mm (the first shell may be the core's own partial-volume
    # edge), or within one and a half voxels on a coarse grid, where that edge is wider: a 3 mm
    # series' rim-enhancing lesion's ring starts 4 mm out, past its dark centre's blurred edge
    # (a pasted 91 mL one at the liver's edge: its centre alone, 20 mL, Dice 0.37)
    first = max(3, int(np.ceil(1.5 * float(np.max(np.asarray(spacing_zyx)[1:])))))
    start, end = max(((k, run_from(k)) for k in range(1, first + 1)), key=lambda r: (r[1] - r[0], -r[0]))
    if end > start:  # a ring: the shells rise to it, then ramp down to the organ over the partial
        # volume (a noisy series' blur); the wall ends where they fall below half its height
        top = max(range(start, end + 1), key=lambda k: abs(off[k]))
        if top > start:  # (where the run falls from its first shell on, it is a ramp: left whole)
            last, end = end, top
            while end < last and abs(off[end + 1]) >= 0.5 * abs(off[top]):
                end += 1
    if organ < AIR_SIDE_HU or end - start + 1 < min_wall_mm:
        return lesion
    run = shells[start:end + 1]
    wall = float(np.median(run))
    if min(run) < AIR_SIDE_HU:
        return lesion
    half_run = len(run) // 2  # a wall is a plateau; a ramp into fat (STS_003's edge) is not
    if abs(float(np.median(run[:half_run])) - float(np.median(run[-half_run:]))) > flat * abs(wall - organ):
        return lesion
    if np.sign(wall - organ) == np.sign(inside - organ) and abs(wall - organ) >= abs(inside - organ):
        return lesion  # as far from the organ as the core: the lesion itself, which the core should hold
    half = (wall + organ) / 2
    side = smooth >= half if wall > organ else smooth <= half
    beyond = (dist > end + 3) & (dist <= end + 6)
    if beyond.any() and side[beyond].mean() > beyond_share:
        # the "wall" runs on past its end on most sides: it is the organ, and the "organ" beyond
        # it the median of the organ and a tissue of another density on a few sides (a lesion at
        # the organ's edge: a hyperdense one in the liver beside the fat, 11 mL -> 28 mL of liver)
        return lesion
    grown = _components_at(fill_slices(fill_holes(lesion | (side & (dist <= end + 1.5)))), np.asarray(seed_zyx)[None])
    return grown if lesion.sum() < grown.sum() <= most * lesion.sum() and not reaches_image_edge(grown) else lesion


def click_value(volume: Volume, point_mm, params: ClassicalParams = ClassicalParams()) -> float:
    """The value (HU) at the click ``point_mm`` (LPS mm): the median of the smoothed CT within
    ``seed_radius_mm``, as the engine's statistics take it."""
    low, high = _seed_window(volume, np.array([volume.patient_to_voxel(point_mm)]), params)
    return (low + high) / 2


def _seed_window(volume: Volume, pos: np.ndarray, params: ClassicalParams) -> tuple[float, float]:
    """The intensity window (low, high HU): robust statistics in spheres around ``pos`` (the
    engine passes the first positive click), on a Gaussian-smoothed copy (CT noise would widen
    it). Computed once per request, on small boxes around the clicks, whatever crop the growth
    needs."""
    import SimpleITK as sitk

    spacing_zyx = np.asarray(volume.spacing)[::-1]
    r = np.ceil(params.seed_radius_mm / spacing_zyx).astype(int)
    margin = r + np.ceil(4 * params.smoothing_mm / spacing_zyx).astype(int)
    values = []
    for p in np.rint(pos).astype(int):
        lo, hi = np.maximum(p - margin, 0), np.minimum(p + margin + 1, volume.shape)
        box = volume.crop(lo, hi)
        arr = sitk.GetArrayFromImage(smooth_image(sitk.Cast(box.to_sitk(), sitk.sitkFloat32), params.smoothing_mm))
        values.append(arr[ball(tuple(slice(a, b) for a, b in zip(lo, hi)), p, spacing_zyx, params.seed_radius_mm)])
    values = np.concatenate(values)
    mean = float(np.median(values))
    sigma = float(np.clip(1.4826 * np.median(np.abs(values - mean)), params.min_sigma_hu, params.max_sigma_hu))
    return mean - params.window_sigmas * sigma, mean + params.window_sigmas * sigma


def _grow(crop: Volume, pos: np.ndarray, window: tuple[float, float], params: ClassicalParams,
          neg: np.ndarray = np.zeros((0, 3))) -> np.ndarray:
    """Voxels connected to the positive clicks within the intensity window, on a light smoothing
    (so that small lesions keep their borders)."""
    import SimpleITK as sitk

    image = sitk.Cast(crop.to_sitk(), sitk.sitkFloat32)
    smooth = smooth_image(image, params.growth_smoothing_mm)
    seeds = [tuple(int(v) for v in p[::-1]) for p in pos]
    values = [smooth[s] for s in seeds]
    low, high = _window_with_seeds(window, values, params)

    def grow(low: float, high: float) -> np.ndarray:
        return sitk.GetArrayFromImage(sitk.ConnectedThreshold(
            smooth, seedList=seeds, lower=low, upper=high, replaceValue=1)).astype(bool)

    region = grow(low, high)
    spacing_zyx = np.asarray(crop.spacing)[::-1]
    rim = [p for p in np.rint(neg).astype(int) if _on_rim(region, p, spacing_zyx, params.rim_mm)]
    if rim:
        narrowed = _window_without(low, high, window, values,
                                   [smooth[tuple(int(v) for v in p[::-1])] for p in rim], params)
        if narrowed != (low, high):
            region = grow(*narrowed)
    return region


def _on_rim(region: np.ndarray, p: np.ndarray, spacing_zyx, rim_mm: float) -> bool:
    """Whether voxel ``p`` lies in ``region`` within ``rim_mm`` of a voxel outside it (or of the
    crop's edge)."""
    if not region[tuple(p)]:
        return False
    r = np.floor(rim_mm / np.asarray(spacing_zyx)).astype(int)
    lo, hi = p - r, p + r + 1
    if np.any(lo < 0) or np.any(hi > region.shape):
        return True
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    return bool((~region[box] & ball(box, p, spacing_zyx, rim_mm)).any())


def _window_with_seeds(window: tuple[float, float], seed_values, params: ClassicalParams) -> tuple[float, float]:
    """The intensity window widened, where needed, to hold every click's own value (with a margin
    of ``min_sigma_hu``): a click on a darker or brighter spot of a heterogeneous lesion than the
    lesion around it (a necrotic centre) would otherwise grow nothing at all."""
    low, high = window
    for v in seed_values:
        if v < low:
            low = v - params.min_sigma_hu
        if v > high:
            high = v + params.min_sigma_hu
    return low, high


def _window_without(low: float, high: float, window: tuple[float, float], seed_values, negative_values,
                    params: ClassicalParams) -> tuple[float, float]:
    """The window narrowed to leave out each negative click's value (of a click on the region's
    rim) where that value lies inside it, on one side of the lesion's statistics (``window``'s
    middle) by ``min_sigma_hu`` or more, beyond every positive click's value: a negative click on
    the partial-volume rim of a lesion trims the rim all round, where cutting away everything
    nearer to it than to a positive click took a cap off the lesion. A negative click deeper in
    a spill is left to that cut (narrowing the window for it took tumour away with the spill)."""
    middle = (window[0] + window[1]) / 2
    for v in negative_values:
        if not low < v < high:
            continue
        if v >= middle + params.min_sigma_hu and v > max(seed_values):
            high = v - 0.5
        elif v <= middle - params.min_sigma_hu and v < min(seed_values):
            low = v + 0.5
    return low, high


def _refine(region: np.ndarray, pos: np.ndarray, neg: np.ndarray, spacing_zyx, params: ClassicalParams) -> np.ndarray:
    """Leaks cut, negative clicks' parts removed, holes filled. The morphology works by distance
    maps, whose cost does not grow with the radius. A negative click the region already leaves
    out (by its intensity: see ``_window_without``) cuts nothing, unless filling the mask's holes
    brings it back in."""
    mask = region & _leak_cut(region, pos, spacing_zyx, params)
    inside = [p for p in neg if region[tuple(np.rint(p).astype(int))]]
    out = _cut_and_fill(mask, pos, inside, spacing_zyx)
    missed = [p for p in neg if out[tuple(np.rint(p).astype(int))] and not region[tuple(np.rint(p).astype(int))]]
    return _cut_and_fill(mask, pos, inside + missed, spacing_zyx) if missed else out


def _cut_and_fill(mask: np.ndarray, pos: np.ndarray, neg, spacing_zyx) -> np.ndarray:
    """``mask`` less what lies nearer to a negative click than to any positive one, its parts at
    the positive clicks, holes filled and closed by one voxel."""
    if len(neg):
        mask = mask & ~nearer_to(mask.shape, np.asarray(neg).reshape(-1, 3), pos, spacing_zyx)
    mask = _components_at(mask, pos)
    if not mask.any():
        return mask
    # Holes filled and a closing by one voxel, on the mask's bounding box.
    nz = np.nonzero(mask)
    lo = np.maximum([a.min() - 2 for a in nz], 0)
    hi = np.minimum([a.max() + 3 for a in nz], mask.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    out = mask.copy()
    out[box] |= _close_one_voxel(fill_holes(mask[box]))
    return out


def _leak_cut(region: np.ndarray, pos: np.ndarray, spacing_zyx, params: ClassicalParams) -> np.ndarray:
    """Where the region may stay after its leaks are cut: an opening scaled to the lesion (the
    depth of the region at the clicks says how thick the lesion is; attachments thinner than
    about half of that, such as vessels or a contact with the chest wall or muscle, are cut) whose
    part at the clicks is dilated back. A large region (a leak into muscle) is cut on a grid of
    about ``cut_grid_mm``: the cut needs no finer detail, and the lesion's border still comes from
    the region itself."""
    factor = np.ones(3, int)
    if region.sum() > params.coarse_cut_voxels:
        factor = np.maximum(1, np.floor(params.cut_grid_mm / np.asarray(spacing_zyx))).astype(int)
    spacing = np.asarray(spacing_zyx) * factor
    full = -(-np.asarray(region.shape) // factor)  # the coarse grid's shape over the whole region
    cpos = np.minimum(np.rint(pos).astype(int) // factor, full - 1)
    # Everything is done on the region's bounding box (with the clicks) on the coarse grid and one
    # voxel around it: what is kept is only ever used within the region, so the result is the
    # same as over the whole crop, at a fraction of the cost when the region is small in its crop.
    nz = [np.flatnonzero(region.any(axis=tuple(a for a in range(3) if a != k))) for k in range(3)]
    if any(len(n) == 0 for n in nz):
        return np.ones(region.shape, bool)
    lo = np.maximum(np.minimum([n[0] // f for n, f in zip(nz, factor)], cpos.min(axis=0)) - 1, 0)
    hi = np.minimum(np.maximum([n[-1] // f + 1 for n, f in zip(nz, factor)], cpos.max(axis=0) + 1) + 1, full)
    coarse = _pool(region[lo[0] * factor[0]:hi[0] * factor[0], lo[1] * factor[1]:hi[1] * factor[1],
                          lo[2] * factor[2]:hi[2] * factor[2]], factor)
    cpos = cpos - lo
    depth = max(float(v) for v in _depth_at(coarse, spacing, cpos))
    opening_mm = max(params.opening_mm, params.adaptive_opening * depth)
    # The structuring element: a ball of opening_mm, at least one voxel along each axis (so along
    # thick slices it reaches the next slice); under the spacing ``unit`` it is the unit ball.
    radius_vox = np.maximum(1, np.rint(opening_mm / spacing))
    unit = 1.0 / (radius_vox + 0.5)
    opened = dilate(_distance_inside(coarse, unit) > 1.0, 1.0, unit)
    core = _components_at(opened & coarse, cpos)
    if not core.any():
        return np.ones(region.shape, bool)
    keep = dilate(core, 1.0, unit)
    for axis, f in enumerate(factor):
        keep = np.repeat(keep, f, axis=axis)
    out = np.zeros(region.shape, bool)
    fine_lo = lo * factor
    fine_hi = np.minimum(hi * factor, region.shape)
    out[fine_lo[0]:fine_hi[0], fine_lo[1]:fine_hi[1], fine_lo[2]:fine_hi[2]] = \
        keep[:fine_hi[0] - fine_lo[0], :fine_hi[1] - fine_lo[1], :fine_hi[2] - fine_lo[2]]
    return out


def _pool(mask: np.ndarray, factor) -> np.ndarray:
    """``mask`` on a grid ``factor`` times coarser per axis (a coarse voxel is set when at least
    half of the fine voxels it covers are)."""
    if np.all(np.asarray(factor) == 1):
        return mask
    padded_shape = [int(np.ceil(n / f)) * f for n, f in zip(mask.shape, factor)]
    padded = np.zeros(padded_shape, np.float32)
    padded[:mask.shape[0], :mask.shape[1], :mask.shape[2]] = mask
    blocks = padded.reshape(padded_shape[0] // factor[0], factor[0], padded_shape[1] // factor[1], factor[1],
                            padded_shape[2] // factor[2], factor[2])
    return blocks.mean(axis=(1, 3, 5)) >= 0.5


# The 18-neighbourhood: a ball of radius one voxel (faces and edges of the cube, not its corners).
_BALL_1 = [o for o in np.ndindex(3, 3, 3) if 0 < sum(abs(v - 1) for v in o) <= 2]


def _shifted(mask: np.ndarray, offset, fill: bool) -> np.ndarray:
    out = np.full(mask.shape, fill, dtype=bool)
    dst = tuple(slice(max(0, d), mask.shape[a] + min(0, d)) for a, d in enumerate(offset))
    src = tuple(slice(max(0, -d), mask.shape[a] + min(0, -d)) for a, d in enumerate(offset))
    out[dst] = mask[src]
    return out


def _close_one_voxel(mask: np.ndarray) -> np.ndarray:
    """Morphological closing by a ball of one voxel (dilate, then erode), by shifted copies."""
    grown = mask.copy()
    for o in _BALL_1:
        grown |= _shifted(mask, np.subtract(o, 1), False)
    closed = grown.copy()
    for o in _BALL_1:
        closed &= _shifted(grown, np.subtract(o, 1), True)
    return closed


def _depth_at(mask: np.ndarray, spacing_zyx, points) -> list[float]:
    """The signed distance (mm, ITK's Maurer map, positive inside) of ``mask`` at ``points``."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(tuple(float(s) for s in np.asarray(spacing_zyx)[::-1]))
    d = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(image, insideIsPositive=True, squaredDistance=False,
                                                                useImageSpacing=True))
    return [float(d[tuple(p)]) for p in points]


def _distance_inside(mask: np.ndarray, spacing_zyx) -> np.ndarray:
    """For each voxel of ``mask``, its distance (mm) to the nearest voxel outside; 0 outside."""
    import SimpleITK as sitk

    if mask.all():
        return np.full(mask.shape, np.inf, np.float32)
    outside = sitk.GetImageFromArray((~mask).astype(np.uint8))
    outside.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))
    d = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(outside, insideIsPositive=False,
                                                            squaredDistance=False, useImageSpacing=True))
    return np.where(mask, np.maximum(d, 0), 0).astype(np.float32)


def _components_at(mask: np.ndarray, pos: np.ndarray) -> np.ndarray:
    import SimpleITK as sitk

    labels = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8))))
    keep = {int(labels[tuple(p)]) for p in pos} - {0}
    return np.isin(labels, list(keep)) if keep else np.zeros_like(mask)
