"""Train the learned click-to-segment engine (DeepGrow/DeepEdit style) on the shared sts cases.

    python training/train_click_model.py prepare            # RTSTRUCT -> masks, resampled (once)
    python training/train_click_model.py train --hours 2    # resumes from the last checkpoint
    python training/train_click_model.py average --from-iteration N   # mean of the later snapshots
    python training/train_click_model.py evaluate           # Dice after 1-3 robot clicks (val)
    python training/train_click_model.py export-bundle      # weights -> resources/ bundle
    (the model card, resources/click_segment_bundle/docs/README.md, has the exact commands)

Input: CT patch (soft-tissue window) + positive-click map + negative-click map on a fixed model
grid (see MODEL_GRID); output: tumour / background. Clicks are simulated as the reference robot
user clicks (tools/click_eval.py): the first at a deep interior point, later ones at the deepest
point of the larger error, fed back through the network during training (DeepEdit-style).

Split (fixed, v0.5.0): validation STS_019..STS_025, 032, 036, 039 (10 cases); training the other 34.
Data: $MEDVIEWER_DATA/sts (default ../shared/data/sts). Work folder: --work (checkpoints, cache).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from medviewer.segmentation.guidance import (  # noqa: E402
    ModelGrid, corrective_click, keep_clicked, network_input, pad_to_multiple, resample_to_spacing,
    window_bounds)

# The network sees a window of at most patch_zyx voxels around a click, clipped to the volume
# (never padding: a network with instance norm learns the padding otherwise, and then fails on a
# full field of view). Training and inference use the same window: instance norm makes the
# network's features depend on what the window holds, so a larger window at inference than in
# training (64 x 96 x 96 until v0.3.0) under-segments large tumours (on the validation cases the
# training size raised STS_020 from 0.66 to 0.72 and STS_021 from 0.46 to 0.50 after one click).
MODEL_GRID = ModelGrid(spacing=(3.0, 3.0, 4.0), patch_zyx=(48, 80, 80), sigma_vox=2.0)
TRAIN_PATCH_ZYX = MODEL_GRID.patch_zyx
# Share of training windows that reach beyond the crop (see _extended_window).
EXTEND_FRACTION = 0.5
# The split of v0.5.0 (44 cases): validation STS_019-024 (the old validation set) and STS_025,
# 032, 036, 039 (four of the cases that joined later, picked before any run saw them); training
# the other 34. No validation case is ever trained on.
VAL_CASES = [f"STS_{n:03d}" for n in (19, 20, 21, 22, 23, 24, 25, 32, 36, 39)]
TRAIN_CASES = [f"STS_{n:03d}" for n in range(1, 45) if f"STS_{n:03d}" not in VAL_CASES]
# CT backgrounds without labels, for made-up lesions of other sites (synthetic_lesion's "lung"
# and "organ"): paths under --backgrounds (default $MEDVIEWER_TRAIN_BACKGROUNDS); see the model
# card for where they come from and their licences.
BACKGROUNDS = {"chest-lidc-0314": "lidc-0314", "abdomen-totalseg": "totalseg_example_ct.nii.gz"}
ROI_NAME = "GTV_Mass_CT"


def data_root() -> str:
    return os.environ.get("MEDVIEWER_DATA", "../shared/data")


# ---- data --------------------------------------------------------------------------------------
def backgrounds_root() -> str:
    return os.environ.get("MEDVIEWER_TRAIN_BACKGROUNDS", "../training-data/backgrounds")


def prepare(work: str) -> None:
    from medviewer.io import load_volume
    from medviewer.io.annotations import read_rtstruct

    cache = os.path.join(work, "cache")
    os.makedirs(cache, exist_ok=True)
    for name, rel in BACKGROUNDS.items():
        path = os.path.join(backgrounds_root(), rel)
        if not os.path.exists(path):
            print(f"{name}: {path} is absent; made-up lesions of the chest and abdomen are off", flush=True)
            continue
        image = load_volume(path)
        ct = resample_to_spacing(image.with_array(image.array.astype(np.float32)), MODEL_GRID.spacing, axial=True)
        np.savez_compressed(os.path.join(cache, f"{name}.npz"), ct=ct.array.astype(np.float32),
                            mask=np.zeros(ct.shape, bool))
        print(f"{name}: {ct.shape}", flush=True)
    for case in TRAIN_CASES + VAL_CASES:
        if os.path.exists(os.path.join(cache, f"{case}.npz")):
            continue
        folder = os.path.join(data_root(), "sts", case)
        image = load_volume(os.path.join(folder, "image"))
        labels = read_rtstruct(os.path.join(folder, "RS.dcm"), image, roi_names=ROI_NAME)
        ct = resample_to_spacing(image.with_array(image.array.astype(np.float32)), MODEL_GRID.spacing, axial=True)
        mask = resample_to_spacing(labels.with_array((labels.array > 0).astype(np.uint8)),
                                   MODEL_GRID.spacing, labels=True, axial=True)
        np.savez_compressed(os.path.join(cache, f"{case}.npz"), ct=ct.array.astype(np.float32),
                            mask=mask.array.astype(bool))
        print(f"{case}: {ct.shape} tumour {mask.array.sum() * np.prod(MODEL_GRID.spacing) / 1000:.1f} mL", flush=True)


def load_cases(work: str, names: list[str]):
    cases = []
    for name in names:
        z = np.load(os.path.join(work, "cache", f"{name}.npz"))
        cases.append({"name": name, "ct": z["ct"], "mask": z["mask"], "depth": _depth(z["mask"])})
    return cases


def _depth(mask: np.ndarray) -> np.ndarray:
    """Distance (voxels) from each tumour voxel to the tumour's edge; 0 outside."""
    import SimpleITK as sitk

    dist = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(
        sitk.GetImageFromArray(mask.astype(np.uint8)), insideIsPositive=True, squaredDistance=False,
        useImageSpacing=False))
    return np.clip(dist, 0, None)


