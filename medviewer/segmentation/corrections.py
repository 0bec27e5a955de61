"""Corrective clicks that behave as a user expects, whatever engine outlined the lesion.

Every engine reruns from all the clicks so far and returns a whole new mask; left alone, a
corrective click could change the mask anywhere. Users measured it: a liver lesion went from Dice
0.743 after one click to 0.003 after the second, a lung mass from 0.688 to 0.490 after the third.
The rule here (one function, :func:`apply_corrections`, that every engine's result passes through
when the previous result is known) makes a correction local and one-sided:

* a corrective click is one the previous mask disagrees with: a positive click outside it, a
  negative click inside it (clicks the previous mask already agrees with change nothing);
* a positive corrective click only adds, and only near itself: the part of the engine's new mask
  that is new, connected to the click, within the click's reach; the previous mask is kept whole;
* a negative corrective click only removes, and only near itself: the part of the previous mask
  that the engine dropped, connected to the click, within its reach;
* where the engine ignored the click (its new mask on the wrong side of it), a ball around the
  click reaching towards the previous mask's edge, at most ``ignored_mm``, is added (a positive
  click) or cut (a negative one, less what lies nearer to a positive click);
* the result never comes back empty: the parts holding a positive click are kept, and if a cut
  would leave none (a negative click on the lesion's own centre) the previous mask stands, with
  a note.

A click's reach grows with the size of what it corrects: ``depth_factor`` times its distance to
the previous mask's edge (a positive click) or its depth inside the mask (a negative one), at most
``max_reach_mm``. Why that measure: the robot user (and most users) click in the middle of what
is wrong, so the ball of that distance lies in the error; a click one voxel off the edge of a
good mask changes a voxel or two, not a 15 mm ball (that lowered the Dice of 23 of 32 corrective
clicks on small synthetic lesions).

A click 2 mm and 2.5 voxels or more from the previous edge marks a coarse error, and such an
error is often a layer along the lesion rather than a ball: a missed rim around a necrotic centre,
a spill along the pleura, a faint lesion's spill into the liver around it. A ball of the click's
distance covers a sliver of it: the robot's corrective clicks on such lesions raised the Dice by
0.001-0.01 each (a pasted 2.2 mL lesion against the pleura stayed at 0.49 after five clicks). So
such a click's correction also reaches along the previous edge: through the voxels within 1.5 (a
negative click) or 1.0 (a positive one) times its distance of that edge, within the lesion's
radius (negative) or half of it (positive) of the click (``layer_*`` in ``CorrectionParams``;
the classical engine's positive clicks reach three quarters of it, three radii from 50 mL on: see
``CORRECTIONS``).
The rule stands: only the engine's own change, connected to the click; a negative click's layer
only where the engine's new mask still holds a positive click. Measured (auto, 5 robot clicks,
median after clicks 2-5): faint liver lesions 0.666/0.671/0.673/0.674 -> 0.673/0.688/0.699/0.708,
the validation sarcomas 0.798/0.817/0.832/0.841 -> 0.798/0.817/0.838/0.855, that 2.2 mL lesion
0.49 -> 0.63; 1 corrective click of 236 lowered the Dice, by 0.011. Tried and not kept: wider
layers (twice the distance for a positive click, the whole radius: 6 of 236 lowered, two by
0.06-0.07, a 1.5 mL LIDC nodule and a lesion against the pleura); 2 mm without the voxel count
(on a 3 mm grid a click one voxel off the edge is 3 mm from it, a finishing touch: 23 of 80 such
clicks on liver lesions pasted into a 3 mm abdomen lowered the Dice, by up to 0.09).

An engine can answer a negative click by giving up most of the lesion: the learned engine, told
that a voxel 2.5 to 6 mm inside the edge of a pasted lesion or a liver spill is not lesion, came
back with 12-50% of its previous mask. What it dropped along the edge then tells little of where
the spill ends, and the layer took true lesion with it (7 of the learned engine's 12 corrective
clicks that lowered the Dice over 5 robot clicks, by up to 0.034: a 30 mL lesion against the
pleura 0.889 -> 0.855). So where the engine's new mask keeps under ``collapsed_kept`` (60%) of
the previous one, a negative click's layer reaches at most ``collapsed_reach`` (3) times the
click's depth from it. A sarcoma's finishing touches (the engine keeps 74-89%) are unchanged.
Measured, per corrective click from the same previous mask (236 an engine): the learned engine
12 -> 6 lowering the Dice, by at most 0.021, the Dice gained over all clicks 9.68 -> 9.85; auto
5 -> 4. Over the benchmark's 5 robot clicks (the later clicks land elsewhere): the learned engine
12 -> 7 of 236, by at most 0.034 -> 0.021; auto 5 -> 5, 0.021 -> 0.019. Tried and not kept:
the same cap on every negative click (4 lowering, but the sarcomas' fourth and fifth clicks
gained less: STS_022 0.869 -> 0.855, STS_023 0.789 -> 0.773); a cap of 2 depths (5, but 1.3 of
the 9.7 gained lost); dropping the layer where the engine collapsed (6, but 5.4 lost).

A positive click a few mm outside a large lesion's edge marks a thin miss, yet the learned
engine's lesion-sized reach (1.5 times the radius from 100 mL on, below) let it take whatever the
engine added within 45 mm: on a 173 mL mass pasted against the pleura, two such clicks 4 mm out
added 35 mL of chest wall with 6 mL of mass (Dice 0.853 -> 0.791). So a positive click's ball
reaches at most ``positive_reach_depths`` (8) times its distance to the edge. Measured per
corrective click from the same previous mask (316, the learned engine, the benchmark's sets and
its 20 large lung masses): 8 times: 12 lowering the Dice, by at most 0.040 (0.060 before), the
Dice gained over all clicks 11.61 -> 11.57; 5 times: 11, by 0.021, but 11.50; 3 times: 10, but
11.36. Over the benchmark's 5 robot clicks, 8 times: the learned engine 10 -> 11 of 316
lowering the Dice, by at most 0.060 -> 0.021 (that mass: 0.838 after three clicks); auto
unchanged (5, by 0.019), the sarcomas unchanged but STS_036 (0.879 -> 0.880 after three); the
large masses' coarse clicks gain a little less (the learned engine's 140 mL necrotic one 0.946
-> 0.880 after three; 5 times cost more: 0.866, and auto's 178 mL one 0.899 -> 0.876).

How a run knows the previous result: the window's segment editor sends the segment's current mask,
``medviewer segment`` reads the mask it is about to replace (--out, on the same grid, when there is
more than one click), and a plugin request may carry it as the ``previous`` parameter (an array or
a label image file). Without it, an engine's result is used as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from medviewer.segmentation.masks import ball


@dataclass(frozen=True)
class CorrectionParams:
    depth_factor: float = 1.0  # a click changes the mask within this many times its distance to the previous edge
    lesion_factor: float = 0.0  # ... or this share of the previous mask's radius (that of a ball of its volume) ...
    lesion_min_ml: float = 8.0  # ... where the previous mask holds at least this much ...
    coarse_clicks: int = 2  # ... for the first this many clicks after the first; later ones are finishing touches:
    fine_lesion_factor: float = 0.5  # this share instead
    min_reach_mm: float = 0.0
    max_reach_mm: float = 60.0
    ignored_mm: float = 5.0  # the largest ball added or cut at a click the engine ignored
    # A click at least layer_min_mm (and layer_min_voxels) from the previous edge marks a coarse error, often a layer
    # along the lesion (a missed rim, a spill along the pleura): its correction also reaches along
    # that edge, through the voxels within layer_factor times the click's distance of it, within
    # layer_radius times the lesion's radius of the click (a negative click, a positive one).
    layer_min_mm: float = 2.0
    layer_min_voxels: float = 2.5  # ... and as many of the finest voxel side (on a 3 mm grid, one
    # voxel off the edge is 3 mm: a finishing touch, not a coarse error)
    layer_factor: tuple[float, float] = (1.5, 1.0)
    layer_radius: tuple[float, float] = (1.0, 0.5)
    # Where the engine's new mask keeps under collapsed_kept of the previous one, it has given up
    # more than the click asked: a negative click's layer then reaches at most collapsed_reach
    # times the click's depth from it (see the module's docstring).
    collapsed_kept: float = 0.6
    collapsed_reach: float = 3.0
    # A positive click's ball reaches at most this many times its distance to the previous edge,
    # whatever the lesion-sized reach (see the module's docstring).
    positive_reach_depths: float = 8.0
    # From large_ml on, a positive click's layer reaches large_layer_radius times the lesion's
    # radius along the edge instead (0: as layer_radius says; see CORRECTIONS["classical"]).
    large_ml: float = float("inf")
    large_layer_radius: float = 0.0


@dataclass(frozen=True)
class Correction:
    """The corrected mask and a line for the user ("" when nothing needs saying)."""
    mask: np.ndarray
    note: str = ""
    corrective: int = 0  # how many clicks were corrective


def apply_corrections(previous: np.ndarray | None, proposed: np.ndarray, positives_zyx: Sequence,
                      negatives_zyx: Sequence, spacing_zyx, params: CorrectionParams = CorrectionParams()
                      ) -> Correction:
    """``proposed`` (the engine's mask from all the clicks) made a local correction of
    ``previous`` (the mask before the latest clicks; None for a first click). Clicks are voxel
    indices (z, y, x) on the masks' grid."""
    proposed = np.asarray(proposed, bool)
    if previous is None or np.shape(previous) != proposed.shape or not np.any(previous):
        return Correction(proposed)
    previous = np.asarray(previous, bool)
    pos = [_voxel(p, proposed.shape) for p in positives_zyx]
    neg = [_voxel(p, proposed.shape) for p in negatives_zyx]
    if not any(previous[p] for p in pos):
        return Correction(proposed)  # another lesion, or a mask the clicks never made: start afresh
    spacing = np.asarray(spacing_zyx, float)
    ml = previous.sum() * np.prod(spacing) / 1000
    radius = (3 * ml * 1000 / (4 * np.pi)) ** (1 / 3)  # the lesion's: that of a ball of its volume
    if params.lesion_factor and ml >= params.lesion_min_ml:
        late = len(pos) + len(neg) - 1 > params.coarse_clicks
        factor = min(params.lesion_factor, params.fine_lesion_factor) if late else params.lesion_factor
        params = replace(params, min_reach_mm=max(params.min_reach_mm, factor * radius))
    if params.large_layer_radius and ml >= params.large_ml:
        params = replace(params, layer_radius=(params.layer_radius[0], params.large_layer_radius))
    out = previous.copy()
    added = [p for p in pos if not previous[p]]
    removed = [p for p in neg if previous[p]]
    for p in added:
        box, local, gap = _neighbourhood(p, previous, spacing, params, inside=False,
                                         lesion_radius=radius if proposed[p] else None)
        gain = proposed[box] & ~previous[box] & local
        if proposed[p]:
            gain = _component_at(gain, np.subtract(p, [b.start for b in box]))
        else:  # the engine ignored the click: a small ball towards the previous mask (one reaching
            # all the way, 60 mm across a missed lobe, took STS_037 from 0.71 to 0.46)
            gain = ball(box, p, spacing, min(gap, params.ignored_mm))
        out[box] |= gain
    # A negative click's layer only where the engine still holds the lesion at a positive click (an
    # engine that returned nothing, or lost the lesion, tells nothing of where the spill ends).
    holds_lesion = any(proposed[q] for q in pos)
    collapsed = bool(removed) and (proposed & previous).sum() < params.collapsed_kept * previous.sum()
    for p in removed:
        box, local, depth = _neighbourhood(p, previous, spacing, params, inside=True,
                                           lesion_radius=radius if holds_lesion else None,
                                           layer_depths=params.collapsed_reach if collapsed else None)
        q = np.subtract(p, [b.start for b in box])
        if not proposed[p]:
            loss = _component_at(previous[box] & ~proposed[box] & local, q)
        else:  # the engine ignored the click: the ball of its depth, less what is nearer to a positive click
            loss = previous[box] & ball(box, p, spacing, min(depth, params.ignored_mm)) & _nearer_to_than(
                box, p, pos, spacing)
        out[box] &= ~loss
    out = _components_holding(out, pos)
    if not out.any():  # the lesion under the positive clicks would be gone
        return Correction(previous, "the negative click would have removed the whole lesion; the mask is kept as "
                                    "it was: click nearer to the spill, or start the lesion again",
                          len(added) + len(removed))
    return Correction(out, "", len(added) + len(removed))


def _voxel(p, shape) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.clip(np.rint(np.asarray(p, float)), 0, np.asarray(shape) - 1))


