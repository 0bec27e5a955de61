"""A MONAI Model Zoo bundle run on a medviewer Volume, in memory, through MONAI's ConfigParser.

The bundle's own ``preprocessing``, ``network_def`` (weights from ``models/model.pt``, loaded with
``weights_only=True``, or the TorchScript ``models/model.ts``), ``inferer`` and ``postprocessing``
are used; file loaders and savers are left out (the volume is handed over as a MetaTensor with
its RAS affine, as MONAI's ITK reader would give it). Detection bundles (those with a
``detector``) run their RetinaNetDetector after ``detector_ops``.

Speed levers over a plain run (none changes the model or its window geometry): inference mode,
a larger sliding-window batch on the CPU, as many torch threads as there are idle cores, mixed
precision on CUDA, running only on the box around the body (``crop_body``; voxels outside it are
labelled background), and exact shortcuts in the usual softmax -> Invertd -> argmax
postprocessing (see :func:`run_postprocessing`). benchmarks/inference.py measures them.
"""

from __future__ import annotations

import json
import math
import os
import sys

import monai  # noqa: F401  (imported here so that a warm worker process has it ready)
import numpy as np
import torch

from medviewer.core.volume import Volume
from medviewer.plugins import trust
from medviewer.plugins.api import (
    Availability, Box, BoxesResult, Label, LabelMapResult, Plugin, PluginError, modules_available,
)

# LPS <-> RAS flips the first two world axes.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]
LOADER_NAMES = ("LoadImage", "LoadImaged", "LoadImageD", "LoadImageDict")
SAVER_PREFIXES = ("SaveImage", "SaveClassification", "SaveDetection")


# ---- the bundle folder ---------------------------------------------------------------------------
class BundleFolder:
    """A bundle folder checked for the Model Zoo layout (nothing is executed here)."""

    def __init__(self, folder: str, config: str = ""):
        if not folder:
            raise PluginError("no bundle folder given (--param bundle=DIR)")
        self.root = os.path.realpath(os.path.abspath(os.path.expanduser(folder)))
        if not os.path.isdir(self.root):
            raise PluginError("the bundle folder does not exist", self.root)
        configs = os.path.join(self.root, "configs")
        names = [config] if config else ["inference.json", "inference.yaml", "inference.yml"]
        self.config = next((os.path.join(configs, n) for n in names if os.path.isfile(os.path.join(configs, n))), None)
        if self.config is None:
            raise PluginError(f"not a MONAI bundle: no configs/{' or configs/'.join(names)}", self.root)
        if self.config.endswith((".yaml", ".yml")) and not modules_available(["yaml"]):
            raise PluginError("this bundle's config is YAML, which needs the PyYAML package", self.config)
        self.metadata = os.path.join(configs, "metadata.json")
        models = os.path.join(self.root, "models")
        self.model_pt = os.path.join(models, "model.pt")
        self.model_ts = os.path.join(models, "model.ts")
        if not (os.path.isfile(self.model_pt) or os.path.isfile(self.model_ts)):
            raise PluginError("not a MONAI bundle: no models/model.pt or models/model.ts", self.root)

    def read_metadata(self) -> dict:
        if not os.path.isfile(self.metadata):
            return {}
        try:
            with open(self.metadata, encoding="utf-8") as fh:
                return json.load(fh)
        except (OSError, ValueError) as exc:
            raise PluginError(f"cannot read the bundle metadata ({exc})", self.metadata) from None


def channel_names(metadata: dict) -> dict[int, str]:
    """Output channel -> name from ``network_data_format.outputs.pred.channel_def``."""
    outputs = metadata.get("network_data_format", {}).get("outputs", {})
    pred = outputs.get("pred") or next(iter(outputs.values()), {})
    names = {}
    for k, v in (pred.get("channel_def") or {}).items():
        try:
            names[int(k)] = str(v)
        except ValueError:
            continue
    return names


