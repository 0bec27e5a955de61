"""The learned click-to-segment engine: a MONAI UNet over (CT, positive clicks, negative clicks).

The network ships as a MONAI bundle (resources/click_segment_bundle: configs/inference.json,
configs/metadata.json, models/model.pt, docs/README.md the model card). Its network and its input
geometry (model spacing, patch size) are read through MONAI's own bundle ConfigParser; the weights
load with ``weights_only=True``. Inference: crop the volume around the positive clicks, resample
the crop to the model grid, run the network on a window around the first click and on one more
around each positive click that falls outside the windows so far (each window inside the volume:
no padding), resample the probability back onto the source grid and threshold it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medviewer.core.errors import MedviewerError
from medviewer.core.resources import resource_path
from medviewer.core.volume import Volume
from medviewer.segmentation.guidance import (
    ModelGrid, keep_clicked, network_input, network_windows, pad_to_multiple, resample_to_spacing)

DEFAULT_BUNDLE = resource_path("click_segment_bundle")
_CACHE: dict[tuple[str, str], "LoadedModel"] = {}
_LOCK = threading.Lock()


@dataclass
class LoadedModel:
    net: object
    grid: ModelGrid
    device: str


def bundle_available(bundle: str | os.PathLike = DEFAULT_BUNDLE) -> bool:
    b = Path(bundle)
    return (b / "configs" / "inference.json").is_file() and (b / "models" / "model.pt").is_file()


def load_model(bundle: str | os.PathLike = DEFAULT_BUNDLE, device: str = "cpu") -> LoadedModel:
    """The bundle's network with its weights (cached per bundle and device)."""
    key = (str(Path(bundle).resolve()), device)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        import torch
        from monai.bundle import ConfigParser

        bundle = Path(bundle)
        if not bundle_available(bundle):
            raise MedviewerError("the learned engine's bundle is missing (configs/inference.json, "
                                 "models/model.pt); use the classical engine (--engine classical)", bundle)
        parser = ConfigParser()
        parser.read_config(str(bundle / "configs" / "inference.json"))
        net = parser.get_parsed_content("network_def")
        state = torch.load(bundle / "models" / "model.pt", map_location="cpu", weights_only=True)
        net.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
        net.to(device).eval()
        grid = ModelGrid(spacing=tuple(float(v) for v in parser["model_spacing_xyz"]),
                         patch_zyx=tuple(int(v) for v in parser["patch_size_zyx"]),
                         sigma_vox=float(parser["click_sigma_vox"]))
        if device == "cpu":
            torch.set_num_threads(max(1, os.cpu_count() or 1))
        _CACHE[key] = LoadedModel(net, grid, device)
        return _CACHE[key]


def _centre_weights(shape_zyx) -> np.ndarray:
    """Separable Gaussian weights over a window (sigma: 1/8 of its size per axis, as MONAI's
    sliding-window 'gaussian' mode), peak 1 at its centre."""
    axes = [np.exp(-0.5 * ((np.arange(n) - (n - 1) / 2) / max(n / 8, 1e-3)) ** 2) for n in shape_zyx]
    return (axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]).astype(np.float32) + 1e-6


def segment_learned(volume: Volume, positives_mm, negatives_mm=(), *, bundle=DEFAULT_BUNDLE,
                    device: str = "cpu", progress=None, cancelled=None, threshold: float = 0.5) -> np.ndarray:
    """A boolean mask on ``volume``'s grid from clicks in LPS mm."""
    import SimpleITK as sitk
    import torch

    if not len(positives_mm):
        raise MedviewerError("click-to-segment needs at least one positive point")
    for p in list(positives_mm) + list(negatives_mm):
        if not volume.contains_point(p):
            raise MedviewerError(f"point {list(p)} mm lies outside the volume")
    model = load_model(bundle, device)
    grid = model.grid
    if progress:
        progress("cropping", 0.1)
    # Native crop covering a window around every positive click (plus a margin for resampling).
    half_mm = (np.asarray(grid.patch_zyx[::-1]) / 2.0 + 2) * np.asarray(grid.spacing)
    clicks_zyx = np.array([volume.patient_to_index(p)[::-1] for p in positives_mm])
    reach = np.ceil(half_mm[::-1] / np.asarray(volume.spacing)[::-1]).astype(int)
    lower = np.maximum(np.floor(clicks_zyx.min(0)).astype(int) - reach, 0)
    upper = np.minimum(np.ceil(clicks_zyx.max(0)).astype(int) + reach + 1, volume.shape)
    crop = volume.crop(lower, upper)
    model_crop = resample_to_spacing(crop.with_array(crop.array.astype(np.float32)), grid.spacing)
    to_model = lambda pts: [model_crop.patient_to_index(p)[::-1] for p in pts]  # noqa: E731
    pos, neg = to_model(positives_mm), to_model(negatives_mm)
    windows = network_windows(model_crop.shape, pos, grid.patch_zyx)
    # Each window sees every click that falls in it. Where windows overlap, their probabilities
    # are averaged with Gaussian weights that favour each window's centre (as MONAI's sliding
    # window does: a window knows least near its edges); outside every window it is 0.
    total = np.zeros(model_crop.shape, np.float32)
    weight = np.zeros(model_crop.shape, np.float32)
    for k, (patch_lower, patch_upper) in enumerate(windows):
        if cancelled and cancelled():
            raise MedviewerError("segmentation cancelled")
        if progress:
            progress("inference", 0.3 + 0.5 * k / len(windows))
        box = tuple(slice(lo, hi) for lo, hi in zip(patch_lower, patch_upper))
        patch = model_crop.array[box].astype(np.float32)
        x = network_input(patch, [p - patch_lower for p in pos], [n - patch_lower for n in neg], grid.sigma_vox)
        z, y, x_ = patch.shape
        with torch.inference_mode():
            logits = model.net(torch.from_numpy(pad_to_multiple(x))[None].to(model.device))
            prob = torch.softmax(logits, 1)[0, 1, :z, :y, :x_].float().cpu().numpy()
        w = _centre_weights(patch.shape)
        total[box] += w * prob
        weight[box] += w
    if progress:
        progress("resampling", 0.8)
    prob_volume = model_crop.with_array(np.divide(total, weight, out=np.zeros_like(total), where=weight > 0))
    reference = crop.to_sitk()
    back = sitk.Resample(prob_volume.to_sitk(), reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    mask_crop = sitk.GetArrayFromImage(back) > threshold
    mask_crop = keep_clicked(mask_crop, [crop.patient_to_voxel(p, clip=True) for p in positives_mm])
    out = np.zeros(volume.shape, dtype=bool)
    out[lower[0]:upper[0], lower[1]:upper[1], lower[2]:upper[2]] = mask_crop
    if progress:
        progress("done", 1.0)
    return out