def _neighbourhood(p, previous: np.ndarray, spacing, params: CorrectionParams, inside: bool,
                   lesion_radius: float | None = None, layer_depths: float | None = None):
    """The box around voxel ``p`` that its correction may touch and, on that box, the voxels its
    correction may change: the ball of the click's reach and, for a coarse error, the layer along
    the previous edge (see the module's docstring and ``CorrectionParams``; none where
    ``lesion_radius``, the previous mask's radius in mm, is None; within ``layer_depths`` times the
    click's distance to the edge of it, where that is given)."""
    r = np.ceil(params.max_reach_mm / spacing).astype(int)
    lo, hi = np.maximum(np.subtract(p, r), 0), np.minimum(np.add(p, r) + 1, previous.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    q = tuple(np.subtract(p, lo))
    region = previous[box] if inside else ~previous[box]
    distance = _distance_to_outside(region, spacing)  # depth inside, or distance to the previous mask
    d = float(distance[q])
    # ... measured between voxel centres; the mask's edge lies half a voxel short of that. A click
    # on the mask's last voxel (the robot's finishing touches, a user trimming an edge) then
    # changes that voxel alone: a reach of the whole distance took its neighbours along, true
    # voxels among them (9 of 120 corrective clicks on the pasted and LIDC lesions lowered the
    # Dice by up to 0.001 that way).
    half_voxel = 0.5 * float(np.min(spacing))
    surface = max(0.0, d - half_voxel)
    reach = float(np.clip(params.depth_factor * surface, params.min_reach_mm, params.max_reach_mm))
    if not inside:
        reach = min(reach, max(params.positive_reach_depths * d, surface))
    local = ball(box, p, spacing, reach)
    k = 0 if inside else 1
    if lesion_radius is not None and params.layer_factor[k] > 0 and d >= max(
            params.layer_min_mm, params.layer_min_voxels * float(np.min(spacing))):
        band = distance <= params.layer_factor[k] * d + half_voxel
        along = params.layer_radius[k] * lesion_radius
        if layer_depths is not None:
            along = min(along, layer_depths * d)
        local |= band & ball(box, p, spacing, min(max(along, d), params.max_reach_mm))
    return box, local, max(d, params.min_reach_mm)


def _distance_to_outside(region: np.ndarray, spacing) -> np.ndarray:
    """For each voxel of ``region``, its distance (mm) to the nearest voxel outside it (the box's
    edge counts as far: a region filling the box is given the box's half size)."""
    import SimpleITK as sitk

    if region.all():
        return np.full(region.shape, float(np.min(np.asarray(region.shape) * spacing)) / 2, np.float32)
    image = sitk.GetImageFromArray((~region).astype(np.uint8))
    image.SetSpacing(tuple(float(s) for s in spacing[::-1]))
    d = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(image, insideIsPositive=False, squaredDistance=False,
                                                            useImageSpacing=True))
    return np.maximum(d, 0)