def volume_to_metatensor(volume: Volume, channel_first: bool):
    """The volume as MONAI's ITK reader gives it: (x, y, z) array, RAS affine, metadata."""
    from monai.data import MetaTensor

    array = np.ascontiguousarray(np.transpose(volume.array, (2, 1, 0)).astype(np.float32))
    affine = LPS_TO_RAS @ volume.affine
    meta = {"original_affine": affine.copy(), "spatial_shape": np.asarray(array.shape),
            "original_channel_dim": "no_channel", "filename_or_obj": volume.meta.get("source_folder", "medviewer"),
            "space": "RAS"}
    tensor = torch.from_numpy(array)
    if channel_first:
        tensor = tensor[None]
        meta["original_channel_dim"] = 0
    return MetaTensor(tensor, affine=torch.as_tensor(affine, dtype=torch.float64), meta=meta)


def metatensor_grid_volume(array_xyz: np.ndarray, ras_affine: np.ndarray, like: Volume) -> Volume:
    """A Volume from an (x, y, z) array with a RAS affine (MONAI's), other fields from ``like``."""
    lps = LPS_TO_RAS @ np.asarray(ras_affine, dtype=float)
    m = lps[:3, :3]
    spacing = np.linalg.norm(m, axis=0)
    direction = m / spacing
    return Volume(np.transpose(array_xyz, (2, 1, 0)), spacing=tuple(spacing), origin=tuple(lps[:3, 3]),
                  direction=direction)


def resample_labels(labels: Volume, onto: Volume) -> np.ndarray:
    """``labels`` resampled (nearest neighbour) onto ``onto``'s grid, as an array."""
    import SimpleITK as sitk

    out = sitk.Resample(labels.to_sitk(), onto.to_sitk(), sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                        sitk.sitkUInt8 if labels.array.max() < 256 else sitk.sitkUInt16)
    return sitk.GetArrayFromImage(out)


def body_box(volume: Volume, threshold: float, margin_mm: float = 10.0) -> tuple[np.ndarray, np.ndarray] | None:
    """(lower, upper) array bounds (z, y, x) of the voxels above ``threshold``, with a margin."""
    mask = volume.array > threshold
    if not mask.any():
        return None
    lo, hi = [], []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(mask.any(axis=other))
        lo.append(hit[0])
        hi.append(hit[-1] + 1)
    margin = np.ceil(margin_mm / np.asarray(volume.spacing)[::-1]).astype(int)
    lo = np.maximum(np.asarray(lo) - margin, 0)
    hi = np.minimum(np.asarray(hi) + margin, volume.shape)
    return lo, hi


def voxel_boxes_to_patient(boxes_xyzxyz: np.ndarray, ras_affine: np.ndarray) -> np.ndarray:
    """MONAI boxes (x0, y0, z0, x1, y1, z1) in image index units -> LPS (lower, upper) mm, (N, 2, 3).

    The affine maps box coordinates as it maps voxel indices (MONAI's AffineBoxToWorldCoordinate
    convention); the patient-space box is the one around the eight transformed corners.
    """
    boxes = np.asarray(boxes_xyzxyz, dtype=float).reshape(-1, 6)
    lps = LPS_TO_RAS @ np.asarray(ras_affine, dtype=float)
    out = np.zeros((len(boxes), 2, 3))
    for n, b in enumerate(boxes):
        corners = np.array([[x, y, z, 1.0] for x in (b[0], b[3]) for y in (b[1], b[4]) for z in (b[2], b[5])])
        world = corners @ lps.T
        out[n, 0] = world[:, :3].min(axis=0)
        out[n, 1] = world[:, :3].max(axis=0)
    return out


def _drop(compose, names_or_prefixes, prefix: bool = False):
    """``compose`` without the transforms of the given class names (a new Compose)."""
    from monai.transforms import Compose

    if compose is None:
        return None
    kept = []
    for t in compose.transforms:
        name = type(t).__name__
        hit = name.startswith(names_or_prefixes) if prefix else name in names_or_prefixes
        if not hit:
            kept.append(t)
    return Compose(kept, map_items=compose.map_items, unpack_items=compose.unpack_items)


