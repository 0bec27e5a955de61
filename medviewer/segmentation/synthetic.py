"""Synthetic lesions pasted into real CT: an off-sarcoma benchmark for click-to-segment.

A radiologist clicks on lung nodules, liver metastases and lymph nodes far more often than on
sarcomas. Real annotated ones of these are not in ``../shared/data``, so this module makes them:
a random smooth shape (an ellipsoid bent by a smooth random field) of a chosen size, with a
density pattern (hypo- or hyperdense, rim-enhancing, a necrotic core, faint) set against the
tissue it is pasted into, carrying noise of its own (the background's strength, its own
texture), blended over a partial-volume edge of about a voxel, in one of two kinds of place:

* ``chest``: in the lung parenchyma, either free in it or against the pleura or mediastinum
  (its edge pressed into the soft tissue beside the lung);
* ``abdomen``: inside an organ of similar density (the largest homogeneous soft-tissue region
  of the series: the liver in Lung-PET-CT-Dx A0001's lower slices and in the compressed Siemens
  series), wholly inside it; or (``abdomen-edge``) at its edge: the centre half a radius to a
  radius (and 2 mm) deep, the lesion bulging out of the organ by up to half its radius, so that
  the tissue beyond the organ lies next to it.

Everything is seeded (``numpy.random.default_rng(seed)``) and made on the fly: no data is
written or committed. :func:`make_case` returns the image (a crop of the background around the
lesion, with the lesion pasted) and the lesion's mask, the truth to score against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medviewer.core.volume import Volume
from medviewer.segmentation.masks import fill_slices

PATTERNS = ("hypodense", "hyperdense", "rim", "necrotic")
# A faint lesion: in an organ, 15 to 35 HU darker or brighter than it (a liver metastasis of low
# contrast, near the noise); in the lung, ground glass (-700 to -350 HU). Not among PATTERNS,
# which the benchmark's synthetic set takes in turn: its own set (``--sets faint``).
FAINT = "faint"
# A soft-edged lesion in an organ, as a metastasis often is: 20 to 60 HU darker (70%) or brighter
# than the organ, its edge a ramp 4 to 8 mm wide (the truth: half-way up it), its inside uneven
# by 10 to 25 HU. Its own set too (``--sets soft``).
SOFT = "soft"


@dataclass(frozen=True)
class SyntheticLesion:
    name: str
    image: Volume  # the background crop with the lesion pasted in (HU)
    truth: np.ndarray  # bool, the lesion on image's grid
    site: str  # "chest-lung", "chest-pleura", "abdomen" or "abdomen-edge"
    pattern: str
    volume_ml: float


def _smooth_field(shape, sigma_vox, rng) -> np.ndarray:
    """A smooth Gaussian random field, zero mean and unit standard deviation."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(rng.standard_normal(shape).astype(np.float32))
    field = sitk.GetArrayFromImage(sitk.DiscreteGaussian(image, [float(s) ** 2 for s in sigma_vox[::-1]]))
    if not np.isfinite(field).all():
        # ITK's discrete Gaussian returns NaN once its kernel far outgrows its largest width (a
        # sigma of 25 voxels or more: a lesion of 350 mL on a 0.8 mm grid); the recursive one
        # has no such limit (the smaller fields, which it would change a little, stay as they were)
        field = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(image, [float(s) for s in sigma_vox[::-1]]))
    return (field - field.mean()) / max(float(field.std()), 1e-6)


