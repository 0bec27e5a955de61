"""The learned click-to-segment engine: a MONAI UNet over (CT, positive clicks, negative clicks).

The network ships as a MONAI bundle (resources/click_segment_bundle: configs/inference.json,
configs/metadata.json, models/model.pt, docs/README.md the model card). Its network and its input
geometry (model spacing, patch size) are read through MONAI's own bundle ConfigParser; the weights
load with ``weights_only=True``. Inference: crop the volume around the first positive click,
resample the crop to the model grid, run the network on one window around that click (inside the
volume: no padding), resample the probability back onto the source grid and threshold it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume
from medviewer.segmentation.guidance import (
    ModelGrid, keep_clicked, network_input, pad_to_multiple, resample_to_spacing, window_bounds)

DEFAULT_BUNDLE = Path(__file__).resolve().parents[2] / "resources" / "click_segment_bundle"
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
    # Native crop covering the patch around the first click (plus a margin for resampling).
    half_mm = (np.asarray(grid.patch_zyx[::-1]) / 2.0 + 2) * np.asarray(grid.spacing)
    centre_zyx = volume.patient_to_index(positives_mm[0])[::-1]
    reach = np.ceil(half_mm[::-1] / np.asarray(volume.spacing)[::-1]).astype(int)
    lower = np.maximum(np.floor(centre_zyx).astype(int) - reach, 0)
    upper = np.minimum(np.ceil(centre_zyx).astype(int) + reach + 1, volume.shape)
    crop = volume.crop(lower, upper)
    model_crop = resample_to_spacing(crop.with_array(crop.array.astype(np.float32)), grid.spacing)
    to_model = lambda pts: [model_crop.patient_to_index(p)[::-1] for p in pts]  # noqa: E731
    pos, neg = to_model(positives_mm), to_model(negatives_mm)
    # The network's window: up to the bundle's patch size around the first click, inside the
    # volume (it was trained on real voxels only), padded to its strides and cropped back.
    patch_lower, patch_upper = window_bounds(model_crop.shape, pos[0], grid.patch_zyx)
    box = tuple(slice(lo, hi) for lo, hi in zip(patch_lower, patch_upper))
    patch = model_crop.array[box].astype(np.float32)
    x = network_input(patch, [p - patch_lower for p in pos], [n - patch_lower for n in neg], grid.sigma_vox)
    if cancelled and cancelled():
        raise MedviewerError("segmentation cancelled")
    if progress:
        progress("inference", 0.3)
    z, y, x_ = patch.shape
    with torch.inference_mode():
        logits = model.net(torch.from_numpy(pad_to_multiple(x))[None].to(model.device))
        prob = torch.softmax(logits, 1)[0, 1, :z, :y, :x_].float().cpu().numpy()
    if progress:
        progress("resampling", 0.8)
    prob_volume = Volume(prob, spacing=grid.spacing, origin=tuple(model_crop.voxel_to_patient(patch_lower)),
                         direction=model_crop.direction)
    reference = crop.to_sitk()
    back = sitk.Resample(prob_volume.to_sitk(), reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    mask_crop = sitk.GetArrayFromImage(back) > threshold
    mask_crop = keep_clicked(mask_crop, [crop.patient_to_voxel(p, clip=True) for p in positives_mm])
    out = np.zeros(volume.shape, dtype=bool)
    out[lower[0]:upper[0], lower[1]:upper[1], lower[2]:upper[2]] = mask_crop
    if progress:
        progress("done", 1.0)
    return out