def _disable_in_config(parser, key: str, predicate) -> None:
    """Mark the transforms of ``parser[key]`` (a Compose config) whose ``_target_`` matches as
    ``_disabled_``, so they are never instantiated (file readers and writers need other
    packages and touch the disk)."""
    if key not in parser:
        return
    section = parser[key]
    transforms = section.get("transforms") if isinstance(section, dict) else None
    if not isinstance(transforms, list):
        return
    for n, t in enumerate(transforms):
        if isinstance(t, dict) and isinstance(t.get("_target_"), str):
            if predicate(t["_target_"].rsplit(".", 1)[-1]):
                parser[f"{key}#transforms#{n}#_disabled_"] = True


def _has(compose, name: str) -> bool:
    return compose is not None and any(type(t).__name__.startswith(name) for t in compose.transforms)


def channel_argmax(x):
    """argmax over the first axis as a loop over channels: the same answer as ``argmax(0)``
    (ties go to the lower channel) but a single pass per channel, where torch's reduction over
    the outermost axis of a large tensor is slow on the CPU. Works on tensors and arrays."""
    lib = torch if isinstance(x, torch.Tensor) else np
    best = x[0]
    index = lib.zeros(best.shape, dtype=lib.uint8)
    for c in range(1, x.shape[0]):
        better = x[c] > best
        index[better] = c
        best = lib.maximum(best, x[c])
    return index


def _is_plain_argmax(t) -> bool:
    """An AsDiscreted that only takes the argmax (what Model Zoo segmentation bundles end with)."""
    if type(t).__name__ not in ("AsDiscreted", "AsDiscreteD", "AsDiscreteDict") or len(t.keys) != 1:
        return False
    c = t.converter
    return (all(t.argmax) and not any(t.to_onehot) and all(v is None for v in t.threshold)
            and all(v is None for v in t.rounding) and not c.argmax and not c.to_onehot)


def run_postprocessing(post, item: dict) -> dict:
    """The bundle's postprocessing on ``item``, with two exact shortcuts for the common chain
    ``[Activationsd(softmax)] -> Invertd -> AsDiscreted(argmax)``:

    * the final argmax is taken by :func:`channel_argmax` (same labels, far faster on the CPU);
    * with two classes, only the difference of the two channels is inverted (resampled back to
      the source grid): interpolation is linear, so ``interp(p1) > interp(p0)`` exactly when
      ``interp(p1 - p0) > 0``; half the resampling, the same labels.
    """
    if post is None:
        return item
    transforms = list(post.transforms)
    if not transforms or not _is_plain_argmax(transforms[-1]) or transforms[-1].keys[0] != "pred":
        return post(item)
    body = transforms[:-1]
    names = [type(t).__name__ for t in body]
    inv = names.index("Invertd") if "Invertd" in names else None
    pred = item["pred"]
    two_class = (inv is not None and pred.shape[0] == 2 and all(n == "Invertd" for n in names[inv:])
                 and all(n in ("Activationsd", "Invertd") for n in names))
    for n, t in enumerate(body):
        if two_class and n == inv:
            p = item["pred"]
            diff = p[1:2] - p[0:1]
            item = {**item, "pred": diff}
        item = t(item)
    if two_class:
        labels = (item["pred"] > 0).to(torch.uint8)
    else:
        labels = channel_argmax(item["pred"])[None]
    out = item["pred"]
    if hasattr(out, "affine"):
        from monai.data import MetaTensor

        labels = MetaTensor(labels, affine=out.affine, meta=dict(out.meta))
    return {**item, "pred": labels}


class _Predictor(torch.nn.Module):
    """Wraps the network to count windows (progress) and honour cancel between batches."""

    def __init__(self, net, total: int, progress, cancel):
        super().__init__()
        self.net = net
        self.total = max(total, 1)
        self.done = 0
        self.progress = progress
        self.cancel = cancel

    def forward(self, x):
        self.cancel.check()
        y = self.net(x)
        self.done += x.shape[0]
        self.progress("inference", min(self.done / self.total, 1.0))
        return y