def paste_tumour(recipient, donor, rng, tries: int = 20):
    """A synthetic case: ``donor``'s tumour (its CT voxels, edges blended) placed at a random spot
    in ``recipient``'s body; the pasted tumour is the one to segment (the recipient's own tumour,
    where it is not covered, is background: only the clicked object counts). None when the donor's
    tumour does not fit or no spot keeps it in the body, off bone and off the recipient's tumour."""
    import SimpleITK as sitk

    nz = np.nonzero(donor["mask"])
    lo = np.array([a.min() for a in nz])
    hi = np.array([a.max() for a in nz]) + 1
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    t_ct, t_mask = donor["ct"][box], donor["mask"][box]
    # The pasted tumour's density moves by up to +-15 HU: sarcomas differ from the muscle around
    # them by 10-30 HU, so this varies the contrast the network must find the edge by.
    t_ct = t_ct + np.float32(rng.uniform(-15, 15))
    for axis in (1, 2):
        if rng.random() < 0.5:
            t_ct, t_mask = np.flip(t_ct, axis), np.flip(t_mask, axis)
    # The recipient's body continues mirrored beyond its crop (as in _extended_window), so that
    # a large donor tumour finds room beside the recipient's own.
    size = np.asarray(t_mask.shape)
    pads = [(int(n), int(n)) for n in size // 2]
    canvas = np.pad(recipient["ct"], pads, mode="symmetric")
    occupied = np.pad(recipient["mask"], pads, mode="symmetric")
    shape = np.asarray(canvas.shape)
    soft = sitk.GetArrayFromImage(sitk.DiscreteGaussian(sitk.GetImageFromArray(t_mask.astype(np.float32)), 0.5))
    alpha = np.clip(soft * 1.5, 0, 1)
    alpha[t_mask] = np.maximum(alpha[t_mask], 0.9)
    for _ in range(tries):
        at = np.array([rng.integers(0, n + 1) for n in shape - size])
        place = tuple(slice(a, a + n) for a, n in zip(at, size))
        under = canvas[place]
        hu = under[t_mask]
        if (hu > -300).mean() < 0.95 or (hu > 300).mean() > 0.05:  # in the body, not on air or bone
            continue
        if occupied[place][t_mask].any():  # beside the recipient's tumour, not inside it
            continue
        ct = canvas.copy()
        ct[place] = alpha * t_ct + (1 - alpha) * under
        mask = np.zeros(canvas.shape, bool)
        mask[place] = t_mask
        return {"name": f"{donor['name']}-in-{recipient['name']}", "ct": ct.astype(np.float32),
                "mask": mask, "depth": _depth(mask)}
    return None


def _blob(volume_ml: float, shape_axes, rng, min_radius: float = 0.0):
    """The frame of a made-up lesion of ``volume_ml`` on the model grid: its radii in voxels (an
    ellipsoid of the given axis ratios), the half size and size of its box, each voxel's
    ellipsoidal radius ``r`` (1 at the surface), and ``smooth_noise(sigma)``: a unit-variance
    Gaussian-smoothed noise field of the box's size."""
    import SimpleITK as sitk

    voxel_ml = float(np.prod(MODEL_GRID.spacing)) / 1000.0
    axes = np.asarray(shape_axes, float)
    axes = axes * (volume_ml / voxel_ml / (4 / 3 * math.pi * np.prod(axes))) ** (1 / 3)  # radii in voxels
    axes = np.maximum(axes, min_radius)
    half = np.ceil(axes * 1.4).astype(int) + 2
    size = 2 * half + 1
    grid = np.stack(np.meshgrid(*[np.arange(n) - h for n, h in zip(size, half)], indexing="ij"), -1)
    r = np.sqrt(((grid / axes) ** 2).sum(-1))

    def smooth_noise(sigma):
        field = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(
            sitk.GetImageFromArray(rng.normal(0, 1, size).astype(np.float32)), float(sigma)))
        return field / max(float(field.std()), 1e-6)

    return axes, half, size, r, smooth_noise


