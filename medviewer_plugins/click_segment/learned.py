"""The learned click-to-segment engine: a MONAI UNet over (CT, positive clicks, negative clicks).

The network ships as a MONAI bundle (resources/click_segment_bundle: configs/inference.json,
configs/metadata.json, models/model.pt, docs/README.md the model card). Its network and its input
geometry (model spacing, patch size) are read through MONAI's own bundle ConfigParser; the weights
load with ``weights_only=True``. Inference: crop the volume around the positive clicks, resample
the crop to the model grid, run the network on a window around the first click and on one more
around each positive click that falls outside the windows so far (each window inside the volume:
no padding), on the first click also on a coarser grid (the bundle's "test_time_scales", see
_probability), follow a lesion that the windows cut off (see segment_learned), resample the
probability back onto the source grid and threshold it.

Two backends run the same network: ONNX Runtime on models/model.onnx (exported from model.pt by
training/export_onnx.py; onnx_backend.py), the default wherever the file and onnxruntime are
there, since it loads in a tenth of a second where torch and MONAI take seconds, and it needs no
torch (a light install); and torch on model.pt, for bundles that ship only the weights, installs
without onnxruntime, and training. ``MEDVIEWER_CLICK_BACKEND=torch`` (or ``onnx``) forces one.
The grid (model spacing, patch size, click sigma) is plain JSON in configs/inference.json, read
without MONAI.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from medviewer.core.errors import MedviewerError
from medviewer.plugins.api import modules_available
from medviewer.core.resources import resource_path
from medviewer.core.volume import Volume
from medviewer.segmentation.guidance import (
    ModelGrid, deepest_point, keep_clicked, network_input, network_windows, pad_to_multiple,
    resample_to_spacing)

DEFAULT_BUNDLE = resource_path("click_segment_bundle")
BACKENDS = ("auto", "onnx", "torch")
_CACHE: dict[tuple[str, str, str], "LoadedModel"] = {}
_LOCK = threading.Lock()


@dataclass
class LoadedModel:
    net: object  # a torch module (backend "torch") or an onnx_backend.OnnxNetwork ("onnx")
    grid: ModelGrid
    device: str
    backend: str = "torch"
    # The first click's look runs once per scale of the grid, the probabilities averaged (see
    # _probability); configs/inference.json's "test_time_scales", 1.0 alone where it has none.
    scales: tuple[float, ...] = (1.0,)

    def lesion_probability(self, x: np.ndarray) -> np.ndarray:
        """The network's lesion probability (z, y, x) for one (3, z, y, x) input."""
        if self.backend == "onnx":
            return self.net.lesion_probability(x[None])[0]
        import torch

        with torch.inference_mode():
            logits = self.net(torch.from_numpy(x)[None].to(self.device))
            return torch.softmax(logits, 1)[0, 1].float().cpu().numpy()


def bundle_available(bundle: str | os.PathLike = DEFAULT_BUNDLE) -> bool:
    b = Path(bundle)
    return (b / "configs" / "inference.json").is_file() and (
        (b / "models" / "model.pt").is_file() or (b / "models" / "model.onnx").is_file())


def choose_backend(bundle: str | os.PathLike = DEFAULT_BUNDLE, backend: str | None = None,
                   device: str = "cpu") -> str:
    """'onnx' or 'torch' for ``bundle`` on ``device``: ``backend`` (else $MEDVIEWER_CLICK_BACKEND,
    else auto). Auto takes ONNX Runtime where the bundle has model.onnx and onnxruntime is
    installed, except on a GPU that only torch can reach (onnxruntime without its CUDA provider,
    the bundle's model.pt and torch there)."""
    from medviewer_plugins.click_segment.onnx_backend import cuda_available, onnxruntime_installed

    backend = (backend or os.environ.get("MEDVIEWER_CLICK_BACKEND") or "auto").lower()
    if backend not in BACKENDS:
        raise MedviewerError(f"unknown click network backend {backend!r} ({', '.join(BACKENDS)})")
    if backend != "auto":
        return backend
    models = Path(bundle) / "models"
    if not ((models / "model.onnx").is_file() and onnxruntime_installed()):
        return "torch"
    if device.startswith("cuda") and not cuda_available() and (models / "model.pt").is_file() \
            and modules_available(["torch"]):
        return "torch"
    return "onnx"