def _nearer_to_than(box, p, positives, spacing) -> np.ndarray:
    zz, yy, xx = np.ogrid[tuple(slice(b.start, b.stop) for b in box)]

    def d2(c):
        return ((zz - c[0]) * spacing[0]) ** 2 + ((yy - c[1]) * spacing[1]) ** 2 + ((xx - c[2]) * spacing[2]) ** 2

    nearest_positive = np.min([d2(c) for c in positives], axis=0) if positives else np.inf
    return d2(p) < nearest_positive


def _component_at(mask: np.ndarray, q) -> np.ndarray:
    """The connected part of ``mask`` holding voxel ``q`` (empty if ``q`` is outside ``mask``)."""
    return _components_holding(mask, [tuple(int(v) for v in q)])


def _components_holding(mask: np.ndarray, points) -> np.ndarray:
    """The connected parts of ``mask`` that hold one of ``points`` (labelled on the mask's
    bounding box: a whole CT's grid costs a third of a second)."""
    import SimpleITK as sitk

    out = np.zeros_like(mask)
    if not mask.any():
        return out
    nz = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != k))) for k in range(3)]
    box = tuple(slice(n[0], n[-1] + 1) for n in nz)
    labels = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray(mask[box].astype(np.uint8))))
    inside = [tuple(np.subtract(p, [b.start for b in box])) for p in points
              if all(b.start <= v < b.stop for v, b in zip(p, box))]
    keep = {int(labels[q]) for q in inside} - {0}
    if keep:
        out[box] = np.isin(labels, list(keep))
    return out


