"""A MONAI Model Zoo bundle run on a medviewer Volume, in memory, as `python -m monai.bundle run`
runs it.

Everything comes from the bundle's config through MONAI's ConfigParser: its ``preprocessing``,
its ``network`` with the weights its own ``checkpointloader`` names (``weights_only=True``), its
``inferer`` and ``postprocessing``, and for detection bundles its ``detector`` (after
``detector_ops``) built around that same network. Only the file readers and writers are left
out: the volume is handed over as a MetaTensor with its RAS affine, as MONAI's ITK reader would
give it. All changes to the config are made before anything is built (:func:`prepare_config`),
so that every part the config builds shares the one network that holds the weights. When a
bundle cannot run, the error is one line naming the bundle and the innermost exception
(:func:`bundle_error`).

Speed levers over a plain run (none changes the model or its window geometry): inference mode,
a larger sliding-window batch on the CPU, as many torch threads as there are idle cores, mixed
precision on CUDA, running only on the box around the body (``crop_body``; voxels outside it are
labelled background), and exact shortcuts in the usual softmax -> Invertd -> argmax
postprocessing (see :func:`run_postprocessing`). benchmarks/inference.py measures them.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys

import monai  # noqa: F401  (imported here so that a warm worker process has it ready)
import numpy as np
import torch

from medviewer.core.volume import Volume
from medviewer.plugins import trust
from medviewer.plugins.api import (
    Availability, Box, BoxesResult, Label, LabelMapResult, Plugin, PluginError, modules_available,
)
from medviewer_plugins.monai_bundle.fit import LOADER_NAMES, check_fit, target_name

# LPS <-> RAS flips the first two world axes.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]
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
        self.name = os.path.basename(self.root)
        self.has_weights = os.path.isdir(models) and any(n.endswith((".pt", ".ts")) for n in os.listdir(models))

    def require_weights(self) -> None:
        """Refuse a bundle whose models/ holds no weights. Asked after the fit check (fit.py): a
        bundle medviewer cannot run is told so, not sent to fetch its weights first."""
        if not self.has_weights:
            # A Model Zoo bundle copied without its large files (a git clone of the model-zoo
            # repository) has its configs and a large_files.yml that names the weights it lacks.
            listed = os.path.isfile(os.path.join(self.root, "large_files.yml"))
            raise PluginError(
                "the bundle's weights are missing: models/ holds no .pt or .ts file"
                + (f" (its large_files.yml lists what to download; `medviewer models get {self.name}` "
                   "installs a Model Zoo bundle with its weights)" if listed else ""), self.root)

    def read_metadata(self) -> dict:
        if not os.path.isfile(self.metadata):
            return {}
        try:
            with open(self.metadata, encoding="utf-8") as fh:
                return json.load(fh)
        except (OSError, ValueError) as exc:
            raise PluginError(f"cannot read the bundle metadata ({exc})", self.metadata) from None


def channel_names(metadata: dict) -> dict[int, str]:
    """Output channel -> name from ``network_data_format.outputs.pred.channel_def`` (or
    ``label_def``, as pediatric_abdominal_ct_segmentation names its classes)."""
    outputs = metadata.get("network_data_format", {}).get("outputs", {})
    pred = outputs.get("pred") or next(iter(outputs.values()), {})
    names = {}
    defs = pred.get("channel_def") or pred.get("label_def") or {}
    for k, v in (defs.items() if isinstance(defs, dict) else ()):
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


# ---- the bundle's config, made ready to run here ---------------------------------------------------
CUDA_DEVICE_EXPR = re.compile(r"^\$\s*torch\.device\(.*cuda.*\)\s*$")


def _walk(node, visit) -> None:
    """Call ``visit(container, key, value)`` for every item of a nested config (dicts and lists)."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        visit(node, key, value)
        _walk(value, visit)