def choose_threads(requested: int) -> int:
    """``requested`` CPU threads, or (0) the cores not already busy: an oversubscribed CPU makes
    torch's OpenMP threads wait on each other (several times slower than one thread)."""
    cores = os.cpu_count() or 1
    if requested > 0:
        return requested
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(cores, int(round(cores - busy))))


def count_windows(image_size, roi_size, overlap: float) -> int:
    """How many windows MONAI's sliding window visits (its dense_patch_slices arithmetic)."""
    n = 1
    for size, roi in zip(image_size, roi_size):
        roi = min(int(roi), int(size)) if roi > 0 else int(size)
        interval = int(roi * (1 - overlap)) if roi < size else roi
        interval = max(interval, 1)
        n *= int(math.ceil(float(size - roi) / interval)) + 1 if size > roi else 1
    return n


def forbid_downloads() -> None:
    """Make every download route a bundle could reach fail with a clear error (this process
    runs only the bundle): MONAI's and torch.hub's downloaders, and the Hugging Face hub."""
    def refuse(*args, **kwargs):
        url = next((a for a in args if isinstance(a, str)), kwargs.get("url", ""))
        raise PluginError(f"the bundle tried to download {url!r}: downloads are disabled; "
                          "put the files in the bundle folder")

    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import monai.apps
    import monai.apps.utils
    import monai.bundle
    import torch.hub

    for module, names in ((monai.apps.utils, ("download_url", "download_and_extract")),
                          (monai.apps, ("download_url", "download_and_extract")),
                          (monai.bundle, ("download", "load")),
                          (torch.hub, ("download_url_to_file", "load_state_dict_from_url", "load"))):
        for name in names:
            if hasattr(module, name):
                setattr(module, name, refuse)