def _key(bundle, device: str, backend: str | None) -> tuple[str, str, str]:
    return str(Path(bundle).resolve()), device, choose_backend(bundle, backend, device)


def model_loaded(bundle: str | os.PathLike = DEFAULT_BUNDLE, device: str = "cpu", backend: str | None = None) -> bool:
    """Whether :func:`load_model` has this bundle's network on ``device`` already."""
    return _key(bundle, device, backend) in _CACHE


def load_model(bundle: str | os.PathLike = DEFAULT_BUNDLE, device: str = "cpu",
               backend: str | None = None) -> LoadedModel:
    """The bundle's network with its weights (cached per bundle, device and backend)."""
    bundle = Path(bundle)
    key = _key(bundle, device, backend)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        if not bundle_available(bundle):
            raise MedviewerError("the learned engine's bundle is missing (configs/inference.json, "
                                 "models/model.onnx or model.pt); use the classical engine (--engine classical)",
                                 bundle)
        grid, scales = _model_grid(bundle)
        if key[2] == "onnx":
            model = _load_onnx(bundle, device, grid)
        else:
            model = _load_torch(bundle, device, grid)
        model.scales = scales
        _CACHE[key] = model
        return model


def _model_grid(bundle: Path) -> tuple[ModelGrid, tuple[float, ...]]:
    """The bundle's model grid and its test-time scales (the first is the grid itself)."""
    path = bundle / "configs" / "inference.json"
    try:
        config = json.loads(path.read_text())
        grid = ModelGrid(spacing=tuple(float(v) for v in config["model_spacing_xyz"]),
                         patch_zyx=tuple(int(v) for v in config["patch_size_zyx"]),
                         sigma_vox=float(config["click_sigma_vox"]))
        scales = tuple(float(v) for v in config.get("test_time_scales", [1.0]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MedviewerError(f"the click bundle's config is unreadable ({type(exc).__name__}: {exc})", path) from None
    if not scales or scales[0] != 1.0 or not all(0.5 <= v <= 2.0 for v in scales):
        raise MedviewerError(f"the click bundle's test_time_scales must start with 1.0 and lie in 0.5-2.0, "
                             f"not {list(scales)}", path)
    return grid, scales


def _load_onnx(bundle: Path, device: str, grid: ModelGrid) -> LoadedModel:
    from medviewer_plugins.click_segment.onnx_backend import OnnxNetwork, onnxruntime_installed

    path = bundle / "models" / "model.onnx"
    if not path.is_file() or not onnxruntime_installed():
        raise MedviewerError("the ONNX backend needs models/model.onnx (training/export_onnx.py) and "
                             "the onnxruntime package", bundle)
    try:
        net = OnnxNetwork(path, device)
    except Exception as exc:  # noqa: BLE001  (onnxruntime's own errors: a damaged or foreign file)
        raise MedviewerError(f"ONNX Runtime cannot load the network ({type(exc).__name__}: {exc})", path) from None
    return LoadedModel(net, grid, net.device, "onnx")


def _load_torch(bundle: Path, device: str, grid: ModelGrid) -> LoadedModel:
    if not (bundle / "models" / "model.pt").is_file():
        raise MedviewerError("the torch backend needs models/model.pt", bundle)
    try:
        import torch
        from monai.bundle import ConfigParser
    except ImportError as exc:
        raise MedviewerError(f"this bundle runs through torch and MONAI, which are not installed ({exc.name}): "
                             "pip install 'medviewer[monai]', or ship models/model.onnx (training/export_onnx.py)",
                             bundle) from None
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    net = parser.get_parsed_content("network_def")
    state = torch.load(bundle / "models" / "model.pt", map_location="cpu", weights_only=True)
    net.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
    net.to(device).eval()
    if device == "cpu":
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    return LoadedModel(net, grid, device, "torch")


def _centre_weights(shape_zyx) -> np.ndarray:
    """Separable Gaussian weights over a window (sigma: 1/8 of its size per axis, as MONAI's
    sliding-window 'gaussian' mode), peak 1 at its centre."""
    axes = [np.exp(-0.5 * ((np.arange(n) - (n - 1) / 2) / max(n / 8, 1e-3)) ** 2) for n in shape_zyx]
    return (axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]).astype(np.float32) + 1e-6


def segment_learned(volume: Volume, positives_mm, negatives_mm=(), *, bundle=DEFAULT_BUNDLE,
                    device: str = "cpu", progress=None, cancelled=None, threshold: float = 0.5,
                    follow: bool = True, backend: str | None = None) -> np.ndarray:
    """A boolean mask on ``volume``'s grid from clicks in LPS mm.

    ``follow``: a lesion larger than the network's window (192 mm across slices) is cut off at the
    window's face. Where the first result fills the last ``FOLLOW_SLAB_MM`` before a face with at
    least ``FOLLOW_MIN_ML`` and the volume goes on beyond it, the engine adds a positive point of
    its own at the middle of that cut (the deepest point of the mask there: lesion, as far as the
    network can tell) and runs once more, which gives that point a window of its own reaching past
    the face. At most two such points, one round; the user's clicks are not changed. The network
    must be sure of the lesion at such a point (``FOLLOW_MIN_PROBABILITY``): a spill that reaches
    the face is not followed. ``backend``: 'onnx', 'torch' or 'auto' (see the module's docstring)."""
    if not len(positives_mm):
        raise MedviewerError("click-to-segment needs at least one positive point")
    for p in list(positives_mm) + list(negatives_mm):
        if not volume.contains_point(p):
            raise MedviewerError(f"point {list(p)} mm lies outside the volume")
    if progress and not model_loaded(bundle, device, backend):
        progress("loading the network", 0.0)
    model = load_model(bundle, device) if backend is None else load_model(bundle, device, backend)
    run = _probability(volume, positives_mm, negatives_mm, model, progress, cancelled, 0.0, 0.5 if follow else 1.0)
    if follow:
        extra = _cut_lesion_points(volume, run, positives_mm, threshold)
        if extra:
            run = _probability(volume, list(positives_mm) + extra, negatives_mm, model, progress,
                               cancelled, 0.5, 0.5)
    crop, lower, upper, prob = run.crop, run.lower, run.upper, run.native_probability()
    mask_crop = keep_clicked(prob > threshold, [crop.patient_to_voxel(p, clip=True) for p in positives_mm])
    out = np.zeros(volume.shape, dtype=bool)
    out[lower[0]:upper[0], lower[1]:upper[1], lower[2]:upper[2]] = mask_crop
    if progress:
        progress("done", 1.0)
    return out


# A lesion reaching the window's face: the slab before the face that is looked at, and how much
# lesion it must hold for the engine to follow the lesion beyond (see segment_learned).
FOLLOW_SLAB_MM = 12.0
FOLLOW_MIN_ML = 5.0
# ... and how sure the network must be of the lesion at the middle of the cut (a thin spill that
# reaches the face sits at about 0.5; a lesion cut through, at 0.9).
FOLLOW_MIN_PROBABILITY = 0.8
FOLLOW_MAX_POINTS = 2
# The coarser looks of the first click (test-time scales, see _probability) are taken only where
# the model grid's own answer is a lesion of at least this size: on small lung lesions, which it
# outlines well, they added a rim (pasted 1-13 mL lesions: Dice down by 0.01-0.1).
COARSER_LOOK_MIN_ML = 15.0


@dataclass
class _Run:
    """One pass of the network: the native crop it covered and the probability on the model grid."""
    crop: Volume
    lower: np.ndarray
    upper: np.ndarray
    model_crop: Volume
    windows: list
    probability: np.ndarray  # on model_crop's grid
    covered: np.ndarray  # where some window looked (the probability is 0 elsewhere)

    def native_probability(self) -> np.ndarray:
        import SimpleITK as sitk

        prob = self.model_crop.with_array(self.probability)
        back = sitk.Resample(prob.to_sitk(), self.crop.to_sitk(), sitk.Transform(), sitk.sitkLinear,
                             0.0, sitk.sitkFloat32)
        return sitk.GetArrayFromImage(back)

    def clicked_mask(self, positives_mm, threshold: float = 0.5) -> np.ndarray:
        """The lesion mask's parts that hold a positive click, on the model grid."""
        grid = self.model_crop
        return keep_clicked(self.probability > threshold, [grid.patient_to_index(p)[::-1] for p in positives_mm])

    def averaged_with(self, other: "_Run") -> "_Run":
        """This run with ``other``'s probability (another grid) resampled onto its model grid and
        averaged in where both looked; where only ``other`` looked, its probability."""
        import SimpleITK as sitk

        target = self.model_crop.to_sitk()

        def onto_mine(array):
            image = other.model_crop.with_array(array.astype(np.float32)).to_sitk()
            return sitk.GetArrayFromImage(sitk.Resample(image, target, sitk.Transform(), sitk.sitkLinear,
                                                        0.0, sitk.sitkFloat32))

        theirs, seen = onto_mine(other.probability), onto_mine(other.covered) > 0.5
        both = self.covered & seen
        probability = np.where(both, (self.probability + theirs) / 2,
                               np.where(self.covered, self.probability, np.where(seen, theirs, 0.0)))
        return replace(self, probability=probability.astype(np.float32), covered=self.covered | seen)


def _probability(volume: Volume, positives_mm, negatives_mm, model: LoadedModel, progress, cancelled,
                 start: float, span: float) -> _Run:
    """The network's probability around the clicks, on the model grid (the first scale's).

    The network's first look (one positive click, no negative) runs once more for each further
    test-time scale, on a grid coarser by that factor: the same window in voxels, so it sees more
    around the click and the lesion smaller. The probabilities are averaged where both looked.
    Only where the model grid's own mask is COARSER_LOOK_MIN_ML or more (a small lesion keeps its
    answer).
    A network trained on one grid has learned a prior for a lesion's size on it; a second scale
    softens that. On the ten validation sarcomas, never trained on, scales 1.0 and 1.25 raised the
    Dice of the first click on 7 of 10 (median 0.70 -> 0.74, network alone) and left the 34
    training sarcomas as they were (mean 0.813 -> 0.811). Corrective clicks run on the model grid
    alone: the click blobs are a size on that grid, and there three-click Dice was better (the
    bundle's model card, docs/README.md)."""
    first_look = len(positives_mm) == 1 and not len(negatives_mm)
    scales = model.scales if first_look else model.scales[:1]
    share = span / len(scales)
    run = _probability_at(volume, positives_mm, negatives_mm, model, model.grid, progress, cancelled,
                          start, share)
    if len(scales) > 1 and run.clicked_mask(positives_mm).sum() * run.model_crop.voxel_volume_ml < COARSER_LOOK_MIN_ML:
        scales = scales[:1]
    for k, factor in enumerate(scales[1:], 1):
        grid = replace(model.grid, spacing=tuple(v * factor for v in model.grid.spacing))
        other = _probability_at(volume, positives_mm, negatives_mm, model, grid, progress, cancelled,
                                start + k * share, share)
        run = run.averaged_with(other)
    return run


def _probability_at(volume: Volume, positives_mm, negatives_mm, model: LoadedModel, grid: ModelGrid,
                    progress, cancelled, start: float, span: float) -> _Run:
    if progress:
        progress("cropping", start + 0.1 * span)
    # Native crop covering a window around every positive click (plus a margin for resampling).
    half_mm = (np.asarray(grid.patch_zyx[::-1]) / 2.0 + 2) * np.asarray(grid.spacing)
    clicks_zyx = np.array([volume.patient_to_index(p)[::-1] for p in positives_mm])
    reach = np.ceil(half_mm[::-1] / np.asarray(volume.spacing)[::-1]).astype(int)
    lower = np.floor(clicks_zyx.min(0)).astype(int) - reach
    upper = np.ceil(clicks_zyx.max(0)).astype(int) + reach + 1
    # Near the volume's edge the crop is shifted inwards rather than cut, so that the network's
    # window keeps the size it was trained on wherever the volume is large enough.
    shape = np.asarray(volume.shape)
    shift = np.maximum(0, -lower) - np.maximum(0, upper - shape)
    lower, upper = np.clip(lower + shift, 0, shape), np.clip(upper + shift, 0, shape)
    crop = volume.crop(lower, upper)
    # The model grid runs along L, P, S whatever the series' own order (sagittal, coronal, feet
    # first): the network learned on axial head-first arrays.
    model_crop = resample_to_spacing(crop.with_array(crop.array.astype(np.float32)), grid.spacing, axial=True)
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
            progress("inference", start + span * (0.3 + 0.5 * k / len(windows)))
        box = tuple(slice(lo, hi) for lo, hi in zip(patch_lower, patch_upper))
        patch = model_crop.array[box].astype(np.float32)
        x = network_input(patch, [p - patch_lower for p in pos], [n - patch_lower for n in neg], grid.sigma_vox)
        z, y, x_ = patch.shape
        prob = model.lesion_probability(pad_to_multiple(x))[:z, :y, :x_]
        w = _centre_weights(patch.shape)
        total[box] += w * prob
        weight[box] += w
    if progress:
        progress("resampling", start + 0.8 * span)
    probability = np.divide(total, weight, out=np.zeros_like(total), where=weight > 0)
    return _Run(crop, lower, upper, model_crop, windows, probability, weight > 0)


def _cut_lesion_points(volume: Volume, run: _Run, positives_mm, threshold: float) -> list[np.ndarray]:
    """Points (LPS mm) in the middle of where the lesion mask is cut off by a window face beyond
    which the volume goes on and no other window looks, largest cut first (see segment_learned)."""
    grid = run.model_crop
    spacing_zyx = np.asarray(grid.spacing)[::-1]
    mask = run.clicked_mask(positives_mm, threshold)
    voxel_ml = grid.voxel_volume_ml
    cuts = []
    for lo, hi in run.windows:
        for axis in range(3):
            depth = max(1, int(round(FOLLOW_SLAB_MM / spacing_zyx[axis])))
            for side, (a, b) in ((-1, (lo[axis], lo[axis] + depth)), (1, (hi[axis] - depth, hi[axis]))):
                box = [slice(l_, h_) for l_, h_ in zip(lo, hi)]
                box[axis] = slice(a, b)
                slab = np.zeros_like(mask)
                slab[tuple(box)] = mask[tuple(box)]
                amount = int(slab.sum())
                if amount * voxel_ml < FOLLOW_MIN_ML:
                    continue
                found = deepest_point(slab, spacing_zyx)
                if found is None or run.probability[tuple(found[0])] < FOLLOW_MIN_PROBABILITY:
                    continue
                point = grid.voxel_to_patient(found[0].astype(float))
                # The volume must go on beyond the face (a window at the volume's edge has no more),
                # and no other window may cover what lies there.
                beyond = found[0].astype(float)
                beyond[axis] = (b - 1 if side > 0 else a) + side * 2.0
                if not volume.contains_point(grid.voxel_to_patient(beyond)):
                    continue
                if any(np.all(beyond >= w_lo) and np.all(beyond < w_hi) for w_lo, w_hi in run.windows):
                    continue
                cuts.append((amount, point))
    cuts.sort(key=lambda c: -c[0])
    return [p for _, p in cuts[:FOLLOW_MAX_POINTS]]