def _distance(mask: np.ndarray, spacing_zyx) -> np.ndarray:
    """Signed distance (mm) to ``mask``'s edge, positive inside."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))
    return sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(image, insideIsPositive=True, squaredDistance=False,
                                                               useImageSpacing=True))


def _shape(radius_mm: float, spacing_zyx, rng) -> tuple[np.ndarray, np.ndarray]:
    """A lesion shape on a box around its centre: (f, offsets) where f < 0 inside, in mm, an
    ellipsoid of about ``radius_mm`` (axes 0.75-1.3 of it, randomly turned) bent by a smooth field."""
    half = np.ceil(1.6 * radius_mm / spacing_zyx).astype(int) + 2
    zz, yy, xx = np.meshgrid(*(np.arange(-h, h + 1) * s for h, s in zip(half, spacing_zyx)), indexing="ij")
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    axes = radius_mm * rng.uniform(0.75, 1.3, 3)
    axes *= radius_mm / np.prod(axes) ** (1 / 3)  # keep the volume of the sphere of radius_mm
    p = np.stack([zz, yy, xx], -1) @ q
    r = np.sqrt(((p / axes) ** 2).sum(-1))
    bend = _smooth_field(r.shape, np.maximum(1.0, 0.5 * radius_mm / spacing_zyx), rng)
    f = (r - 1 + rng.uniform(0.05, 0.18) * bend) * radius_mm  # about mm from the edge
    return f, half


def _noise_sigma(values: np.ndarray) -> float:
    """The background's noise: the spread of its voxels' differences from their neighbours."""
    d = np.diff(values, axis=-1).ravel()
    return float(np.clip(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2), 5.0, 60.0))


def _densities(pattern: str, background_hu: float, site: str, rng) -> tuple[float, float, float]:
    """(wall HU, core HU, rim thickness share): the lesion's density at its edge and inside."""
    if pattern == SOFT:
        value = background_hu + (-1.0 if rng.uniform() < 0.7 else 1.0) * rng.uniform(20, 60)
        return value, value, 0.0
    if pattern == FAINT:
        if site.startswith("chest"):
            value = rng.uniform(-700, -350)
            return value, value, 0.0
        value = background_hu + rng.choice((-1.0, 1.0)) * rng.uniform(15, 35)
        return value, value, 0.0
    if site.startswith("chest"):  # soft tissue in air: every pattern stands out
        base = rng.uniform(10, 60)
        return {"hypodense": (base, base, 0.0), "hyperdense": (base + rng.uniform(40, 100),) * 2 + (0.0,),
                "rim": (base + rng.uniform(40, 80), base - rng.uniform(10, 30), 0.35),
                "necrotic": (base + 10, base - rng.uniform(20, 40), 0.45)}[pattern]
    step = rng.uniform(35, 80)
    return {"hypodense": (background_hu - step, background_hu - step, 0.0),
            "hyperdense": (background_hu + step, background_hu + step, 0.0),
            "rim": (background_hu + rng.uniform(40, 70), background_hu - step, 0.35),
            "necrotic": (background_hu - rng.uniform(15, 30), background_hu - step - 20, 0.45)}[pattern]


_SITE_CACHE: dict = {}


def _site_distance(volume: Volume, site: str) -> np.ndarray:
    """Signed distance (mm) to the edge of the lungs (``chest*``) or of the largest homogeneous
    soft-tissue region (``abdomen``), cached per volume (a full CT's distance map takes seconds)."""
    import SimpleITK as sitk

    key = (id(volume), site.startswith("chest"))
    if key in _SITE_CACHE:
        return _SITE_CACHE[key][1]
    spacing = np.asarray(volume.spacing)[::-1]
    smooth = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(
        sitk.Cast(volume.to_sitk(), sitk.sitkFloat32), 2.0))
    if site.startswith("chest"):  # air inside the body: the air around it touches the image's sides
        labels = sitk.GetArrayFromImage(sitk.ConnectedComponent(sitk.GetImageFromArray((smooth < -600).astype(np.uint8))))
        outside = set(np.unique(np.concatenate([labels[:, [0, -1], :].ravel(), labels[:, :, [0, -1]].ravel()])))
        region = fill_slices((labels > 0) & ~np.isin(labels, list(outside)))  # vessels count as lung
    else:
        organ = (smooth > 20) & (smooth < 200)
        labels = sitk.GetArrayFromImage(sitk.RelabelComponent(sitk.ConnectedComponent(
            sitk.GetImageFromArray(organ.astype(np.uint8))), sortByObjectSize=True))
        median = float(np.median(smooth[labels == 1]))
        region = (labels == 1) & (np.abs(smooth - median) < 25)
    _SITE_CACHE[key] = (volume, _distance(region, spacing), region)  # the volume kept: its id stays its own
    return _SITE_CACHE[key][1]