def _accepts(cls_name: str, keyword: str) -> bool:
    """Whether the installed MONAI network ``cls_name`` takes ``keyword`` (True when unknown)."""
    import inspect

    import monai.networks.nets as nets

    cls = getattr(nets, cls_name, None)
    if cls is None:
        return True
    params = inspect.signature(cls.__init__).parameters
    return keyword in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


def _set_key(parser, names, value) -> str | None:
    """Set the first of ``names`` the config has (``a#b`` ids) to ``value``; the id set, or None."""
    for name in names:
        if name in parser:
            parser[name] = value
            return name
    return None


def prepare_config(parser, root: str, device, params: dict | None = None) -> list[str]:
    """Every change made to the bundle's config before anything in it is built (a later
    ``parser[...] = ...`` would empty MONAI's cache of built objects, so that a detector built
    afterwards would get a second, freshly initialised network). Returns notes for the user.

    * the file readers and writers are disabled (the volume is handed over in memory);
    * ``bundle_root`` and ``device`` are set, ``amp`` only on CUDA;
    * ``highres`` (wholeBody) follows the ``highres`` parameter when one is given;
    * ``whether_raw_luna16`` (the detector) is set: our input is a raw CT on its own grid, so the
      bundle's own resampling to its training spacing applies;
    * on the CPU, config expressions that pick a CUDA device outright are pointed at ``@device``;
    * compatibility: SwinUNETR's ``img_size``, which MONAI 1.5 dropped, is left out when the
      installed SwinUNETR no longer takes it (it only checked the input size; the network is the same).
    """
    params = params or {}
    notes = []
    config = parser.config

    def visit(container, key, value):
        name = target_name(value)
        if name in LOADER_NAMES or name.startswith(SAVER_PREFIXES):
            value["_disabled_"] = True
        if name == "SwinUNETR" and "img_size" in value and not _accepts("SwinUNETR", "img_size"):
            del value["img_size"]
            notes.append("left out SwinUNETR's img_size, which this MONAI no longer takes")
        if (device.type != "cuda" and isinstance(value, str) and CUDA_DEVICE_EXPR.match(value)
                and (container is not config or key != "device")):
            container[key] = "@device"

    _walk(config, visit)
    parser["bundle_root"] = root
    parser["device"] = device
    if "amp" in parser:
        parser["amp"] = bool(params.get("amp", True)) and device.type == "cuda" and parser.config["amp"] is not False
    highres = str(params.get("highres") or "").strip().lower()
    if highres and highres not in ("true", "false", "1", "0", "yes", "no"):
        raise PluginError(f"highres must be true or false, not {params['highres']!r}")
    if highres:
        if _set_key(parser, ("highres", "displayable_configs#highres"), highres in ("true", "1", "yes")) is None:
            notes.append("the bundle has no highres setting: --param highres ignored")
    if "whether_raw_luna16" in parser:
        parser["whether_raw_luna16"] = True
    return notes


