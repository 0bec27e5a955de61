"""Click engines from MONAI Model Zoo bundles: DeepEdit and VISTA3D, run as their authors run them.

A bundle folder picks the engine (the plugin's ``bundle`` parameter); ``model_store.bundle_kind``
tells the layouts apart from the inference config alone (nothing executed, no torch):

* DeepEdit (spleen_deepedit_annotation): the bundle's ``preprocessing`` (orientation, intensity
  window, its click transforms from ``scripts/transforms.py`` and MONAI's DeepEdit guidance
  transforms: the clicks become guidance channels beside the image, the whole image resized to the
  bundle's ``spatial_size``), its ``inferer`` and ``network_def``, its ``postprocessing``
  (softmax, ``Invertd`` back to the source grid, argmax). Positive clicks are the first
  foreground label's points, negative clicks the ``background`` label's, in voxel indices of the
  image as loaded (what MONAI Label sends).
* VISTA3D: the bundle's ``preprocessing`` (1.5 mm spacing, foreground crop, its intensity window,
  RAS), its ``Vista3dInferer`` (``scripts/inferer.py``) with the point-centred window
  (``use_point_window``: the network sees one ``patch_size`` window around each click, never the
  whole volume), point labels 1 (inside) and 0 (outside), and its ``postprocessing``
  (``VistaPostTransformd`` keeps the parts that hold a positive point; ``Invertd`` back to the
  source grid; voxels no window saw become 255). Only a box around the clicks, as large as the
  window reaches, is handed to the preprocessing, so that a click costs the same on any scan.
  Class prompts (``segment_classes``) run its automatic head over the whole volume.

The file loader and writer of each config are left out (the volume goes in as a MetaTensor with
its RAS affine, as MONAI's ITK reader gives it); everything else is the config's own. Weights load
once per bundle and device with ``weights_only=True``. A bundle runs code: only trusted folders
(:mod:`medviewer.plugins.trust`) are run. Nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medviewer.core.volume import Volume
from medviewer.plugins.api import PluginError
from medviewer.plugins.model_store import bundle_kind, config_file

KINDS = ("deepedit", "vista3d")
LOADERS = ("LoadImage", "LoadImaged", "LoadImageD", "LoadImageDict")
SAVERS = ("SaveImage", "SaveImaged", "SaveImageD", "SaveImageDict")
OUTSIDE_WINDOW = 255  # VISTA3D's value for voxels no window saw (its postprocessing's nan_to_num)
_CACHE: dict[tuple[str, str], "BundleEngine"] = {}
_LOCK = threading.Lock()


# ---- the folder (light: no torch) -----------------------------------------------------------------
def check_bundle(folder: str | os.PathLike) -> tuple[str, str]:
    """(canonical folder, kind) of a DeepEdit or VISTA3D bundle; a one-line error otherwise."""
    root = os.path.realpath(os.path.abspath(os.path.expanduser(os.fspath(folder))))
    if not os.path.isdir(root):
        raise PluginError("the click engine's bundle folder does not exist", root)
    kind = bundle_kind(root)
    if kind not in KINDS:
        what = "no configs/inference.json or .yaml" if config_file(root) is None else "neither DeepEdit nor VISTA3D"
        raise PluginError(f"not a click-engine bundle ({what})", root)
    if not os.path.isfile(os.path.join(root, "models", "model.pt")):
        raise PluginError("the bundle has no weights (models/model.pt)", root)
    return root, kind


# ---- loading (torch and MONAI from here on) -----------------------------------------------------------
@dataclass
class BundleEngine:
    root: str
    kind: str
    device: str
    parser: object
    network: object
    preprocessing: object
    inferer: object
    postprocessing: object
    amp: bool


@contextmanager
def _bundle_scripts(root: str):
    """The bundle's own ``scripts`` package importable (every bundle names it ``scripts``: one
    loaded from another bundle is put aside first) while its config is parsed."""
    for name in [m for m in sys.modules if m == "scripts" or m.startswith("scripts.")]:
        origin = getattr(sys.modules[name], "__file__", None) or ""
        if not os.path.realpath(origin).startswith(root + os.sep):
            del sys.modules[name]
    sys.path.insert(0, root)
    try:
        yield
    finally:
        if root in sys.path:
            sys.path.remove(root)


def _disable_io(node) -> None:
    """Mark every file loader and writer in the raw config ``_disabled_`` (MONAI's own switch:
    the parser leaves them out of their Compose), wherever the config lists them."""
    if isinstance(node, dict):
        target = str(node.get("_target_", "")).rsplit(".", 1)[-1]
        if target in LOADERS or target in SAVERS:
            node["_disabled_"] = True
        children = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return
    for child in children:
        _disable_io(child)


def _invert_with(post, pre) -> None:
    """Point the postprocessing's ``Invertd`` at the preprocessing object that ran. VISTA3D's
    config hands it ``copy.deepcopy(@preprocessing)``: the copy's transforms are other objects
    than those recorded in the image's applied operations, which MONAI (1.6, 'fork' start method)
    refuses ("getting the most recently applied invertible transform ... != ..."). The copy holds
    the same transforms with the same settings, so inverting with the original is what was meant."""
    for t in getattr(post, "transforms", ()):
        if type(t).__name__ == "Invertd" and type(t.transform).__name__ == type(pre).__name__:
            t.transform = pre


def root_cause(exc: BaseException) -> str:
    """The innermost exception of a chain, as ``Type: message`` (MONAI wraps a failing
    transform's error in "applying transform ...", which tells a user nothing)."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    return f"{type(exc).__name__}: {exc}"


def _parsed(parser, key: str, root: str):
    try:
        return parser.get_parsed_content(key)
    except Exception as exc:  # noqa: BLE001  (the innermost cause is what the user can act on)
        raise PluginError(f"cannot build the bundle's {key} ({root_cause(exc)})", root) from None


def _load_weights(network, root: str) -> None:
    import torch

    path = os.path.join(root, "models", "model.pt")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise PluginError(f"cannot load the weights safely ({type(exc).__name__}: {exc})", path) from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise PluginError(f"the weights do not fit the bundle's network ({str(exc).splitlines()[0]})", path) from None


def load_engine(folder: str | os.PathLike, device: str = "cpu") -> BundleEngine:
    """The bundle's network (weights loaded), pre- and postprocessing and inferer, cached per
    bundle folder and device. Refuses a folder the user has not trusted."""
    from medviewer.plugins import trust

    root, kind = check_bundle(folder)
    if not trust.is_trusted(root):
        raise PluginError(trust.untrusted_message(root))
    with _LOCK:
        if (root, device) in _CACHE:
            return _CACHE[(root, device)]
        import torch
        from monai.bundle import ConfigParser

        with _bundle_scripts(root):
            parser = ConfigParser()
            parser.read_config(str(config_file(root)))
            if os.path.isfile(os.path.join(root, "configs", "metadata.json")):
                parser.read_meta(os.path.join(root, "configs", "metadata.json"))
            parser["bundle_root"] = root
            parser["device"] = torch.device(device)
            _disable_io(parser.config)
            network = _parsed(parser, "network_def", root)
            _load_weights(network, root)
            network.to(device).eval()
            pre = _parsed(parser, "preprocessing", root)
            inferer = _parsed(parser, "inferer", root)
            post = _parsed(parser, "postprocessing", root)
            _invert_with(post, pre)
        evaluator = parser.get("evaluator")  # the raw config: is the bundle's own run mixed precision?
        amp = device.startswith("cuda") and isinstance(evaluator, dict) and bool(evaluator.get("amp", False))
        _CACHE[(root, device)] = BundleEngine(root, kind, device, parser, network, pre, inferer, post, amp)
        return _CACHE[(root, device)]


def engine_loaded(folder: str | os.PathLike, device: str = "cpu") -> bool:
    return (os.path.realpath(os.path.abspath(os.fspath(folder))), device) in _CACHE


# ---- running ----------------------------------------------------------------------------------------
def _as_metatensor(volume: Volume):
    """The volume as MONAI's ITK reader hands it to a bundle (the monai-bundle plugin's converter)."""
    from medviewer_plugins.monai_bundle.impl import volume_to_metatensor

    return volume_to_metatensor(volume, channel_first=False)


def _ras_index(image, points_mm) -> np.ndarray:
    """LPS mm -> continuous voxel indices of ``image`` (a MetaTensor with its current RAS affine)."""
    ras = np.c_[np.asarray(points_mm, float).reshape(-1, 3) * [-1, -1, 1], np.ones(len(points_mm))]
    return (np.linalg.inv(np.asarray(image.affine, dtype=float)) @ ras.T).T[:, :3]


def _infer(engine: BundleEngine, *args, **kwargs):
    import torch

    with torch.no_grad(), torch.autocast("cuda", enabled=engine.amp):  # not inference_mode: the
        # postprocessing changes the prediction in place (VistaPostTransformd)
        return engine.inferer(*args, **kwargs)


def _postprocess(engine: BundleEngine, item: dict) -> np.ndarray:
    """The bundle's postprocessing on one item; its ``pred`` as a (z, y, x) array on the grid the
    image came in on."""
    out = engine.postprocessing(item)["pred"]
    return np.asarray(out.detach().cpu().numpy())[0].transpose(2, 1, 0)


def _prediction_like(pred, image):
    from monai.data import MetaTensor

    return MetaTensor(pred.float().cpu(), affine=image.affine.cpu(), meta=dict(image.meta),
                      applied_operations=list(image.applied_operations))


def segment_deepedit(engine: BundleEngine, volume: Volume, positives_mm, negatives_mm,
                     progress=None) -> np.ndarray:
    """DeepEdit on the whole volume (as the bundle is meant: the image resized to its
    ``spatial_size``), the clicks as its guidance; a boolean (z, y, x) mask of the clicked label."""
    names = dict(engine.parser["label_names"])
    background = next((n for n, v in names.items() if int(v) == 0), "background")
    target = min((n for n in names if n != background), key=lambda n: int(names[n]))

    def to_index(points_mm) -> list:  # voxel (x, y, z) indices of the image as loaded
        return np.rint(volume.patient_to_index(np.asarray(points_mm, float).reshape(-1, 3))).astype(int).tolist()

    data = {"image": _as_metatensor(volume), target: to_index(positives_mm),
            background: to_index(negatives_mm) if len(negatives_mm) else []}
    if progress:
        progress("preprocessing", 0.2)
    data = engine.preprocessing(data)
    image = data["image"]
    if progress:
        progress("inference", 0.4)
    pred = _infer(engine, image[None].to(engine.device), engine.network)[0]
    if progress:
        progress("postprocessing", 0.8)
    labels = _postprocess(engine, {"image": image.cpu(), "pred": _prediction_like(pred, image)})
    return labels == int(names[target])


def vista_box(volume: Volume, points_mm, engine: BundleEngine) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) (z, y, x) bounds of the box that VISTA3D's windows around ``points_mm`` can
    reach (half a window each way at the bundle's spacing, plus 10 mm for resampling)."""
    window_mm = np.asarray(engine.parser["patch_size"], float) * np.asarray(engine.parser["resample_spacing"], float)
    idx = volume.patient_to_index(np.asarray(points_mm, float).reshape(-1, 3))
    reach = (window_mm.max() / 2 + 10.0) / np.asarray(volume.spacing)  # per x, y, z index
    lower = np.floor(idx.min(0) - reach).astype(int)[::-1]
    upper = np.ceil(idx.max(0) + reach).astype(int)[::-1] + 1
    return np.clip(lower, 0, volume.shape), np.clip(upper, 0, volume.shape)


def segment_vista3d(engine: BundleEngine, volume: Volume, positives_mm, negatives_mm,
                    progress=None) -> np.ndarray:
    """VISTA3D from point prompts (label 1 inside, 0 outside), its point-centred window; a
    boolean (z, y, x) mask on ``volume``'s grid."""
    import torch

    points = np.concatenate([np.asarray(positives_mm, float).reshape(-1, 3),
                             np.asarray(negatives_mm, float).reshape(-1, 3)])
    point_labels = [1] * len(positives_mm) + [0] * len(negatives_mm)
    lower, upper = vista_box(volume, points, engine)
    crop = volume.crop(lower, upper)
    if progress:
        progress("preprocessing", 0.2)
    image = engine.preprocessing({"image": _as_metatensor(crop)})["image"]
    coords = torch.as_tensor(_ras_index(image, points)[None], dtype=torch.float32, device=image.device)
    labels_t = torch.as_tensor([point_labels], device=image.device)
    if progress:
        progress("inference", 0.4)
    pred = _infer(engine, image[None], engine.network, coords, labels_t, None)[0]
    if progress:
        progress("postprocessing", 0.8)
    item = {"image": image, "pred": _prediction_like(pred, image).to(image.device), "label_prompt": None,
            "points": coords, "point_labels": labels_t}
    labels = _postprocess(engine, item)
    out = np.zeros(volume.shape, dtype=bool)
    out[lower[0]:upper[0], lower[1]:upper[1], lower[2]:upper[2]] = (labels > 0) & (labels != OUTSIDE_WINDOW)
    return out


def segment_classes(engine: BundleEngine, volume: Volume, classes, progress=None) -> np.ndarray:
    """VISTA3D's automatic segmentation from class prompts (its label numbers, as in its
    metadata's ``channel_def``): a (z, y, x) label map holding those numbers."""
    import torch

    if engine.kind != "vista3d":
        raise PluginError("class prompts need a VISTA3D bundle", engine.root)
    if progress:
        progress("preprocessing", 0.1)
    image = engine.preprocessing({"image": _as_metatensor(volume)})["image"]
    prompt = torch.as_tensor([[int(c)] for c in classes], device=image.device)
    if progress:
        progress("inference", 0.3)
    pred = _infer(engine, image[None], engine.network, None, None, prompt)[0]
    if progress:
        progress("postprocessing", 0.8)
    item = {"image": image, "pred": _prediction_like(pred, image).to(image.device),
            "label_prompt": prompt[:, 0], "points": None, "point_labels": None}
    labels = _postprocess(engine, item)
    return np.where(labels == OUTSIDE_WINDOW, 0, labels).astype(np.uint16)


def segment_bundle(folder, volume: Volume, positives_mm, negatives_mm=(), *, device: str = "cpu",
                   progress=None) -> np.ndarray:
    """A boolean mask on ``volume``'s grid from the clicks (LPS mm), by the bundle in ``folder``."""
    if not len(positives_mm):
        raise PluginError("click inside the structure first (a positive point)")
    for p in list(positives_mm) + list(negatives_mm):
        if not volume.contains_point(p):
            raise PluginError(f"point {list(p)} mm lies outside the volume")
    if progress and not engine_loaded(folder, device):
        progress("loading the bundle's network", 0.0)
    engine = load_engine(folder, device)
    run = segment_vista3d if engine.kind == "vista3d" else segment_deepedit
    try:
        return run(engine, volume, positives_mm, negatives_mm, progress)
    except PluginError:
        raise
    except Exception as exc:  # noqa: BLE001  (one line naming the bundle and the cause)
        raise PluginError(f"the {engine.kind} bundle failed ({root_cause(exc)})", engine.root) from None


def channel_names(folder) -> dict[int, str]:
    """Label number -> name from the bundle's metadata (``channel_def``), for class prompts."""
    path = Path(folder) / "configs" / "metadata.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    pred = meta.get("network_data_format", {}).get("outputs", {}).get("pred", {})
    return {int(k): str(v) for k, v in (pred.get("channel_def") or {}).items() if str(k).isdigit()}