def _places(volume: Volume, site: str, radius_mm: float) -> np.ndarray:
    """Candidate lesion centres (voxel indices) for ``site``: free in the lung (``chest-lung``),
    pressed against its edge (``chest-pleura``), wholly inside the organ (``abdomen``), or inside
    it near its edge (``abdomen-edge``)."""
    d = _site_distance(volume, site)
    if site == "chest-lung":
        ok = (d >= radius_mm + 4) & (d <= radius_mm + 25)
    elif site == "chest-pleura":
        ok = (d >= 0.3 * radius_mm) & (d <= 0.6 * radius_mm)
    elif site == "abdomen-edge":
        ok = (d >= 0.5 * radius_mm) & (d <= radius_mm + 2)
    else:
        ok = d >= radius_mm + 4
    # never within the lesion's reach of the image's faces across slices
    margin = int(np.ceil((radius_mm + 2) / volume.spacing[2]))
    ok[:margin] = False
    ok[len(ok) - margin:] = False
    return np.argwhere(ok)


def make_case(background: Volume, site: str, pattern: str, volume_ml: float, seed: int,
              crop_mm: float = 220.0) -> SyntheticLesion | None:
    """One synthetic lesion in ``background`` (None where the site has no room for it)."""
    rng = np.random.default_rng(seed)
    spacing = np.asarray(background.spacing)[::-1]
    radius = (3 * volume_ml * 1000 / (4 * np.pi)) ** (1 / 3)
    places = _places(background, site, radius)
    if not len(places):
        return None
    centre = places[rng.integers(len(places))]
    half = np.ceil(crop_mm / 2 / spacing).astype(int)
    half[0] = background.shape[0]  # every slice: an engine may look along the whole series
    image = background.crop(centre - half, centre + half + 1)
    lower = np.clip(centre - half, 0, background.shape)
    centre = centre - lower
    f, h = _shape(radius, spacing, rng)
    box = tuple(slice(c - k, c + k + 1) for c, k in zip(centre, h))
    # the shape's box clipped to the image (a lesion at the image's face loses what lies beyond)
    cut = tuple(slice(max(0, -b.start), f.shape[a] - max(0, b.stop - image.shape[a])) for a, b in enumerate(box))
    box = tuple(slice(max(0, b.start), min(b.stop, image.shape[a])) for a, b in enumerate(box))
    f = f[cut]
    array = image.array.astype(np.float32)
    local = array[box]
    background_hu = float(np.median(local[f < 0]))
    wall, core, rim = _densities(pattern, background_hu, site, rng)
    depth = np.clip(-f / radius, 0, 1)  # 0 at the edge, 1 at the centre
    value = np.where(depth < rim, wall, core) if rim else np.full(f.shape, wall, np.float32)
    if rim:  # a soft step between the wall and the core
        t = np.clip((depth - rim) / 0.15 + 0.5, 0, 1)
        value = wall + (core - wall) * t
    sigma = _noise_sigma(array[box]) * rng.uniform(0.8, 1.3)
    grain = _smooth_field(f.shape, np.full(3, rng.uniform(0.5, 1.0)), rng)
    value = value + sigma * grain + rng.uniform(3, 10) * _smooth_field(f.shape, np.maximum(1, 4 / spacing), rng)
    alpha = np.clip(0.5 - f / max(0.8, float(spacing[1:].mean())), 0, 1)  # partial volume over about a voxel
    if pattern == SOFT:  # (drawn after the rest: the other patterns' seeds give the lesions they gave)
        alpha = np.clip(0.5 - f / rng.uniform(4.0, 8.0), 0, 1)
        value = value + rng.uniform(10, 25) * _smooth_field(f.shape, np.maximum(1, 6 / spacing), rng)
    if site == "chest-pleura":  # pressed against the wall: only the air gives way to it
        lung = _SITE_CACHE[(id(background), True)][2][lower[0]:, lower[1]:, lower[2]:][box]
        alpha = alpha * lung
    array[box] = local * (1 - alpha) + value * alpha
    truth = np.zeros(image.shape, bool)
    truth[box] = alpha >= 0.5
    out = image.with_array(np.rint(array).astype(np.int16))
    ml = float(truth.sum() * image.voxel_volume_ml)
    return SyntheticLesion(f"{site}-{pattern}-{volume_ml:g}mL-s{seed}", out, truth, site, pattern, ml)