# ---- torch.load while the bundle's config is evaluated ----------------------------------------
def numpy_safe_globals() -> list:
    """What unpickling plain numpy arrays needs (DiNTS stores its architecture as arrays): the
    array and dtype constructors, nothing that runs other code."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    kinds = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
             "float16", "float32", "float64")
    return [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype,
            *{type(np.dtype(k)) for k in kinds}]


@contextlib.contextmanager
def safe_torch_load(device):
    """Within: every ``torch.load`` (the bundle's config may call it, as DiNTS's does for its
    architecture file) keeps ``weights_only=True``, with numpy arrays allowed, and maps CUDA
    tensors to the CPU when running on the CPU (DiNTS asks for CUDA outright)."""
    original = torch.load

    def load(f, map_location=None, *args, **kwargs):
        kwargs["weights_only"] = True
        if device.type != "cuda":
            map_location = "cpu"
        return original(f, map_location, *args, **kwargs)

    torch.load = load
    try:
        with torch.serialization.safe_globals(numpy_safe_globals()):
            yield
    finally:
        torch.load = original


# ---- errors ----------------------------------------------------------------------------------------
def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of a chain (MONAI wraps a bundle's errors in 'Failed to instantiate
    component ...' several times over)."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    return exc


def version_note(metadata: dict) -> str:
    """A sentence when the bundle was made for another MONAI version than the installed one."""
    wanted = str(metadata.get("monai_version") or "")
    have = monai.__version__.split("+")[0]
    if wanted and wanted.split("+")[0] != have:
        return f" The bundle was made for MONAI {wanted}; this is MONAI {have}."
    return ""


def bundle_error(bundle: "BundleFolder", what: str, exc: BaseException, metadata: dict) -> PluginError:
    """One line: which bundle, what step, the innermost exception, and the MONAI version note."""
    inner = root_cause(exc)
    if isinstance(inner, PluginError):
        return inner
    text = " ".join(str(inner).split()).rstrip(".")
    if len(text) > 300:
        text = text[:297] + "..."
    return PluginError(f"bundle {bundle.name} cannot run: {what} failed: {type(inner).__name__}: {text}."
                       f"{version_note(metadata)}")


# ---- the pipeline -------------------------------------------------------------------------------
def use_bundle_scripts(root: str) -> None:
    """Make ``import scripts...`` find this bundle's scripts/ package: its folder first on
    sys.path, and another bundle's ``scripts`` modules (every bundle names its package so)
    forgotten, as a fresh `python -m monai.bundle run` process would have them."""
    if root in sys.path:
        sys.path.remove(root)
    sys.path.insert(0, root)
    for name in [n for n in sys.modules if n == "scripts" or n.startswith("scripts.")]:
        origin = getattr(sys.modules[name], "__file__", None) or ""
        if not os.path.realpath(origin).startswith(root + os.sep):
            del sys.modules[name]


class Pipeline:
    """The bundle's own parts, built once from its config: ``network`` (with its weights),
    ``preprocessing``, ``inferer``, ``postprocessing`` and, for detection bundles, the
    ``detector`` built around that same network."""

    def __init__(self, bundle: BundleFolder, device, params: dict, modality: str = ""):
        from monai.bundle import ConfigParser

        self.bundle = bundle
        self.device = device
        self.metadata = bundle.read_metadata()
        use_bundle_scripts(bundle.root)
        parser = ConfigParser()
        try:
            parser.read_config(bundle.config)
            if os.path.isfile(bundle.metadata):
                parser.read_meta(bundle.metadata)
        except Exception as exc:
            raise bundle_error(bundle, "reading its config", exc, self.metadata) from None
        # Refused here, in a second, where the bundle cannot take one 3D series (fit.py).
        self.notes = check_fit(bundle.name, self.metadata, parser.config, modality)
        bundle.require_weights()
        self.notes += prepare_config(parser, bundle.root, device, params)
        self.parser = parser
        self.prompted = target_name(parser.config.get("inferer")) == "Vista3dInferer"
        # Class prompts checked before the (large) network is built.
        self.classes = prompt_classes(str(params.get("classes") or ""), channel_names(self.metadata), self) \
            if self.prompted else None
        self.amp = bool(parser.get_parsed_content("amp")) if "amp" in parser else (
            bool(params.get("amp", True)) and device.type == "cuda")
        with safe_torch_load(device):
            self.network = self._network()
            self.preprocessing = self.build("preprocessing")
            self.inferer = self.build("inferer")
            self.postprocessing = self.build("postprocessing")
            self.detector = self.build("detector")
            if self.detector is not None:
                self.build("detector_ops")
                self.detector.eval()  # as the bundle's evaluator puts its network
        if self.detector is not None and self.detector.network is not self.network:
            raise PluginError(f"bundle {bundle.name}: its detector was built around another network "
                              "than the one given the weights")

    def build(self, key: str):
        """``parser[key]`` built (None when the config has no such key), errors as one line."""
        if key not in self.parser:
            return None
        try:
            return self.parser.get_parsed_content(key)
        except Exception as exc:
            raise bundle_error(self.bundle, f"building its {key}", exc, self.metadata) from None

    def weights_path(self) -> str:
        """The checkpoint the bundle's own run loads (its CheckpointLoader's ``load_path``: for
        wholeBody ``model.pt`` or ``model_lowres.pt`` after ``highres``, for
        pediatric_abdominal_ct_segmentation ``dynunet_FT.pt``), else models/model.pt."""
        ids = checkpoint_ids(self.parser.config)
        path = self.build(ids[0]) if ids else None
        return os.path.realpath(str(path)) if path else self.bundle.model_pt

    def _network(self):
        path = self.weights_path()
        has_def = "network_def" in self.parser
        if os.path.isfile(path) and has_def:
            net = self.build("network") if "network" in self.parser else self.build("network_def")
            load_weights(net, path, self.bundle)
            self.weights = path
        elif os.path.isfile(self.bundle.model_ts):
            net = torch.jit.load(self.bundle.model_ts, map_location=self.device)
            self.weights = self.bundle.model_ts
        elif has_def:
            others = sorted(n for n in os.listdir(os.path.dirname(path)) if n.endswith((".pt", ".ts"))) \
                if os.path.isdir(os.path.dirname(path)) else []
            switch = any(k in self.parser for k in ("highres", "displayable_configs#highres"))
            also = "; see the highres parameter" if switch else ""
            hint = f" (models/ has {', '.join(others)}{also})" if others else ""
            raise PluginError(f"bundle {self.bundle.name}: its config loads {os.path.relpath(path, self.bundle.root)}, "
                              f"which is missing{hint}", path)
        else:
            raise PluginError(f"bundle {self.bundle.name} cannot run in medviewer: its config has no network_def, "
                              "where a segmentation or detection bundle names the network its weights are for",
                              self.bundle.config)
        return net.to(self.device).eval()


def checkpoint_ids(config: dict) -> list[str]:
    """Config ids of the ``load_path`` of each CheckpointLoader in the bundle's config, wherever
    it stands (``checkpointloader``, or an item of ``handlers`` as in pediatric_abdominal_ct_segmentation),
    those that load the network (``load_dict`` naming ``model`` or ``@network``) first."""
    found = []

    def walk(node, path):
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            here = f"{path}#{key}" if path else str(key)
            if isinstance(value, dict) and target_name(value) == "CheckpointLoader" and "load_path" in value:
                load = value.get("load_dict")
                text = json.dumps(load) if isinstance(load, (dict, str)) else ""
                found.append((0 if ('"model"' in text or "@network" in text) else 1, len(found), f"{here}#load_path"))
            else:
                walk(value, here)

    walk(config, "")
    return [i for _, _, i in sorted(found)]


def load_weights(net, path: str, bundle: BundleFolder) -> None:
    """``path`` into ``net`` as the bundle's CheckpointLoader would (a plain state dict, or one
    under ``model``), with ``weights_only=True``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = " ".join(str(exc).split())[:300]
        raise PluginError(f"bundle {bundle.name}: cannot load the weights safely ({type(exc).__name__}: {first}); "
                          "only plain tensor checkpoints are accepted", path) from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise PluginError(f"bundle {bundle.name}: the weights do not fit the bundle's network ({first})", path) from None