def synthetic_lesion(recipient, rng, tries: int = 20):
    """A made-up lesion in ``recipient``'s body: a smooth random shape (an ellipsoid of 10 to
    600 mL bent by low-frequency noise) of one density (the soft tissue it lies in, moved by 8 to
    40 HU either way) carrying the recipient's own noise, with slow density variation inside and
    sometimes a darker (necrotic) core; edges blended over about a voxel. Unlike a pasted training tumour (paste_tumour)
    its shape and its contrast are new every time, so the network cannot recall the 18 training
    tumours and must find the edge by the density step. The recipient's own tumour is background.
    None when no spot keeps it in soft tissue beside the recipient's tumour."""
    import SimpleITK as sitk

    volume_ml = math.exp(rng.uniform(math.log(10), math.log(600)))
    axes, half, size, r, smooth_noise = _blob(volume_ml, rng.uniform(0.6, 1.6, 3), rng)

    shape_field = r + 0.18 * smooth_noise(max(2.0, float(axes.min()) / 2))
    soft = np.clip((1.0 - shape_field) * max(2.0, float(axes.min())) / 1.5 + 0.5, 0, 1)  # ~1 voxel ramp
    t_mask = soft > 0.5
    if t_mask.sum() < 30:
        return None
    delta = rng.uniform(8, 40) * rng.choice([-1, 1], p=[0.3, 0.7])
    inside = rng.uniform(0, 12) * smooth_noise(max(1.5, float(axes.min()) / 3))
    if rng.random() < 0.3:  # a darker core
        inside = inside - rng.uniform(15, 50) * np.clip((0.6 - r) / 0.2, 0, 1)
    pads = [(int(n), int(n)) for n in half]
    canvas = np.pad(recipient["ct"], pads, mode="symmetric")
    occupied = np.pad(recipient["mask"], pads, mode="symmetric")
    shape = np.asarray(canvas.shape)
    if np.any(size > shape):
        return None
    for _ in range(tries):
        at = np.array([rng.integers(0, n + 1) for n in shape - size])
        place = tuple(slice(a, a + n) for a, n in zip(at, size))
        under = canvas[place]
        hu = under[t_mask]
        # In soft tissue (muscle or fat), off air and off bone, beside the recipient's tumour.
        if ((hu > -150) & (hu < 150)).mean() < 0.9 or (hu > 300).mean() > 0.005:
            continue
        if occupied[place][t_mask].any():
            continue
        # A tumour displaces what it grows in: inside, one density (that of the soft tissue
        # under it, moved by delta) carrying the recipient's own noise and streaks (the CT minus
        # its smoothed self), so the underlying anatomy's edges do not show through.
        texture = under - sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(
            sitk.GetImageFromArray(under.astype(np.float32)), 1.5))
        tissue = hu[(hu > -20) & (hu < 120)]
        base = float(np.median(tissue)) if tissue.size > 20 else 50.0
        ct = canvas.copy()
        ct[place] = soft * (base + delta + inside + texture) + (1 - soft) * under
        mask = np.zeros(canvas.shape, bool)
        mask[place] = t_mask
        return {"name": f"synthetic-in-{recipient['name']}", "ct": ct.astype(np.float32),
                "mask": mask, "depth": _depth(mask)}
    return None


def _lungs(background) -> np.ndarray:
    """Air inside the body (lungs, airways): voxels under -400 HU in parts that touch no side of
    the field of view (the air around the patient does). Computed once per background."""
    if "lungs" not in background:
        from scipy import ndimage

        parts, _ = ndimage.label(background["ct"] < -400)
        outside = np.unique(np.concatenate([parts[:, [0, -1], :].ravel(), parts[:, :, [0, -1]].ravel()]))
        background["lungs"] = (parts > 0) & ~np.isin(parts, outside)
    return background["lungs"]