# How far each engine's corrections reach. The learned engine learned from simulated corrective
# clicks: what it changes away from a click is, on balance, right. Robot, validation sarcomas
# STS_019-024, 5 clicks (median Dice after each; corrective clicks that lowered it):
#   changes anywhere (no previous mask, before):      0.724/0.738/0.784/0.797/0.781, 4 of 24, by up to 0.23
#   within the click's own distance:                   0.724/0.731/0.740/0.743/0.745, none
#   within half the lesion's radius:                   0.724/0.738/0.757/0.763/0.773, 1, by 0.002
#   within 1.5 radii:                                  0.724/0.736/0.785/0.797/0.798, 4, by up to 0.10 (clicks 4-5)
# and on the unseen STS_025-044 after 1/2/3 clicks: anywhere 0.747/0.812/0.837 (4 of 40 lower, by
# up to 0.044), half a radius 0.747/0.770/0.789 (1, 0.001), 1.5 radii 0.747/0.808/0.838 (1, 0.010).
# So: 1.5 radii for the first two corrections (coarse), half a radius after (finishing touches):
#   0.724/0.736/0.785/0.799/0.811 on STS_019-024, no corrective click lowering the Dice; on
#   STS_025-044 the same as 1.5 radii after three clicks.
# The classical engine's changes away from a click come from one intensity window for the whole
# lesion; with a reach of 15 mm they lowered the Dice of 23 of 32 corrective clicks on small
# synthetic lesions, and the learned engine's, with half the radius, 6 of 8 on two synthetic
# lung nodules of 1-3 mL (by up to 0.04): under ``lesion_min_ml`` every engine's reach is the
# click's own distance.
#
# Weights v0.5.0 (trained with off-sarcoma lesions too) answer a corrective click more boldly: with
# 1.5 radii from 8 mL on, three corrective clicks on the new validation split (STS_019-025, 032,
# 036, 039) lowered the Dice by more than 0.05 (STS_024 0.859 -> 0.735, STS_019 0.629 -> 0.541);
# 1 radius, two; half a radius, none, but 0.780 after three clicks. Lesion-sized reach only from
# 100 mL on (a smaller lesion's corrections reach the click's own distance):
# 0.724/0.798/0.817/0.832/0.841, one corrective click of 40 lowering the Dice, by 0.001.
CORRECTIONS = {
    # the classical engine's negative click drops what lies nearer to it than to every positive
    # click, a cut by distance that says nothing of where a spill ends: no layer there (with one,
    # two negative clicks on good masks of pasted liver lesions, 0.95 and 0.80, cost 0.02-0.03).
    # Its positive click on a missed rim proposes that rim's layer, hugging the edge
    # (classical._layer_at): it reaches three quarters of the lesion's radius along it (a half:
    # a pasted 43 mL necrotic liver lesion 0.269 -> 0.325 after three clicks; three quarters
    # 0.375; the whole radius 0.445, but a good mask of a faint one, 0.958, then lost 0.002).
    # From 50 mL on it reaches three radii (at most max_reach_mm): a rim-enhancing lung mass
    # whose dark centre region growing closes off (63 of 179 mL) gets its wall from a click on
    # it, where three quarters of a radius took an arc of it a click (0.524 -> 0.578 -> 0.631, the
    # engine proposing 0.981). Per corrective click from the same previous mask (auto, 5 robot
    # clicks on the benchmark's sets, 332; the Dice gained over all of them): 3.33 -> 4.86, none
    # lower than before; 1.5 or 3 radii at every size cost soft-edged liver lesions of 3-26 mL up
    # to 0.019 (their ramp beyond the half-way edge).
    "classical": CorrectionParams(layer_factor=(0.0, 1.0), layer_radius=(1.0, 0.75), large_ml=50.0,
                                  large_layer_radius=3.0),
    "learned": CorrectionParams(lesion_factor=1.5, lesion_min_ml=100.0),
}