def detection_names(metadata: dict, labels) -> dict[int, str]:
    """Box class names: the metadata's ``channel_def`` when it has one; a one-class detector
    without (lung_nodule_ct_detection) takes the bundle's name less its modality and task words
    ('Lung nodule CT detection' -> 'lung nodule')."""
    names = channel_names(metadata)
    if names or len(set(int(v) for v in labels) | {0}) > 1:
        return names
    words = [w for w in str(metadata.get("name") or "").split()
             if w.lower() not in ("ct", "mri", "mr", "pet", "detection", "3d", "model")]
    return {0: " ".join(words).lower()} if words else {}


def boxes_to_patient(item: dict, post, image) -> np.ndarray:
    """The boxes of the bundle's postprocessed output as LPS (lower, upper) mm, (N, 2, 3).

    Its postprocessing says where they are: after ``AffineBoxToWorldCoordinated`` in world mm
    (LPS with ``affine_lps_to_ras``, else RAS), in the mode of a final ``ConvertBoxModed``;
    without a world transform, in the image's index units."""
    from monai.data.box_utils import convert_box_mode

    boxes = item["box"]
    boxes = boxes.detach().float().cpu() if hasattr(boxes, "detach") else torch.as_tensor(np.asarray(boxes, float))
    boxes = boxes.reshape(-1, 6)
    transforms = list(post.transforms) if post is not None else []
    names = [type(t).__name__ for t in transforms]
    mode = "xyzxyz"
    for t in transforms:
        if type(t).__name__.startswith("ConvertBoxMode"):
            mode = t.converter.dst_mode
    boxes = convert_box_mode(boxes, src_mode=mode, dst_mode="xyzxyz").numpy().astype(float)
    world = next((t for t, n in zip(transforms, names) if n.startswith("AffineBoxToWorldCoordinate")), None)
    if world is None:
        return voxel_boxes_to_patient(boxes, np.asarray(image.affine, dtype=float))
    if not world.affine_lps_to_ras:  # RAS world mm: flip x and y to LPS
        boxes = boxes * np.array([-1, -1, 1, -1, -1, 1])
    lo, hi = np.minimum(boxes[:, :3], boxes[:, 3:]), np.maximum(boxes[:, :3], boxes[:, 3:])
    return np.stack([lo, hi], axis=1)