def site_lesion(background, rng, site: str, tries: int = 30):
    """A made-up lesion of another site in an unlabelled CT ``background`` (BACKGROUNDS):

    - ``"lung"``: a solid nodule or mass (0.3 to 150 mL, -40 to 60 HU with a noise of its own)
      in lung parenchyma, where up to a third of it may lie against the pleura, chest wall or
      mediastinum (the hard case: a lesion of the same density as what it touches);
    - ``"organ"``: a liver-metastasis-like lesion (0.5 to 150 mL) inside a homogeneous organ of
      20-200 HU, hypodense by 15-90 HU (70%) or hyperdense by 15-60 HU, sometimes with an
      enhancing rim or a darker core, so that the network learns to stop at the lesion's edge
      and not to run over the organ around it.

    The shape is a smooth random blob (as synthetic_lesion), edges blended over about a voxel.
    None when no spot fits."""
    import SimpleITK as sitk

    low, high = (0.3, 150) if site == "lung" else (0.5, 150)
    volume_ml = math.exp(rng.uniform(math.log(low), math.log(high)))
    axes, half, size, r, smooth_noise = _blob(volume_ml, rng.uniform(0.7, 1.4, 3), rng, min_radius=0.8)

    bend = 0.25 if site == "lung" else 0.12  # lung lesions are lobulated, organ lesions rounder
    shape_field = r + bend * smooth_noise(max(1.5, float(axes.min()) / 2))
    soft = np.clip((1.0 - shape_field) * max(1.5, float(axes.min())) / 1.5 + 0.5, 0, 1)
    t_mask = soft > 0.5
    if t_mask.sum() < 4:
        return None
    ct_full = background["ct"]
    shape = np.asarray(ct_full.shape)
    if np.any(size + 2 > shape):
        return None
    for _ in range(tries):
        at = np.array([rng.integers(0, n + 1) for n in shape - size])
        place = tuple(slice(a, a + n) for a, n in zip(at, size))
        under = ct_full[place]
        hu = under[t_mask]
        if site == "lung":
            lungish = _lungs(background)[place][t_mask].mean()
            if lungish < 0.67 or (hu > 300).mean() > 0.02:
                continue
            body = rng.uniform(-40, 60)
            noise = rng.normal(0, rng.uniform(8, 25), size).astype(np.float32)
            inside = body + rng.uniform(0, 15) * smooth_noise(1.5) + noise
            if rng.random() < 0.15:  # a cavity or necrosis
                inside = inside - rng.uniform(30, 120) * np.clip((0.5 - r) / 0.2, 0, 1)
        else:
            med = float(np.median(hu))
            if not 20 <= med <= 200 or (np.abs(hu - med) < 35).mean() < 0.92:
                continue
            # The organ goes on around it: a shell of two voxels homogeneous too.
            shell = (r > 1.0) & (r < 1.0 + 2.0 / max(1.0, float(axes.min())))
            if (np.abs(under[shell] - med) < 45).mean() < 0.8:
                continue
            hyper = rng.random() < 0.3
            step = rng.uniform(15, 60) if hyper else -rng.uniform(15, 90)
            texture = under - sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(
                sitk.GetImageFromArray(under.astype(np.float32)), 1.5))
            inside = med + step + rng.uniform(0, 8) * smooth_noise(1.5) + texture
            draw = rng.random()
            if draw < 0.2:  # an enhancing rim
                inside = inside + rng.uniform(40, 80) * np.clip(1 - np.abs(r - 0.85) / 0.15, 0, 1)
            elif draw < 0.4:  # a darker core
                inside = inside - rng.uniform(15, 40) * np.clip((0.55 - r) / 0.2, 0, 1)
        ct = ct_full.copy()
        ct[place] = soft * inside + (1 - soft) * under
        mask = np.zeros(ct_full.shape, bool)
        mask[place] = t_mask
        return {"name": f"{site}-lesion-in-{background['name']}", "ct": ct.astype(np.float32),
                "mask": mask, "depth": _depth(mask)}
    return None


SPACING_ZYX = MODEL_GRID.spacing[::-1]


def first_click(case, rng, deepest: bool = False) -> np.ndarray:
    """A positive click inside the tumour: the deepest voxel, or one drawn with weight depth^2."""
    depth = case["depth"]
    if deepest:
        return np.array(np.unravel_index(int(np.argmax(depth)), depth.shape), dtype=float)
    flat = depth.ravel() ** 2
    if not flat.sum() > 0:  # a lesion of a voxel or two: any of its voxels
        flat = case["mask"].ravel().astype(float)
    idx = rng.choice(flat.size, p=flat / flat.sum())
    return np.array(np.unravel_index(idx, depth.shape), dtype=float)


def sample(case, rng, augment: bool = True):
    """One training window: CT (HU), mask, first click (window coordinates)."""
    click = first_click(case, rng)
    size = np.asarray(TRAIN_PATCH_ZYX)
    if augment and rng.random() < 0.3:  # sometimes a tighter field of view
        size = np.maximum(16, np.rint(size * rng.uniform(0.5, 1.0, 3))).astype(int)
    centre = click + (rng.normal(0, [2, 4, 4]) if augment else 0)
    if augment and rng.random() < EXTEND_FRACTION:
        ct, mask, lower = _extended_window(case, centre, size)
    else:
        lower, upper = window_bounds(case["ct"].shape, centre, size)
        box = tuple(slice(lo, hi) for lo, hi in zip(lower, upper))
        ct, mask = case["ct"][box], case["mask"][box]
    click = click - lower
    if augment:
        if rng.random() < 0.7:
            ct, mask, click = _rotate_scale(ct, mask, click, rng)
        for axis in (1, 2):
            if rng.random() < 0.5:
                ct, mask = np.flip(ct, axis), np.flip(mask, axis)
                click[axis] = ct.shape[axis] - 1 - click[axis]
        # Contrast about soft tissue (40 HU), a level shift, and noise of a random strength (the
        # sts scans range from smooth to streaky).
        ct = (40 + (ct - 40) * rng.uniform(0.85, 1.2) + rng.uniform(-20, 20)
              + rng.normal(0, rng.uniform(0, 15), ct.shape).astype(np.float32))
    return np.ascontiguousarray(ct, dtype=np.float32), np.ascontiguousarray(mask), click