# ---- the plugin ----------------------------------------------------------------------------------
class MonaiBundle(Plugin):
    def is_available(self) -> Availability:
        return modules_available(["torch", "monai"])

    def gpu_available(self) -> bool:
        return bool(torch.cuda.is_available())

    def prepare(self, device: str) -> None:
        self.device = torch.device(device)

    def run(self, request, progress, cancel):
        try:
            return self._run(request, progress, cancel)
        except Exception as exc:
            # MONAI wraps errors raised inside config expressions: surface our own message.
            inner, seen = exc, set()
            while inner is not None and id(inner) not in seen:
                seen.add(id(inner))
                if isinstance(inner, PluginError) and "downloads are disabled" in str(inner):
                    raise inner from None
                inner = inner.__cause__ or inner.__context__
            raise

    def _run(self, request, progress, cancel):
        p = request.params
        bundle = BundleFolder(p["bundle"], p.get("config") or "")
        if not trust.is_trusted(bundle.root):
            raise PluginError(trust.untrusted_message(bundle.root))
        device = torch.device(request.device)
        torch.set_num_threads(choose_threads(int(p.get("threads") or 0)))
        progress("reading the bundle", None)
        forbid_downloads()
        from monai.bundle import ConfigParser

        if bundle.root not in sys.path:  # bundles import their scripts/ package
            sys.path.insert(0, bundle.root)
        parser = ConfigParser()
        parser.read_config(bundle.config)
        if os.path.isfile(bundle.metadata):
            parser.read_meta(bundle.metadata)
        parser["bundle_root"] = bundle.root
        parser["device"] = device
        if "amp" in parser:
            parser["amp"] = bool(p.get("amp", True)) and device.type == "cuda"
        metadata = bundle.read_metadata()
        names = channel_names(metadata)
        cancel.check()
        detection = "detector" in parser

        progress("loading the model", None)
        network = self._load_network(parser, bundle, device)
        cancel.check()

        source = request.volume
        work = source
        if p.get("crop_body", True):
            box = body_box(source, float(p.get("body_hu", -500.0)))
            if box is not None:
                work = source.crop(*box)
        _disable_in_config(parser, "preprocessing", lambda name: name in LOADER_NAMES)
        _disable_in_config(parser, "postprocessing", lambda name: name.startswith(SAVER_PREFIXES))
        try:
            pre = parser.get_parsed_content("preprocessing") if "preprocessing" in parser else None
        except Exception as exc:
            raise PluginError(f"cannot build the bundle's preprocessing ({type(exc).__name__}: {exc})",
                              bundle.config) from None
        pre_run = _drop(pre, LOADER_NAMES)
        channel_first = not _has(pre_run, "EnsureChannelFirst")
        data = {"image": volume_to_metatensor(work, channel_first)}
        progress("preprocessing", None)
        if pre_run is not None:
            data = pre_run(data)
        cancel.check()
        if detection:
            return self._detect(parser, network, data, work, names, p, device, progress, cancel)
        return self._segment(parser, network, data, source, work, box if work is not source else None,
                             names, p, device, progress, cancel)

    # ---- network -------------------------------------------------------------------------------
    def _load_network(self, parser, bundle: BundleFolder, device):
        has_def = "network_def" in parser
        if os.path.isfile(bundle.model_pt) and has_def:
            try:
                net = parser.get_parsed_content("network")if "network" in parser else parser.get_parsed_content("network_def")
            except Exception as exc:
                raise PluginError(f"cannot build the bundle's network ({type(exc).__name__}: {exc})",
                                  bundle.config) from None
            try:
                state = torch.load(bundle.model_pt, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise PluginError(f"cannot load the weights safely ({type(exc).__name__}: {exc}); only plain "
                                  "tensor checkpoints are accepted", bundle.model_pt) from None
            if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
                state = state["model"]
            try:
                net.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                first = str(exc).splitlines()[0]
                raise PluginError(f"the weights do not fit the bundle's network ({first})", bundle.model_pt) from None
        elif os.path.isfile(bundle.model_ts):
            net = torch.jit.load(bundle.model_ts, map_location=device)
        else:
            raise PluginError("the bundle has models/model.pt but no network_def in its config", bundle.config)
        return net.to(device).eval()

    # ---- segmentation --------------------------------------------------------------------------
    def _segment(self, parser, network, data, source, work, box, names, p, device, progress, cancel):
        from monai.data import MetaTensor
        from monai.inferers import SlidingWindowInferer

        inferer = parser.get_parsed_content("inferer") if "inferer" in parser else None
        if inferer is None:
            inferer = SlidingWindowInferer(roi_size=(96, 96, 96))
        image = data["image"]
        sw = int(p.get("sw_batch_size") or 0)
        if isinstance(inferer, SlidingWindowInferer):
            if sw > 0:
                inferer.sw_batch_size = sw
            elif device.type == "cpu":
                inferer.sw_batch_size = max(inferer.sw_batch_size, 8)
            if float(p.get("overlap", -1)) >= 0:
                inferer.overlap = float(p["overlap"])
            roi = inferer.roi_size
            total = count_windows(image.shape[1:], roi, float(np.max(inferer.overlap)))
        else:
            total = 1
        predictor = _Predictor(network, total, progress, cancel)
        amp = bool(p.get("amp", True)) and device.type == "cuda"
        progress("inference", 0.0)
        with torch.inference_mode(), torch.autocast(device.type, enabled=amp):
            pred = inferer(image[None].to(device), predictor)
        pred = pred[0].float().cpu()
        cancel.check()
        progress("postprocessing", None)
        pred = MetaTensor(pred, affine=image.affine, meta=dict(image.meta))
        pred.applied_operations = []
        post = parser.get_parsed_content("postprocessing") if "postprocessing" in parser else None
        post = _drop(post, SAVER_PREFIXES, prefix=True)
        item = {"image": image, "pred": pred}
        with torch.inference_mode():
            item = run_postprocessing(post, item)
        out = item["pred"]
        out_affine = np.asarray(out.affine if isinstance(out, MetaTensor) else image.affine, dtype=float)
        out = out.detach().cpu().numpy() if hasattr(out, "detach") else np.asarray(out)
        if out.ndim == 4 and out.shape[0] > 1:
            out = channel_argmax(out)
        elif out.ndim == 4:
            out = out[0]
        labels_xyz = np.rint(out).astype(np.uint8 if out.max() < 256 else np.uint16)
        result = metatensor_grid_volume(labels_xyz, out_affine, work)
        if not result.same_grid(work):
            # The bundle did not invert its own resampling: do it here (nearest neighbour).
            progress("resampling to the source grid", None)
            labels = resample_labels(result, work)
        else:
            labels = result.array
        if box is not None:
            full = np.zeros(source.shape, dtype=labels.dtype)
            lo, hi = box
            full[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = labels
            labels = full
        present = sorted(set(names) | set(int(v) for v in np.unique(labels)))
        label_info = tuple(Label(v, names.get(v, f"class {v}"), PALETTE[(v - 1) % len(PALETTE)])
                           for v in present if v != 0)
        progress("done", 1.0)
        return LabelMapResult(source.with_array(labels, meta={**source.meta, "derived": "monai bundle"}), label_info)

    # ---- detection -----------------------------------------------------------------------------
    def _detect(self, parser, network, data, work, names, p, device, progress, cancel):
        detector = parser.get_parsed_content("detector")
        if "detector_ops" in parser:
            parser.get_parsed_content("detector_ops")
        detector.eval()
        image = data["image"]
        inferer = getattr(detector, "inferer", None)
        roi = getattr(inferer, "roi_size", None)
        use_inferer = roi is not None and any(int(s) > int(r) for s, r in zip(image.shape[1:], roi))
        if inferer is not None and int(p.get("sw_batch_size") or 0) > 0:
            inferer.sw_batch_size = int(p["sw_batch_size"])
        amp = bool(p.get("amp", True)) and device.type == "cuda"
        progress("inference", 0.0)
        cancel.check()
        with torch.inference_mode(), torch.autocast(device.type, enabled=amp):
            outputs = detector([image.to(device)], use_inferer=use_inferer)
        cancel.check()
        progress("postprocessing", None)
        out = outputs[0]
        box_key = getattr(detector, "target_box_key", "box")
        label_key = getattr(detector, "target_label_key", "label")
        score_key = getattr(detector, "pred_score_key", label_key + "_scores")
        boxes = out[box_key].detach().float().cpu().numpy().reshape(-1, 6)
        labels = out[label_key].detach().cpu().numpy().reshape(-1)
        scores = out[score_key].detach().float().cpu().numpy().reshape(-1)
        # Clip to the image, as the bundles' ClipBoxToImaged does.
        size = np.asarray(image.shape[1:], dtype=float)
        boxes[:, :3] = np.clip(boxes[:, :3], 0, size)
        boxes[:, 3:] = np.clip(boxes[:, 3:], 0, size)
        keep = np.all(boxes[:, 3:] > boxes[:, :3], axis=1) & (scores >= float(p.get("score_threshold", 0.0)))
        boxes, labels, scores = boxes[keep], labels[keep], scores[keep]
        mm = voxel_boxes_to_patient(boxes, np.asarray(image.affine, dtype=float))
        # Resampling can widen the grid by a voxel: keep boxes within the source's voxel extent.
        edges = work.voxel_to_patient(np.array([[-0.5] * 3, np.asarray(work.shape) - 0.5]))
        mm = np.clip(mm, edges.min(axis=0), edges.max(axis=0))
        keep = np.all(mm[:, 1] > mm[:, 0], axis=1)
        mm, labels, scores = mm[keep], labels[keep], scores[keep]
        order = np.argsort(-scores)
        result = tuple(Box(tuple(mm[i, 0]), tuple(mm[i, 1]), int(labels[i]), float(scores[i]),
                           names.get(int(labels[i]), f"class {int(labels[i])}")) for i in order)
        label_info = tuple(Label(k, v, PALETTE[k % len(PALETTE)]) for k, v in sorted(names.items()))
        progress("done", 1.0)
        return BoxesResult(result, label_info)