# ---- the plugin ----------------------------------------------------------------------------------
class MonaiBundle(Plugin):
    def is_available(self) -> Availability:
        return modules_available(["torch", "monai"])

    def gpu_available(self) -> bool:
        return bool(torch.cuda.is_available())

    def prepare(self, device: str) -> None:
        self.device = torch.device(device)

    def run(self, request, progress, cancel):
        p = request.params
        bundle = BundleFolder(p["bundle"], p.get("config") or "")
        if not trust.is_trusted(bundle.root):
            raise PluginError(trust.untrusted_message(bundle.root))
        try:
            return self._run(bundle, request, progress, cancel)
        except PluginError:
            raise
        except Exception as exc:
            raise bundle_error(bundle, "its run", exc, bundle.read_metadata()) from None

    def _run(self, bundle, request, progress, cancel):
        p = request.params
        device = torch.device(request.device)
        torch.set_num_threads(choose_threads(int(p.get("threads") or 0)))
        progress("reading the bundle", None)
        forbid_downloads()
        progress("loading the model", None)
        pipe = Pipeline(bundle, device, p, modality=request.volume.modality)
        cancel.check()
        if pipe.prompted:
            return self._classes(pipe, request, progress, cancel)
        detection = pipe.detector is not None
        source = work = request.volume
        box = None
        if p.get("crop_body", True) and not detection:
            box = body_box(source, float(p.get("body_hu", -500.0)))
            if box is not None:
                work = source.crop(*box)
        pre = pipe.preprocessing
        channel_first = not _has(pre, "EnsureChannelFirst")
        data = {"image": volume_to_metatensor(work, channel_first), **deepedit_guidance(pipe.parser)}
        progress("preprocessing", None)
        if pre is not None:
            data = pre(data)
        cancel.check()
        if detection:
            return self._detect(pipe, data, work, p, progress, cancel)
        return self._segment(pipe, data, source, work, box, p, progress, cancel)

    # ---- segmentation --------------------------------------------------------------------------
    def _segment(self, pipe, data, source, work, box, p, progress, cancel):
        from monai.data import MetaTensor
        from monai.inferers import SimpleInferer, SlidingWindowInferer

        device = pipe.device
        inferer = pipe.inferer or SimpleInferer()
        image = data["image"]
        sw = int(p.get("sw_batch_size") or 0)
        total = 1
        if isinstance(inferer, SlidingWindowInferer):
            if sw > 0:
                inferer.sw_batch_size = sw
            elif device.type == "cpu":
                inferer.sw_batch_size = max(inferer.sw_batch_size, 8)
            if float(p.get("overlap", -1)) >= 0:
                inferer.overlap = float(p["overlap"])
            total = count_windows(image.shape[1:], inferer.roi_size, float(np.max(inferer.overlap)))
        predictor = _Predictor(pipe.network, total, progress, cancel)
        progress("inference", 0.0)
        with torch.inference_mode(), torch.autocast(device.type, enabled=pipe.amp):
            pred = inferer(image[None].to(device), predictor)
        pred = pred[0].float().cpu()
        cancel.check()
        progress("postprocessing", None)
        pred = MetaTensor(pred, affine=image.affine, meta=dict(image.meta))
        pred.applied_operations = []
        item = {"image": image, "pred": pred}
        with torch.inference_mode():
            item = run_postprocessing(pipe.postprocessing, item)
        return self._label_map(pipe, item, source, work, box, progress)

    def _label_map(self, pipe, item, source, work, box, progress, only=None):
        """The postprocessed prediction as a LabelMapResult on the source grid, with the bundle's names."""
        from monai.data import MetaTensor

        image = item["image"]
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
        names = channel_names(pipe.metadata)
        listed = set(names) if only is None else set(only)
        present = sorted(listed | set(int(v) for v in np.unique(labels)))
        label_info = tuple(Label(v, names.get(v, f"class {v}"), PALETTE[(v - 1) % len(PALETTE)])
                           for v in present if v != 0)
        progress("done", 1.0)
        return LabelMapResult(source.with_array(labels, meta={**source.meta, "derived": "monai bundle"}),
                              label_info, note="; ".join(pipe.notes), algorithm=algorithm_name(pipe.metadata))

    # ---- VISTA3D's class prompts -----------------------------------------------------------------
    def _classes(self, pipe, request, progress, cancel):
        """VISTA3D as an automatic segmentation: its class prompts (the ``classes`` parameter, else
        the bundle's ``everything_labels``), as its own evaluator hands them to its inferer and
        postprocessing (label_prompt as [N, 1], no points)."""
        classes = pipe.classes
        source = request.volume
        data = {"image": volume_to_metatensor(source, False), "label_prompt": classes}
        progress("preprocessing", None)
        data = pipe.preprocessing(data)
        cancel.check()
        image = data["image"]
        prompt = torch.as_tensor(classes, device=pipe.device).unsqueeze(-1)
        progress("inference", 0.0)
        with torch.inference_mode(), torch.autocast(pipe.device.type, enabled=pipe.amp):
            pred = pipe.inferer(inputs=image[None].to(pipe.device), network=pipe.network, point_coords=None,
                                point_labels=None, class_vector=prompt)
        cancel.check()
        progress("postprocessing", None)
        from monai.transforms.utils import reset_ops_id

        # As its evaluator does: the image's transform ids reset, since its postprocessing inverts
        # with a copy of the preprocessing (other ids).
        item = {**data, "image": reset_ops_id(image.cpu()), "pred": pred[0].float().cpu(),
                "label_prompt": prompt.cpu()}
        with torch.inference_mode():
            item = pipe.postprocessing(item)
        return self._label_map(pipe, item, source, source, None, progress, only=classes)

    # ---- detection -----------------------------------------------------------------------------
    def _detect(self, pipe, data, work, p, progress, cancel):
        """As the bundle's own evaluator and saver do: its inferer with the loaded network on the
        preprocessed image, then its postprocessing on ``{**prediction, 'image': image}``."""
        device = pipe.device
        image = data["image"]
        if pipe.detector.inferer is not None and int(p.get("sw_batch_size") or 0) > 0:
            pipe.detector.inferer.sw_batch_size = int(p["sw_batch_size"])
        progress("inference", 0.0)
        cancel.check()
        with torch.inference_mode(), torch.autocast(device.type, enabled=pipe.amp):
            if pipe.inferer is not None:
                outputs = pipe.inferer([image.to(device)], pipe.network)
            else:  # no inferer in the config: the detector alone, windowed as RetinaNetInferer would
                roi = getattr(pipe.detector.inferer, "roi_size", None)
                windowed = roi is not None and image[0].numel() >= int(np.prod(roi))
                outputs = pipe.detector([image.to(device)], use_inferer=windowed)
        cancel.check()
        progress("postprocessing", None)
        out = outputs[0]
        label_key = getattr(pipe.detector, "target_label_key", "label")
        score_key = getattr(pipe.detector, "pred_score_key", label_key + "_scores")
        item = {k: (v.detach().cpu() if hasattr(v, "detach") else v) for k, v in out.items()}
        item["image"] = image.cpu()
        post = pipe.postprocessing
        with torch.inference_mode():
            item = post(item) if post is not None else item
        mm = boxes_to_patient({"box": item[getattr(pipe.detector, "target_box_key", "box")]}, post, image)
        labels = np.asarray(item[label_key]).reshape(-1).astype(int)
        scores = np.asarray(item[score_key], dtype=float).reshape(-1)
        # The boxes as the bundle's own ClipBoxToImaged left them (on its resampled grid, which can
        # reach a voxel beyond the source's); only the score threshold is ours.
        keep = (scores >= float(p.get("score_threshold", 0.0))) & np.all(mm[:, 1] > mm[:, 0], axis=1)
        mm, labels, scores = mm[keep], labels[keep], scores[keep]
        names = detection_names(pipe.metadata, labels)
        order = np.argsort(-scores, kind="stable")
        result = tuple(Box(tuple(mm[i, 0]), tuple(mm[i, 1]), int(labels[i]), float(scores[i]),
                           names.get(int(labels[i]), f"class {int(labels[i])}")) for i in order)
        label_info = tuple(Label(k, v, PALETTE[k % len(PALETTE)]) for k, v in sorted(names.items()))
        progress("done", 1.0)
        return BoxesResult(result, label_info)