def _extended_window(case, centre, size):
    """A full-size window that may reach beyond the case's crop: the CT continues mirrored at the
    crop edge, the mask does not (a mirrored copy of the tumour is not the clicked tumour).

    The sts crops end about 5 cm from every tumour; a network that only ever sees those edges
    learns "the tumour fills the field of view" and spills on a full-size CT."""
    shape = np.asarray(case["ct"].shape)
    lower = np.rint(np.asarray(centre)).astype(int) - np.asarray(size) // 2
    upper = lower + np.asarray(size)
    lo_in, hi_in = np.clip(lower, 0, shape), np.clip(upper, 0, shape)
    box = tuple(slice(a, b) for a, b in zip(lo_in, hi_in))
    pads = [(int(a), int(b)) for a, b in zip(lo_in - lower, upper - hi_in)]
    ct = np.pad(case["ct"][box], pads, mode="symmetric")
    mask = np.pad(case["mask"][box], pads, mode="constant", constant_values=False)
    return ct, mask, lower


def _rotate_scale(ct, mask, click, rng):
    """Rotate in the axial plane (+-20 degrees) and scale (0.85-1.15) about the window centre."""
    import torch
    import torch.nn.functional as F

    angle = np.deg2rad(rng.uniform(-20, 20))
    scale = rng.uniform(0.85, 1.15)
    zscale = scale * rng.uniform(0.95, 1.05)
    # in = A @ (out - c) + c in (z, y, x) voxels
    a = np.array([[zscale, 0, 0],
                  [0, scale * np.cos(angle), -scale * np.sin(angle)],
                  [0, scale * np.sin(angle), scale * np.cos(angle)]])
    shape = np.asarray(ct.shape)
    c = (shape - 1) / 2.0
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij"), -1)
    src = (grid - c) @ a.T.astype(np.float32) + c
    norm = 2 * src / np.maximum(shape - 1, 1) - 1  # to [-1, 1]
    g = torch.from_numpy(norm[..., ::-1].copy())[None].float()  # grid_sample wants (x, y, z)
    ct_t = torch.from_numpy(np.ascontiguousarray(ct, dtype=np.float32))[None, None]
    mask_t = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]
    ct_r = F.grid_sample(ct_t, g, mode="bilinear", padding_mode="border", align_corners=True)[0, 0].numpy()
    mask_r = F.grid_sample(mask_t, g, mode="nearest", padding_mode="zeros", align_corners=True)[0, 0].numpy() > 0.5
    moved = np.clip(np.linalg.solve(a, click - c) + c, 0, shape - 1)
    if not mask_r[tuple(np.rint(moved).astype(int))]:  # the click must stay inside the tumour
        return ct, mask, click
    return ct_r, mask_r, moved


# ---- network -----------------------------------------------------------------------------------
# The network as a MONAI bundle config item: training builds it from here and export-bundle
# writes the same item into the bundle's inference.json, so they cannot drift apart.
NETWORK_DEF = {
    "_target_": "monai.networks.nets.UNet", "spatial_dims": 3, "in_channels": 3, "out_channels": 2,
    "channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2], "num_res_units": 2, "norm": "instance",
}


def build_network():
    from monai.bundle import ConfigParser

    return ConfigParser({"network_def": NETWORK_DEF}).get_parsed_content("network_def")


def predict_patch(net, ct_hu, positives, negatives, device="cpu", flips: bool = False) -> np.ndarray:
    """Tumour probability on one window (numpy in, numpy out); padded to the strides and back."""
    import torch

    x = network_input(ct_hu, positives, negatives, MODEL_GRID.sigma_vox)
    x = torch.from_numpy(pad_to_multiple(x))[None].to(device)
    with torch.inference_mode():
        prob = torch.softmax(net(x), 1)[:, 1]
        if flips:
            for dims in ((4,), (3,), (3, 4)):
                prob = prob + torch.softmax(net(torch.flip(x, dims)), 1)[:, 1].flip([d - 1 for d in dims])
            prob = prob / 4
    z, y, xx = ct_hu.shape
    return prob[0, :z, :y, :xx].cpu().numpy()


