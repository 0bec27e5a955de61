"""Which click-to-segment engine outlines a lesion, when the user leaves it to medviewer ("auto").

The learned engine was trained on soft-tissue sarcomas: tumours in muscle of nearly the same
density, where region growing leaks (Dice 0.10-0.69 on all 24 sts cases, against 0.53-0.92).
Lesions that differ sharply from everything around them (a nodule in the lung, a hypodense lesion
in the liver) are the classical engine's: on the demo phantom's three lesions it gives Dice
0.86 / 0.79 / 0.98 where the learned engine gives 0.81 / 0.22 / 0.11 (it spills 245 mL out of a
14 mL liver lesion).

The test that tells them apart is the classical engine's own first step: grow from the click
within the intensity window of its surroundings, on the crop of ``start_radius_mm`` around it.
If that region closes inside the crop, the lesion is bounded on every side by tissue of another
density, and region growing outlines it. If it reaches the crop's border, it runs on into
tissue like it (a sarcoma's muscle, the lung tumour's mediastinum), and the learned engine
outlines it. The first click of a lesion decides, so corrective clicks never switch engines
under the user.

On the sts cases no click closes: not the deepest point of any of the 24 tumours, nor any of
480 random points at least 3 mm inside them (20 a case). The demo lesions all close. This test
costs about 30 ms.

A small lesion in an organ of nearly its density (a liver metastasis) does not close in one
window: it leaks into the organ, and the learned engine, which never saw a liver, spilled into
it too (537-904 mL from a click in a 2.5-10 mL tumour). Such a lesion has a core
(``classical.lesion_core``: the region holds still over a few ever wider windows, then jumps)
and goes to the classical engine, which outlines that core. Of the 44 sts tumours' deepest
points two have one (STS_002 and STS_003, Dice 0.88 and 0.86 against the expert's contour, both
training cases of the learned engine); the others stay with the learned engine. A faint lesion
(15-35 HU from its organ) leaks at the core ladder's first window; a finer ladder on a smoother
copy finds its core (``classical._faint_core``), and it goes to the classical engine too. That
ladder also finds STS_041's dark centre (Dice 0.71), part of a larger sarcoma: so where a core is
faint the plugin asks the learned engine too, and where its mask holds the core and is 1.2 to 2.5
times as large (:func:`extends_the_core`), the learned engine outlines the lesion (STS_041: 0.77).
On faint liver lesions it spilled 5.5 to 66 times the core, and the classical outline stands.

A ground-glass nodule (-800 to -250 HU at the click: the median of the smoothed CT within 5 mm)
is fainter than anything the learned engine sees: it reads the CT clipped to -250 to 350 HU, so
the nodule is air to it. Such a click goes to the classical engine. Of the 6 LIDC nodules, three
are ground glass at the click (LIDC-IDRI-0002's, about -700 HU, which had a core and went to the
classical engine already; LIDC-IDRI-0003's second and fourth, about -640 and -570 HU, which went
to the learned engine). On the 0.6 mL one the learned engine had given Dice 0.32, the classical
one gives 0.83; on the 5.2 mL one both give 0.49-0.50.

A region can close, too, inside a larger lesion: the dark centre of a mass in the lung, bounded
by the mass's brighter wall, or a lesion pressed against the chest wall that region growing
leaves most of. The classical engine then outlines a part (6.5 of a pasted 107 mL mass; 49 of
190 mL; Dice 0.12-0.48). Its outline gives it away: lung lies near it (at least
``CHEST_AIR_SHARE`` of the shell 3 to 20 mm around it) but not at its edge (under
``EDGE_AIR_SHARE`` of the 3 mm shell), where a nodule in the lung has air at its edge
(:func:`enclosed_in_the_chest`). The plugin then runs the learned engine from the same click,
and where its mask holds the classical one and is at least twice as large
(:func:`holds_the_part`), the learned engine outlines the lesion. Measured on 35 pasted chest
lesions (0.7-190 mL, in A0001 and the three LIDC scans) and the 6 LIDC nodules, from the deepest
point: this happened on 4, Dice 0.475 / 0.455 / 0.409 / 0.115 -> 0.693 / 0.431 / 0.778 / 0.835.
The 7 other enclosed outlines (classical 0.48-0.90) stayed. The size test matters: enclosed
alone would have handed 4 good classical outlines (0.85-0.90) to the learned engine (0.77-0.81).

Deep inside a large mass the outline of its dark centre has mass all round it, and the lung lies
past the mass's edge, beyond most of the 3-20 mm shell: lung in 12% of it in a pasted 147 mL
rim-enhancing mass and a 202 mL necrotic one (Dice 0.05 and 0.17 from their 3 and 18 mL
centres). Such an outline is "deep" (``DEEP_AIR_SHARE``), and the learned engine is asked too.
A lesion in the liver under the diaphragm has as much lung around it (15-16%), and the learned
engine spills into the liver there: so for a deep outline its mask must also lie in the lung
itself (:func:`lies_in_the_lung`: lung in 40% of the shell around it; the two masses' 46-54%, the
two liver spills' 32-34%). On 23 pasted masses of 100-400 mL in A0001, LIDC-IDRI-0314 and the
three LIDC scans this changed those two: Dice 0.045 / 0.167 -> 0.613 / 0.657 after one click,
0.271 / 0.239 -> 0.680 / 0.859 after three.

Where the learned engine's mask is less than twice the enclosed outline, the classical outline
stood, yet in a rim-enhancing or necrotic mass it is the dark centre alone: the mass's wall lies
around it, out to where the lung begins. So for an enclosed or deep outline auto also looks for
that wall (:func:`wall_towards_the_lung`: the soft tissue around the outline, as thick as the
lung's nearest approach, 3-20 mm, with lung beyond it) and adds it where it makes the lesion 1.5
to 8 times the outline. Pasted rim-enhancing and necrotic masses against the pleura, 8-260 mL,
from their deepest point: Dice 0.40-0.84 -> 0.84-0.96. The same holds the rest of a faint
hypodense mass whose core the finer ladder found (a fresh draw's 104 mL one: 0.58 -> 0.97).
Until 2026-12-07 the learned engine had to mark a fifth of the added band too; on the five fresh
draws' chest lesions that check refused six walls, each better than the outline it would have
replaced (0.41-0.84 -> 0.83-0.98), and allowed none that was worse.

The other way round: a lung mass of 150-400 mL runs past the first window (50 mm from the
click), has no core, and goes to the learned engine, which outlines 50-70% of such a mass (its
weights' size prior; a third, coarser grid did not change that). Region growing, further out,
closes it whole: it is bounded by lung. So the plugin takes the classical outline where it holds
the learned mask, is 1 to ``MASS_FACTOR`` times as large, stops short of the classical engine's
reach, and has lung along 5% of its edge or more (:func:`lung_mass_closes`; asked only where
lung lies near the click, :func:`lung_near`). No sarcoma's outline has (0-2%), nor A0001's
tumour's (2%); pasted masses against the pleura have 7-32% (the chest wall takes the rest).
Where region growing runs on into what the mass lies against instead, the plugin asks
:mod:`medviewer.segmentation.lung_mass`: rays from the click that end where the lung begins.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from medviewer.core.volume import Volume
from medviewer.segmentation.classical import (ClassicalParams, click_value, core_is_faint, lesion_core,
                                              region_closes_near, remember_last, segment_classical, window_outline,
                                              window_over_faint_core)
from medviewer.segmentation.guidance import HU_CENTER, HU_HALF_WIDTH, too_thin_for_learned

ENGINES = ("auto", "learned", "classical")
DEFAULT_ENGINE = "auto"


def choose_engine(volume: Volume, positives_mm: Sequence[Sequence[float]],
                  params: ClassicalParams = ClassicalParams()) -> tuple[str, str]:
    """("learned" or "classical", why) for the lesion whose first positive click is
    ``positives_mm[0]``; ``why`` is empty for the learned engine, the usual case. Where it says
    "classical", :func:`may_be_part_of_a_mass` tells whether the learned engine should be asked
    too (the plugin does, as it holds the learned engine)."""
    thin = too_thin_for_learned(volume)
    if thin:
        return "classical", thin
    if len(positives_mm) and region_closes_near(volume, np.asarray(positives_mm[0], float), params):
        return "classical", f"a sharply bounded lesion, closed off within {params.start_radius_mm:g} mm of the click"
    if len(positives_mm):
        value = click_value(volume, positives_mm[0], params)
        low, high = HU_CENTER - HU_HALF_WIDTH, HU_CENTER + HU_HALF_WIDTH
        if GROUND_GLASS_HU <= value < low:
            return "classical", (f"a faint (ground-glass) lesion, about {value:.0f} HU at the click, below the "
                                 f"{low:g} to {high:g} HU the learned engine sees")
    if len(positives_mm) and lesion_core(volume, np.asarray(positives_mm[0], float), params) is not None:
        if core_is_faint(volume, np.asarray(positives_mm[0], float), params):
            return "classical", ("a faint lesion, close in density to the organ around it, whose edge shows on a "
                                 "smoothed copy or along rays from the click")
        if window_over_faint_core(volume, np.asarray(positives_mm[0], float), params) is not None:
            return "classical", ("a lesion plainly bounded all round once region growing cuts the thin leaks "
                                 "along its edge")
        return "classical", "a compact lesion that region growing closes off before it leaks into the tissue around it"
    return "learned", ""


GROUND_GLASS_HU = -800.0  # fainter than this, aerated lung: no lesion the classical engine could outline either


def may_be_part_of_a_mass(volume: Volume, point_mm, params: ClassicalParams = ClassicalParams()) -> str:
    """Whether the classical engine's outline from the first click ``point_mm`` may be a part of a
    larger lesion in the chest: "enclosed" where it lies in the chest with soft tissue all round
    it (:func:`enclosed_in_the_chest`), or the one-window outline a core replaced does
    (``classical.window_outline``); "deep" where soft tissue lies all round it and lung only
    farther off (``DEEP_AIR_SHARE`` of the shell 3 to 20 mm around it: the dark centre of a lung
    mass, or a lesion under the diaphragm); "" otherwise. Then the learned engine is asked too,
    and outlines the lesion where its mask holds the classical one and is at least
    ``MASS_FACTOR`` times as large (:func:`holds_the_part`), and for "deep", where its mask lies
    in the lung itself (:func:`lies_in_the_lung`)."""
    outline = first_click_classical(volume, point_mm, params)
    edge, ring = _air_shares(volume, outline)
    if edge < EDGE_AIR_SHARE and ring >= CHEST_AIR_SHARE:
        return "enclosed"
    if edge == 0 and ring < 0.01:  # no lung near it: an organ's lesion, not the chest's
        return ""
    # Where a core replaced the one-window outline (see classical.segment_classical), that outline
    # tells too: a 107 mL mass's dark centre, enclosed by its wall, whose core took in part of the
    # wall and reached the lung (Dice 0.46, the learned engine 0.84).
    window = window_outline(volume, point_mm, params)
    if window is not None and not np.array_equal(window, outline) and enclosed_in_the_chest(volume, window):
        return "enclosed"
    return "deep" if edge < EDGE_AIR_SHARE and ring >= DEEP_AIR_SHARE else ""


MASS_FACTOR = 2.0
HELD_SHARE = 0.8


def holds_the_part(whole: np.ndarray, part: np.ndarray) -> bool:
    """Whether ``whole`` (the learned engine's mask) holds ``HELD_SHARE`` of ``part`` (the
    classical engine's) and is at least ``MASS_FACTOR`` times as large: the classical engine
    outlined a part of the lesion."""
    n = int(part.sum())
    return n > 0 and whole.sum() >= MASS_FACTOR * n and (whole & part).sum() >= HELD_SHARE * n


def learned_engine_asked_too(volume: Volume, point_mm, params: ClassicalParams = ClassicalParams()) -> bool:
    """Whether auto, having given the lesion at the first click ``point_mm`` to the classical
    engine, asks the learned engine too: where the classical outline may be a part of the lesion,
    a faint core (:func:`extends_the_core` decides) or an outline enclosed in the chest or deep in
    a mass there (:func:`may_be_part_of_a_mass`; :func:`holds_the_part` and, for a deep one,
    :func:`lies_in_the_lung` decide)."""
    return bool(core_is_faint(volume, point_mm, params) or may_be_part_of_a_mass(volume, point_mm, params))


LUNG_EDGE_SHARE = 0.05  # lung along at least this share of a mask's 3 mm edge: a lesion in the lung
LUNG_NEAR_SHARE = 0.05  # ... worth looking at where lung fills this share of the box ...
LUNG_NEAR_MM = 60.0  # ... this far around the click


def lung_near(volume: Volume, point_mm) -> bool:
    """Whether lung (or air: below ``LUNG_HU``, unsmoothed) fills ``LUNG_NEAR_SHARE`` of the box
    ``LUNG_NEAR_MM`` around ``point_mm``: a quick look (milliseconds) before asking whether the
    lesion is a lung mass (:func:`lung_mass_closes`). A sarcoma of the limbs has none."""
    from medviewer.segmentation.classical import _crop_bounds

    lower, upper = _crop_bounds(volume, np.array([volume.patient_to_voxel(point_mm)]), LUNG_NEAR_MM)
    box = tuple(slice(a, b) for a, b in zip(lower, upper))
    return float(np.mean(volume.array[box] < LUNG_HU)) >= LUNG_NEAR_SHARE


def lung_mass_closes(volume: Volume, learned: np.ndarray, point_mm,
                     params: ClassicalParams = ClassicalParams()) -> np.ndarray | None:
    """The classical engine's outline from the first click ``point_mm`` where auto gave the lesion
    to the learned engine (its region ran past the first window) and that outline is a lung mass
    outlined whole; None otherwise (the learned mask stands).

    A lung mass of 150-400 mL reaches past the first window's 50 mm, so the learned engine gets it,
    and the learned engine outlines 50-70% of such a mass (its weights' size prior). Region growing
    closes it all the same, further out: it is bounded by lung. So the classical outline is taken
    if it stops short of the classical engine's reach, has lung along ``LUNG_EDGE_SHARE`` of its
    edge, holds ``HELD_SHARE`` of the learned mask and is 1 to ``MASS_FACTOR`` times as large.
    On the 44 sarcomas' deepest points the classical outlines' edges hold 0-2% lung, A0001's
    tumour's 2%; pasted masses against the pleura 7-32% (the chest wall takes the rest)."""
    from medviewer.segmentation.classical import reached_reach

    if not learned.any():
        return None
    outline = first_click_classical(volume, point_mm, params)
    n, m = int(learned.sum()), int(outline.sum())
    if not (n <= m <= MASS_FACTOR * n) or (outline & learned).sum() < HELD_SHARE * n:
        return None
    if reached_reach(volume, outline, [point_mm], (), params) or _edge_air_share(volume, outline) < LUNG_EDGE_SHARE:
        return None
    return outline


FAINT_CORE_FACTOR = (1.2, 2.5)


def inside_a_lung_mass(volume: Volume, whole: np.ndarray, core: np.ndarray) -> bool:
    """Whether a faint lesion's ``core`` lies inside a mass in the lung that ``whole`` (the
    learned engine's mask) outlines: ``whole`` holds the core and is at least ``MASS_FACTOR``
    times as large (:func:`holds_the_part`), and lies in the lung (:func:`lies_in_the_lung`). The
    finer ladder and the rays find a "faint core" in a large mass's own noise too (a pasted 251 mL
    mass against the pleura of LIDC-IDRI-0001: 4.8 mL, Dice 0.04), which the learned engine
    outlines (0.77). In an organ (:func:`extends_the_core`'s liver lesions) its spill has little
    lung around it."""
    return holds_the_part(whole, core) and lies_in_the_lung(volume, whole)


def extends_the_core(whole: np.ndarray, core: np.ndarray) -> bool:
    """Whether ``whole`` (the learned engine's mask) holds ``HELD_SHARE`` of a faint lesion's
    ``core`` (the classical engine's outline of it, see ``classical.core_is_faint``) and is
    ``FAINT_CORE_FACTOR`` times as large: the core is the darker part of a larger lesion, not a
    lesion the learned engine spilled out of. STS_041's dark centre: 33 mL (Dice 0.71), the
    learned engine 50 mL (0.77), 1.5 times; on 12 faint liver lesions the learned engine spilled
    5.5 to 66 times the core."""
    n = int(core.sum())
    low, high = FAINT_CORE_FACTOR
    return n > 0 and low * n <= whole.sum() <= high * n and (whole & core).sum() >= HELD_SHARE * n


CHEST_AIR_SHARE = 0.2  # lung in the shell 3-20 mm around the classical outline ...
EDGE_AIR_SHARE = 0.1  # ... but little in the 3 mm at its edge (5% before: a 165 mL mass's dark
# centre had lung on 5.2% of its edge, the 5 mm slices' partial volume at its top and bottom). The
# benchmark's lesions free in the lung, outlined whole, have lung on 21-99% of theirs; two against
# the pleura 7% (their outlines' Dice 0.84 and 0.89), which the learned engine's mask, asked
# then, does not hold twice over: they stand, as every lesion of the benchmark's own sets does.
# Deep in a lung mass (its dark centre), the shell 3-20 mm around the outline is mostly mass:
# lung in 12% of it in a pasted 147 mL mass and a 202 mL one. A lesion under the diaphragm has as
# much (15-16% in two pasted liver lesions); there the learned engine's spill into the liver has
# lung in 32-34% of the shell around it, its outline of a mass 46-54% (LUNG_RING_SHARE).
DEEP_AIR_SHARE = 0.1
LUNG_RING_SHARE = 0.4
LUNG_HU = -500.0

_FIRST: list = []  # the last (volume, point, params, mask): auto's check and the engine share it


def first_click_classical(volume: Volume, point_mm, params: ClassicalParams = ClassicalParams()) -> np.ndarray:
    """The classical engine's mask from the one click ``point_mm`` (cached for the last click:
    the plugin runs the same request right after ``choose_engine``)."""
    return remember_last(_FIRST, volume, (tuple(float(v) for v in point_mm), params),
                         lambda: segment_classical(volume, [point_mm], params=params))


def lies_in_the_lung(volume: Volume, mask: np.ndarray) -> bool:
    """Whether lung fills at least ``LUNG_RING_SHARE`` of the shell 3 to 20 mm around ``mask``:
    the learned engine's outline of a mass in the lung, not its spill below the diaphragm."""
    return _air_shares(volume, mask)[1] >= LUNG_RING_SHARE


def enclosed_in_the_chest(volume: Volume, mask: np.ndarray) -> bool:
    """Whether ``mask`` lies in the chest (lung within 20 mm of it) with soft tissue all round its
    edge: a part of a larger lesion (see the module's docstring)."""
    edge, ring = _air_shares(volume, mask)
    return bool(edge < EDGE_AIR_SHARE and ring >= CHEST_AIR_SHARE)


def _edge_air_share(volume: Volume, mask: np.ndarray) -> float:
    """The share of lung in the 3 mm shell around ``mask`` (1.0 for an empty mask)."""
    return _air_shares(volume, mask, ring_mm=0.0)[0]


def _air_shares(volume: Volume, mask: np.ndarray, ring_mm: float = 20.0) -> tuple[float, float]:
    """The shares of lung in the 3 mm shell around ``mask`` and in the shell 3 to ``ring_mm`` around
    it (1.0 and 0.0 for an empty mask: neither enclosed nor in the chest; 0.0 for the ring where
    ``ring_mm`` is 3 or less)."""
    import SimpleITK as sitk

    from medviewer.segmentation.masks import dilate, smooth_image

    if not mask.any():
        return 1.0, 0.0
    spacing_zyx = np.asarray(volume.spacing)[::-1]
    margin = np.ceil((max(ring_mm, 3.0) + 1.0) / spacing_zyx).astype(int) + 1
    nz = np.argwhere(mask)
    lower, upper = np.maximum(nz.min(0) - margin, 0), np.minimum(nz.max(0) + margin + 1, volume.shape)
    crop = volume.crop(lower, upper)
    lung = sitk.GetArrayFromImage(smooth_image(sitk.Cast(crop.to_sitk(), sitk.sitkFloat32), 1.0)) < LUNG_HU
    inner = mask[lower[0]:upper[0], lower[1]:upper[1], lower[2]:upper[2]]
    edge = dilate(inner, 3.0, spacing_zyx)
    ring = dilate(inner, ring_mm, spacing_zyx) & ~edge if ring_mm > 3.0 else None  # (none asked for)
    edge &= ~inner
    if not edge.any() or (ring is not None and not ring.any()):
        return 1.0, 0.0
    return float(lung[edge].mean()), float(lung[ring].mean()) if ring is not None else 0.0


WALL_MM = (3.0, 20.0)  # a wall towards the lung this thick (where the lung begins, nearest) ...
WALL_LUNG_SHARE = 0.3  # ... with lung in this share of the 5 mm shell beyond it ...
WALL_LEAST, WALL_MOST = 1.5, 8.0  # ... that makes the lesion this many times its enclosed part
WALL_STEP_MM = 2.0  # (thicker by this, while the lung beyond is too little: see below)


def wall_towards_the_lung(volume: Volume, part: np.ndarray, point_mm) -> np.ndarray | None:
    """``part`` (the classical engine's first-click outline, enclosed in the chest or deep in a
    mass there: see :func:`may_be_part_of_a_mass`; soft tissue all round its own edge, under
    ``EDGE_AIR_SHARE`` lung) with the soft tissue around it out to where the lung begins,
    where that is a lesion's wall: a rim-enhancing or necrotic lung mass whose dark centre region
    growing closed off, inside its brighter wall. None where there is no such wall.

    The wall's thickness is where the lung begins nearest: the 5th percentile of the lung's
    distances (below ``LUNG_HU`` on the CT smoothed by 1 mm, within ``WALL_MM[1]`` of the part). It
    must be ``WALL_MM`` thick, with lung in ``WALL_LUNG_SHARE`` of the 5 mm shell past it (a
    lesion in the lung, not in the chest wall or under the diaphragm); where that shell holds less,
    it is sought ``WALL_STEP_MM`` thicker at a time, up to ``WALL_MM[1]`` (a mass against the chest
    wall, the lung near it on one side only), and the lesion (the part,
    the soft tissue within the wall's thickness, holes filled, the component at
    the click) ``WALL_LEAST`` to ``WALL_MOST`` times the part (a small addition is the nodule's own
    partial-volume edge, thick across 5 mm slices, not a wall: a pasted 8.7 mL rim-enhancing nodule
    outlined whole, 0.985, came out at 0.964 with it). Pasted rim-enhancing and necrotic masses
    against the pleura of 8-260 mL: their dark centres Dice 0.40-0.84, with the wall 0.84-0.96.

    Kept for the last click asked (``remember_last``): auto asks again at each corrective click of
    the lesion, about the same first click (0.1 s on a 141 mL mass)."""
    return remember_last(_WALL, volume, (tuple(float(v) for v in point_mm), int(part.sum())),
                         lambda: _wall_towards_the_lung(volume, part, point_mm))


_WALL: list = []  # the last (volume, (first click, the part's size), wall)


def _wall_towards_the_lung(volume: Volume, part: np.ndarray, point_mm) -> np.ndarray | None:
    import SimpleITK as sitk

    from medviewer.segmentation.classical import _components_at
    from medviewer.segmentation.masks import fill_holes, fill_slices, smooth_image

    if not part.any() or _edge_air_share(volume, part) >= EDGE_AIR_SHARE:
        return None  # (lung at its own edge: a nodule, whose rim towards the lung air_rim adds)
    spacing_zyx = np.asarray(volume.spacing)[::-1]
    nz = np.argwhere(part)
    margin = np.ceil((WALL_MM[1] + 8.0) / spacing_zyx).astype(int) + 1
    lower, upper = np.maximum(nz.min(0) - margin, 0), np.minimum(nz.max(0) + margin + 1, volume.shape)
    box = tuple(slice(a, b) for a, b in zip(lower, upper))
    crop = volume.crop(lower, upper)
    lung = sitk.GetArrayFromImage(smooth_image(sitk.Cast(crop.to_sitk(), sitk.sitkFloat32), 1.0)) < LUNG_HU
    inner = part[box]
    image = sitk.GetImageFromArray(inner.astype(np.uint8))
    image.SetSpacing(tuple(float(v) for v in spacing_zyx[::-1]))
    dist = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(image, insideIsPositive=False, squaredDistance=False,
                                                               useImageSpacing=True))
    near = lung & (dist > 0) & (dist <= WALL_MM[1])
    if not near.any():
        return None
    thick = float(np.percentile(dist[near], 5))
    if not WALL_MM[0] <= thick <= WALL_MM[1]:
        return None
    # Against the chest wall the lung begins near on one side only, and the 5 mm past that holds
    # little lung, where the mass goes on farther: the wall is then sought thicker, by
    # WALL_STEP_MM at a time, up to WALL_MM[1] (rim-enhancing and necrotic masses of 85-170 mL
    # against the chest wall, their centres Dice 0.34-0.40: 9-13 mm from where the lung begins,
    # 15% lung beyond; 10-15 mm, 30% and more).
    while True:
        beyond = (dist > thick) & (dist <= thick + 5.0)
        if beyond.any() and lung[beyond].mean() >= WALL_LUNG_SHARE:
            break
        thick += WALL_STEP_MM
        if thick > WALL_MM[1]:
            return None
    seed = np.asarray(volume.patient_to_voxel(point_mm, clip=True)) - lower
    if np.any(seed < 0) or np.any(seed >= inner.shape):
        return None  # (a click outside its own outline's box: no outline of this click)
    grown = _components_at(fill_slices(fill_holes(inner | (~lung & (dist <= thick)))), seed[None])
    if not WALL_LEAST * inner.sum() <= grown.sum() <= WALL_MOST * inner.sum():
        return None
    out = np.zeros(volume.shape, bool)
    out[box] = grown
    return out