def prompt_classes(text: str, names: dict[int, str], pipe) -> list[int]:
    """Class prompts from ``text`` (comma-separated numbers or the bundle's class names), else
    the bundle's ``everything_labels``; unknown ones are an error naming them."""
    if not text.strip():
        if "everything_labels" in pipe.parser:
            return sorted(int(v) for v in pipe.build("everything_labels"))
        return sorted(k for k in names if k)
    by_name = {v.lower(): k for k, v in names.items()}
    out, unknown = [], []
    for part in (t.strip() for t in text.split(",") if t.strip()):
        value = int(part) if part.isdigit() else by_name.get(part.lower())
        if value is None or value not in names or value == 0:
            unknown.append(part)
        elif value not in out:
            out.append(value)
    if unknown:
        raise PluginError(f"bundle {pipe.bundle.name} has no class {', '.join(map(str, unknown))} "
                          "(see the channel_def in its configs/metadata.json)")
    return out


def algorithm_name(metadata: dict) -> str:
    """What made the result, for a DICOM SEG's Segment Algorithm Name: the bundle and its version."""
    name = str(metadata.get("name") or "").strip()
    version = str(metadata.get("version") or "").strip()
    return f"MONAI bundle {name} {version}".strip()[:64] if name else ""


def deepedit_guidance(parser) -> dict:
    """A DeepEdit bundle (``label_names`` in its config) run without clicks: an empty click list
    per label, which is its automatic mode (as MONAI Label runs it without clicks)."""
    if "label_names" not in parser or "deepedit_transforms" not in parser:
        return {}
    names = parser.config["label_names"]
    return {str(name): [] for name in names} if isinstance(names, dict) else {}