def robot_session(net, case, clicks: int, device="cpu", flips=False, patch=None) -> list[float]:
    """Dice after each of ``clicks`` robot clicks on one case, at model spacing."""
    positives = [first_click(case, None, deepest=True)]
    negatives = []
    lower, upper = window_bounds(case["ct"].shape, positives[0], patch or MODEL_GRID.patch_zyx)
    box = tuple(slice(lo, hi) for lo, hi in zip(lower, upper))
    ct, truth = case["ct"][box], case["mask"][box]
    outside = case["mask"].sum() - truth.sum()  # tumour beyond the window counts as missed
    scores = []
    for _ in range(clicks):
        pred = predict_patch(net, ct, [p - lower for p in positives], [n - lower for n in negatives],
                             device, flips) > 0.5
        pred = keep_clicked(pred, [p - lower for p in positives])  # as the plugin does
        inter = (pred & truth).sum()
        scores.append(float(2 * inter / max(1, pred.sum() + truth.sum() + outside)))
        nxt = corrective_click(pred, truth, SPACING_ZYX)
        if nxt is None:
            break
        (positives if nxt[1] else negatives).append(nxt[0] + lower)
    while len(scores) < clicks:
        scores.append(scores[-1])
    return scores


# ---- training ----------------------------------------------------------------------------------
def _training_case(cases, rng, paste: float, synthetic: float = 0.0, sites: float = 0.0,
                   backgrounds=()):
    """A training case, or with probability ``sites`` (--sites) a made-up lung or organ lesion in
    a CT background (site_lesion), or with probability ``synthetic`` (--synthetic) a made-up
    lesion in a training case (synthetic_lesion), or with probability ``paste`` (--paste) a
    training tumour pasted into another training case's body (paste_tumour)."""
    if sites and backgrounds and rng.random() < sites:
        for _ in range(3):
            background = backgrounds[rng.integers(len(backgrounds))]
            site = "organ" if background["name"].startswith("abdomen") or rng.random() < 0.3 else "lung"
            made = site_lesion(background, rng, site)
            if made is not None:
                return made
    case = cases[rng.integers(len(cases))]
    draw = rng.random()
    if synthetic and draw < synthetic:
        return synthetic_lesion(case, rng) or case
    if paste and draw < synthetic + paste:
        donor = cases[rng.integers(len(cases))]
        if donor is not case:
            return paste_tumour(case, donor, rng) or case
    return case


def train(work: str, hours: float, batch: int, lr: float, total_iters: int, seed: int,
          init: str | None = None, val_every: int = 250, paste: float = 0.0, synthetic: float = 0.0,
          sites: float = 0.0) -> None:
    import torch
    from monai.losses import DiceCELoss

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    rng = np.random.default_rng(seed + int(time.time()) % 1000)
    train_cases = load_cases(work, TRAIN_CASES)
    val_cases = load_cases(work, VAL_CASES)
    backgrounds = load_cases(work, [n for n in BACKGROUNDS
                                    if os.path.exists(os.path.join(work, "cache", f"{n}.npz"))])
    net = build_network()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-5)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    ckpt_path = os.path.join(work, "checkpoint.pt")
    state = {"iteration": 0, "best": -1.0, "history": []}
    if os.path.exists(ckpt_path):
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        state = json.loads(ckpt["state"])
        print(f"resumed at iteration {state['iteration']} (best val {state['best']:.3f})", flush=True)
    elif init:
        net.load_state_dict(torch.load(init, map_location="cpu", weights_only=True)["model"])
        state["init"] = os.path.basename(init)
        print(f"starting from the weights in {init}", flush=True)
    state["paste_fraction"] = paste
    state["synthetic_fraction"] = synthetic
    state["sites_fraction"] = sites
    deadline = time.time() + hours * 3600
    t0, losses = time.time(), []
    while time.time() < deadline and state["iteration"] < total_iters:
        it = state["iteration"]
        for group in opt.param_groups:  # cosine schedule over total_iters
            group["lr"] = 1e-5 + 0.5 * (lr - 1e-5) * (1 + math.cos(math.pi * it / total_iters))
        samples = [sample(_training_case(train_cases, rng, paste, synthetic, sites, backgrounds), rng)
                   for _ in range(batch)]
        pos = [[s[2]] for s in samples]
        neg = [[] for _ in samples]
        rounds = rng.choice([0, 0, 1, 1, 2])  # DeepEdit: some batches see corrective clicks
        net.eval()
        for _ in range(rounds):
            for b, (ct, mask, _) in enumerate(samples):
                pred = predict_patch(net, ct, pos[b], neg[b]) > 0.5
                nxt = corrective_click(pred, mask, SPACING_ZYX)
                if nxt is not None:
                    (pos[b] if nxt[1] else neg[b]).append(nxt[0].astype(float))
        net.train()
        opt.zero_grad()
        step_loss = 0.0
        for b, (ct, mask, _) in enumerate(samples):  # windows differ in size: one at a time
            x = torch.from_numpy(pad_to_multiple(network_input(ct, pos[b], neg[b], MODEL_GRID.sigma_vox)))
            z, y_, x_ = ct.shape
            logits = net(x[None])[:, :, :z, :y_, :x_]
            loss = loss_fn(logits, torch.from_numpy(mask[None, None].astype(np.float32))) / len(samples)
            loss.backward()
            step_loss += loss.item()
        opt.step()
        losses.append(step_loss)
        state["iteration"] = it = it + 1
        if it % 10 == 0:
            print(f"iter {it} loss {np.mean(losses[-10:]):.4f} lr {opt.param_groups[0]['lr']:.2e} "
                  f"{(time.time() - t0) / len(losses):.2f} s/iter", flush=True)
        if it % val_every == 0 or time.time() >= deadline or it >= total_iters:
            net.eval()
            scores = np.array([robot_session(net, c, 3) for c in val_cases])
            med = np.median(scores, axis=0)
            state["history"].append({"iteration": it, "val_median_dice": med.round(4).tolist()})
            print(f"== val iter {it}: median dice@1..3 {med.round(3).tolist()} per case@1 "
                  f"{scores[:, 0].round(2).tolist()}", flush=True)
            score = float(med[0] + med[2]) / 2
            if score > state["best"]:
                state["best"] = score
                _atomic_save({"model": net.state_dict()}, os.path.join(work, "best_model.pt"))
        if it % 50 == 0 or time.time() >= deadline or it >= total_iters:
            _atomic_save({"model": net.state_dict(), "optimizer": opt.state_dict(),
                          "state": json.dumps(state)}, ckpt_path)
        if it % 100 == 0:  # weight snapshots, for averaging the last ones (see average)
            os.makedirs(os.path.join(work, "snaps"), exist_ok=True)
            _atomic_save({"model": net.state_dict()}, os.path.join(work, "snaps", f"it{it:05d}.pt"))


def _atomic_save(obj, path: str) -> None:
    import torch

    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def evaluate(work: str, weights: str, flips: bool, patch=None) -> None:
    import torch

    net = build_network()
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True)["model"])
    net.eval()
    rows = []
    for case in load_cases(work, VAL_CASES):
        t = time.perf_counter()
        scores = robot_session(net, case, 3, flips=flips, patch=patch)
        rows.append(scores)
        print(f"{case['name']}  dice@1..3 {' '.join(f'{s:.3f}' for s in scores)}  "
              f"{(time.perf_counter() - t) / 3:.2f} s/click", flush=True)
    print("median", np.median(np.array(rows), axis=0).round(3).tolist())


def average(work: str, first: int, out: str) -> None:
    """Average the weights of the snapshots from iteration ``first`` on (stochastic weight
    averaging over the low-learning-rate end of the schedule: one network, steadier than any
    single checkpoint on 6 validation cases)."""
    import torch

    paths = sorted(p for p in glob.glob(os.path.join(work, "snaps", "it*.pt"))
                   if int(os.path.basename(p)[2:-3]) >= first)
    if not paths:
        raise SystemExit(f"no snapshots from iteration {first} on in {work}/snaps")
    states = [torch.load(p, map_location="cpu", weights_only=True)["model"] for p in paths]
    mean = {k: (sum(s[k].float() for s in states) / len(states)).to(states[0][k].dtype)
            if states[0][k].is_floating_point() else states[0][k] for k in states[0]}
    _atomic_save({"model": mean, "snapshots": [os.path.basename(p) for p in paths]}, out)
    print(f"averaged {len(paths)} snapshots ({os.path.basename(paths[0])} .. {os.path.basename(paths[-1])}) "
          f"into {out}")


def export_bundle(work: str, weights: str, out: str) -> None:
    """Write the trained network as a MONAI bundle (what the click-segment plugin loads)."""
    import torch

    # Stored in half precision (half the size in the repository); loading copies it into the
    # network's float32 parameters.
    state = {k: (v.half() if v.is_floating_point() else v)
             for k, v in torch.load(weights, map_location="cpu", weights_only=True)["model"].items()}
    os.makedirs(os.path.join(out, "configs"), exist_ok=True)
    os.makedirs(os.path.join(out, "models"), exist_ok=True)
    inference = {
        "imports": ["$import torch"],
        "network_def": NETWORK_DEF,
        "model_spacing_xyz": list(MODEL_GRID.spacing),
        "patch_size_zyx": list(MODEL_GRID.patch_zyx),
        "click_sigma_vox": MODEL_GRID.sigma_vox,
        "hu_window": {"center": 50, "half_width": 300},
        "input_channels": ["CT (soft-tissue window, clipped to [-250, 350] HU, scaled to [-1, 1])",
                           "positive clicks (Gaussian blobs, peak 1)", "negative clicks (Gaussian blobs, peak 1)"],
    }
    import monai

    metadata = {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20220324.json",
        "version": "0.5.0",
        "changelog": {
            "0.5.0": "fine-tuned from 0.4.0 on 34 sarcomas (new split: 10 validation cases) with made-up lung "
                     "nodules and masses and organ lesions in unlabelled chest and abdominal CT backgrounds",
            "0.4.0": "fine-tuned from 0.3.0 with contrast and noise augmentation and more synthetic lesions (half the windows)",
            "0.3.1": "inference window 48 x 80 x 80, the training window (was 64 x 96 x 96); same weights",
            "0.3.0": "fine-tuned from 0.2.0 with synthetic lesions (training tumours pasted into other cases)",
            "0.2.0": "windows inside the volume, reaching beyond the sts crops; weight averaging",
            "0.1.0": "first release",
        },
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__,
        "name": "medviewer click-to-segment (lesion)",
        "task": "Interactive 3D lesion segmentation from positive/negative clicks on CT",
        "description": "DeepGrow/DeepEdit-style UNet trained on 34 Soft-tissue-Sarcoma CTs (validation "
                       "STS_019-025, 032, 036, 039 never trained on), synthetic lesions made from them, and "
                       "made-up lung and organ lesions in two unlabelled CT backgrounds (see docs/README.md).",
        "authors": "medviewer developers",
        "copyright": "medviewer developers; training data CC BY 3.0 (TCIA Soft-tissue-Sarcoma; LIDC-IDRI-0314 "
                     "via FNNDSC/data, Apache-2.0 repository) and the TotalSegmentator example CT (Apache-2.0 "
                     "repository wasserth/TotalSegmentator)",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "hounsfield+clicks", "num_channels": 3,
                                 "spatial_shape": list(MODEL_GRID.patch_zyx), "dtype": "float32",
                                 "value_range": [-1, 1], "is_patch_data": True,
                                 "channel_def": {"0": "image", "1": "positive clicks", "2": "negative clicks"}}},
            "outputs": {"pred": {"type": "image", "format": "segmentation", "num_channels": 2,
                                 "spatial_shape": list(MODEL_GRID.patch_zyx), "dtype": "float32",
                                 "value_range": [0, 1], "is_patch_data": True,
                                 "channel_def": {"0": "background", "1": "lesion"}}},
        },
    }
    tmp = os.path.join(out, "models", "model.pt.tmp")
    torch.save(state, tmp)
    os.replace(tmp, os.path.join(out, "models", "model.pt"))
    for name, data in (("inference.json", inference), ("metadata.json", metadata)):
        with open(os.path.join(out, "configs", name), "w") as fh:
            json.dump(data, fh, indent=2)
    ckpt = os.path.join(work, "checkpoint.pt")
    if os.path.exists(ckpt):
        history = json.loads(torch.load(ckpt, map_location="cpu", weights_only=True)["state"])
        os.makedirs(os.path.join(out, "docs"), exist_ok=True)
        with open(os.path.join(out, "docs", "training_history.json"), "w") as fh:
            json.dump(history, fh, indent=1)
    print(f"wrote the bundle to {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=["prepare", "train", "evaluate", "average", "export-bundle"])
    ap.add_argument("--out", default="resources/click_segment_bundle", help="export-bundle: where")
    ap.add_argument("--work", default=os.environ.get("MEDVIEWER_TRAIN_WORK", "training-work"))
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--iterations", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--from-iteration", type=int, default=0, help="average: first snapshot to use")
    ap.add_argument("--init", default=None, help="train: start from these weights (a fresh --work)")
    ap.add_argument("--val-every", type=int, default=250)
    ap.add_argument("--paste", type=float, default=0.0,
                    help="train: share of windows around a training tumour pasted into another case")
    ap.add_argument("--synthetic", type=float, default=0.0,
                    help="train: share of windows around a made-up lesion (synthetic_lesion)")
    ap.add_argument("--sites", type=float, default=0.0,
                    help="train: share of windows with a made-up lung or organ lesion in a CT background")
    ap.add_argument("--patch", default=None, help="evaluate: window z,y,x (default: the model grid's)")
    ap.add_argument("--flips", action="store_true", help="test-time flips in evaluate")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    if a.step == "prepare":
        prepare(a.work)
    elif a.step == "train":
        train(a.work, a.hours, a.batch, a.lr, a.iterations, a.seed, a.init, a.val_every, a.paste, a.synthetic,
              a.sites)
    elif a.step == "average":
        average(a.work, a.from_iteration, a.weights or os.path.join(a.work, "averaged_model.pt"))
    elif a.step == "export-bundle":
        export_bundle(a.work, a.weights or os.path.join(a.work, "best_model.pt"), a.out)
    else:
        patch = tuple(int(v) for v in a.patch.split(",")) if a.patch else None
        evaluate(a.work, a.weights or os.path.join(a.work, "best_model.pt"), a.flips, patch)


if __name__ == "__main__":
    main()
