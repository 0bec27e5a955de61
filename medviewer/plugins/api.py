"""The one surface plugin authors see.

A plugin is two things:

* a static :class:`Manifest` (plain data: id, title, kind, labels, parameters, what it needs),
  which medviewer reads without importing the plugin's implementation, and
* an implementation class, a subclass of :class:`Plugin`, named by ``Manifest.entry``
  (``"package.module:ClassName"``) and imported only when the plugin is about to run, so that
  listing plugins or opening the window never imports torch.

The implementation gets a frozen :class:`Request` (the volume, prompts, parameters, device) and
returns one frozen result: a :class:`LabelMapResult` on the source grid, a :class:`BoxesResult`
in patient millimetres, a :class:`ScoresResult`, or an :class:`ImageResult`. It reports progress
by stage (``progress("inference", 0.4)``) and checks ``cancel`` often (``cancel.check()`` raises
:class:`Cancelled`).

Nothing here imports torch, MONAI, Qt or VTK.
"""

from __future__ import annotations

import copyreg
import dataclasses
import importlib.util
import threading
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume

API_VERSION = 1

# Volumes and requests hold read-only mappings; let them cross into the plugin's child process.
def _read_only(mapping: dict) -> MappingProxyType:
    return MappingProxyType(mapping)


copyreg.pickle(MappingProxyType, lambda m: (_read_only, (dict(m),)))

KINDS = ("segmentation", "detection", "interactive", "classification", "image-to-image")
PARAM_TYPES = {"int": int, "float": float, "bool": bool, "str": str, "path": str, "choice": str}


class Cancelled(Exception):
    """Raised inside a plugin (by ``cancel.check()``) when the user asked it to stop."""


class PluginError(MedviewerError):
    """A plugin could not run, or returned something medviewer cannot accept."""


# ---- manifest ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Label:
    """One output class: its value in a label map (or box label), name, display colour, code.

    ``code`` is an optional coded concept, e.g. ``("SCT", "78961009", "Spleen")`` (scheme, value,
    meaning), for DICOM SEG/SR export.
    """

    value: int
    name: str
    color: tuple[int, int, int] = (255, 0, 0)
    code: tuple[str, str, str] | None = None


#: a parameter name's suffix that says its unit (``radius_mm``), as forms show it
NAME_UNITS = {"mm": "mm", "ml": "mL", "hu": "HU", "s": "s", "seconds": "s", "deg": "degrees", "pct": "%"}


@dataclass(frozen=True)
class Param:
    """One user-settable parameter with its type and default.

    ``label`` and ``unit`` are what a form shows (``Radius`` ... ``mm``); left empty, they are read
    from the name (``radius_mm``: label "Radius", unit "mm"; see :attr:`display_label`,
    :attr:`display_unit`), so manifests without them show sensibly too."""

    name: str
    type: str = "str"  # one of PARAM_TYPES
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] = ()
    required: bool = False
    label: str = ""
    unit: str = ""
    #: set by the application, not by a person (the click tool's ``previous`` mask): forms leave it out
    internal: bool = False

    @property
    def _name_unit(self) -> tuple[str, str]:
        """(the name without a unit suffix, the unit that suffix names, or '')."""
        stem, _, suffix = self.name.rpartition("_")
        unit = NAME_UNITS.get(suffix.lower()) if stem else None
        return (stem, unit) if unit else (self.name, "")

    @property
    def display_label(self) -> str:
        """The label, else the name in words, its unit suffix taken off (``time_step``: Time step)."""
        if self.label:
            return self.label
        words = self._name_unit[0].replace("_", " ").strip()
        return words[:1].upper() + words[1:]

    @property
    def display_unit(self) -> str:
        return self.unit or self._name_unit[1]

    @property
    def decimals(self) -> int:
        """Decimals a form shows for a float: 1 for lengths and volumes, 0 for HU, else as many
        as the default needs (at least 1, 2 below one, at most 4): 0.0625 shows as such, 5.0 as 5.0,
        0.0 as 0.00."""
        unit = self.display_unit
        if unit in ("mm", "mL"):
            return 1
        if unit == "HU":
            return 0
        try:
            text = repr(float(self.default or 0.0))
        except (TypeError, ValueError):
            return 2
        if "e" in text:
            return 4
        least = 2 if abs(float(self.default or 0.0)) < 1 else 1
        return max(least, min(4, len(text.split(".")[1].rstrip("0"))))

    def parse(self, text: Any) -> Any:
        """The value of ``text`` (a string from the command line, or a value) for this parameter."""
        if not isinstance(text, str):
            value = text
        elif self.type == "bool":
            low = text.strip().lower()
            if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise PluginError(f"parameter {self.name} expects true or false, got {text!r}")
            value = low in ("1", "true", "yes", "on")
        elif self.type in ("int", "float"):
            try:
                value = PARAM_TYPES[self.type](text)
            except ValueError:
                raise PluginError(f"parameter {self.name} expects a number ({self.type}), got {text!r}") from None
        else:
            value = text
        if self.choices and value not in self.choices:
            raise PluginError(f"parameter {self.name} must be one of {', '.join(self.choices)}, got {value!r}")
        return value


@dataclass(frozen=True)
class Manifest:
    """What medviewer knows about a plugin before importing it.

    ``entry`` names the implementation (``"module:Class"``). ``requires`` lists importable module
    names the implementation needs (checked without importing them). ``isolation`` is
    ``"process"`` for heavy models (a child process that cancel can kill and whose crash cannot
    take the viewer down) or ``"thread"`` for light work.
    """

    id: str
    title: str
    kind: str
    entry: str
    description: str = ""
    version: str = "0"
    labels: tuple[Label, ...] = ()
    params: tuple[Param, ...] = ()
    needs_gpu: bool = False
    requires: tuple[str, ...] = ()
    isolation: str = "thread"
    executes_untrusted_code: bool = False
    search_path: str | None = None  # a folder to put on sys.path before importing ``entry``
    also_kinds: tuple[str, ...] = ()  # other kinds it may produce, by its parameters
    api_version: int = API_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "also_kinds", tuple(self.also_kinds))
        for kind in (self.kind, *self.also_kinds):
            if kind not in KINDS:
                raise PluginError(f"plugin {self.id!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if ":" not in self.entry:
            raise PluginError(f"plugin {self.id!r}: entry must be 'module:Class', got {self.entry!r}")
        if self.isolation not in ("thread", "process"):
            raise PluginError(f"plugin {self.id!r}: isolation must be 'thread' or 'process'")
        for p in self.params:
            if p.type not in PARAM_TYPES:
                raise PluginError(f"plugin {self.id!r}: parameter {p.name} has unknown type {p.type!r}")
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "params", tuple(self.params))
        object.__setattr__(self, "requires", tuple(self.requires))

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.params) or "none"
        raise PluginError(f"plugin {self.id} has no parameter {name!r} (it takes: {known})")

    def resolve_params(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overlaid with ``given`` (strings are parsed by type); unknown names refused."""
        values = {p.name: p.default for p in self.params}
        for name, value in (given or {}).items():
            values[name] = self.param(name).parse(value)
        missing = [p.name for p in self.params if p.required and values.get(p.name) in (None, "")]
        if missing:
            raise PluginError(f"plugin {self.id} needs parameter(s) {', '.join(missing)} "
                              f"(give them as --param {missing[0]}=VALUE)")
        return values

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **extra: Any) -> "Manifest":
        """A manifest from JSON-like data (the user plugin folder's ``plugin.json``)."""
        data = dict(data, **extra)
        data["labels"] = tuple(
            Label(int(l["value"]), str(l["name"]), tuple(l.get("color", (255, 0, 0))),
                  tuple(l["code"]) if l.get("code") else None)
            for l in data.get("labels", ()))
        data["params"] = tuple(
            Param(p["name"], p.get("type", "str"), p.get("default"), p.get("help", ""),
                  tuple(p.get("choices", ())), bool(p.get("required", False)), str(p.get("label", "")),
                  str(p.get("unit", "")), bool(p.get("internal", False)))
            for p in data.get("params", ()))
        data["requires"] = tuple(data.get("requires", ()))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise PluginError(f"plugin manifest has unknown field(s): {', '.join(sorted(unknown))}")
        return cls(**data)


@dataclass(frozen=True)
class Availability:
    """Whether a plugin can run here; ``missing`` names what is not there."""

    ok: bool
    missing: tuple[str, ...] = ()
    note: str = ""

    def __bool__(self) -> bool:
        return self.ok

    def describe(self) -> str:
        if self.ok:
            return "available" + (f" ({self.note})" if self.note else "")
        return "unavailable: " + "; ".join(self.missing)


def modules_available(names: Sequence[str]) -> Availability:
    """Availability from importable module names, found without importing them."""
    missing = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(f"needs the Python package {name!r}")
    return Availability(not missing, tuple(missing))


# ---- requests ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prompts:
    """Points the user clicked, in LPS millimetres (for interactive plugins)."""

    positive: tuple[tuple[float, float, float], ...] = ()
    negative: tuple[tuple[float, float, float], ...] = ()

    def __post_init__(self) -> None:
        for name in ("positive", "negative"):
            pts = tuple(tuple(float(c) for c in p) for p in getattr(self, name))
            if any(len(p) != 3 or not np.all(np.isfinite(p)) for p in pts):
                raise PluginError(f"{name} prompts must be finite (x, y, z) points in mm")
            object.__setattr__(self, name, pts)


@dataclass(frozen=True)
class Request:
    """Everything a plugin run gets. Frozen, and picklable for the child process."""

    volume: Volume
    prompts: Prompts = field(default_factory=Prompts)
    params: Mapping[str, Any] = field(default_factory=dict)
    device: str = "cpu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))


# ---- results -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelMapResult:
    """An integer label map on the source grid; ``labels`` names its non-zero values; ``note`` is a
    line for the user about the result (a warning), shown beside it; ``algorithm``, where the
    plugin says, names what made it (a DICOM SEG's Segment Algorithm Name: which of its engines,
    say), else the plugin's id stands for it."""

    label_map: Volume
    labels: tuple[Label, ...] = ()
    note: str = ""
    algorithm: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        self.label_map.array.setflags(write=False)


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in LPS millimetres (``lower`` <= ``upper`` per axis)."""

    lower_mm: tuple[float, float, float]
    upper_mm: tuple[float, float, float]
    label: int
    score: float
    name: str = ""

    def __post_init__(self) -> None:
        lo = tuple(float(c) for c in self.lower_mm)
        hi = tuple(float(c) for c in self.upper_mm)
        object.__setattr__(self, "lower_mm", lo)
        object.__setattr__(self, "upper_mm", hi)
        object.__setattr__(self, "label", int(self.label))
        object.__setattr__(self, "score", float(self.score))

    @property
    def center_mm(self) -> tuple[float, float, float]:
        return tuple((a + b) / 2 for a, b in zip(self.lower_mm, self.upper_mm))  # type: ignore[return-value]

    @property
    def size_mm(self) -> tuple[float, float, float]:
        return tuple(b - a for a, b in zip(self.lower_mm, self.upper_mm))  # type: ignore[return-value]

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "name": self.name, "score": round(self.score, 6),
                "lower_mm": [round(c, 3) for c in self.lower_mm],
                "upper_mm": [round(c, 3) for c in self.upper_mm],
                "center_mm": [round(c, 3) for c in self.center_mm],
                "size_mm": [round(c, 3) for c in self.size_mm]}


@dataclass(frozen=True)
class BoxesResult:
    boxes: tuple[Box, ...]
    labels: tuple[Label, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "boxes", tuple(self.boxes))
        object.__setattr__(self, "labels", tuple(self.labels))


@dataclass(frozen=True)
class ScoresResult:
    """Class scores (name -> score) for the volume, or for a region (``region``: a Box)."""

    scores: Mapping[str, float]
    region: Box | None = None
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "scores", MappingProxyType({str(k): float(v) for k, v in self.scores.items()}))


@dataclass(frozen=True)
class ImageResult:
    """A new image on the source grid (denoised, enhanced, ...)."""

    image: Volume
    description: str = ""

    def __post_init__(self) -> None:
        self.image.array.setflags(write=False)


Result = LabelMapResult | BoxesResult | ScoresResult | ImageResult
RESULT_FOR_KIND = {
    "segmentation": (LabelMapResult,),
    "interactive": (LabelMapResult,),
    "detection": (BoxesResult,),
    "classification": (ScoresResult,),
    "image-to-image": (ImageResult,),
}


# ---- progress and cancel -------------------------------------------------------------------------
class ProgressFn(Protocol):
    def __call__(self, stage: str, fraction: float | None = None) -> None: ...


class CancelToken:
    """Set by the runner when the user cancels; plugins poll ``is_set()`` or call ``check()``."""

    def __init__(self, event: Any | None = None):
        self._event = event if event is not None else threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    __call__ = is_set

    def check(self) -> None:
        """Raise :class:`Cancelled` when cancel was asked for."""
        if self._event.is_set():
            raise Cancelled()


# ---- the implementation base class ---------------------------------------------------------------
class Plugin:
    """Base class of plugin implementations. Subclasses set ``manifest`` and override ``run``.

    The implementation module may import torch/MONAI at its top: it is imported only to run.
    """

    manifest: Manifest

    def is_available(self) -> Availability:
        """Whether this plugin can run here, naming what is missing. Must be cheap."""
        return modules_available(self.manifest.requires)

    def gpu_available(self) -> bool:
        """Whether a CUDA GPU is usable by this plugin (torch plugins ask torch; default: no)."""
        return False

    def resolve_device(self, requested: str | None) -> str:
        """'cpu' or 'cuda' for a request's device: 'auto' picks CUDA when usable; 'cpu' is forced."""
        requested = (requested or "auto").lower()
        if requested == "cpu":
            return "cpu"
        if requested not in ("auto", "cuda") and not requested.startswith("cuda:"):
            raise PluginError(f"unknown device {requested!r} (use cpu, cuda or auto)")
        cuda = self.gpu_available()
        if requested == "auto":
            return "cuda" if cuda else "cpu"
        if not cuda:
            raise PluginError(f"CUDA was asked for but plugin {self.manifest.id} has no usable CUDA GPU here "
                              "(use --device cpu)")
        return requested

    def prepare(self, device: str) -> None:
        """Load weights and move them to ``device`` ('cpu' or 'cuda'). Called once per run."""

    def warm_up(self, params: Mapping[str, Any], device: str) -> None:
        """Optional: do now, in the background, the slow part of a first run with ``params`` (the
        manifest's parameters, resolved) on ``device`` -- import torch, load the weights -- and keep
        it for the runs to come, so that the first run is as quick as the next ones. Called by
        :meth:`Runner.warm` for thread plugins (a process plugin's warm child imports its module
        instead). Default: nothing."""

    def run(self, request: Request, progress: ProgressFn, cancel: CancelToken) -> Result:
        raise NotImplementedError


def check_result(manifest: Manifest, request: Request, result: Any) -> Result:
    """``result`` if it is the right kind of result and fits the source grid; else PluginError."""
    expected = tuple(t for k in (manifest.kind, *manifest.also_kinds) for t in RESULT_FOR_KIND[k])
    if not isinstance(result, expected):
        raise PluginError(f"plugin {manifest.id} ({'/'.join((manifest.kind, *manifest.also_kinds))}) returned {type(result).__name__}, "
                          f"expected {' or '.join(t.__name__ for t in expected)}")
    source = request.volume
    if isinstance(result, LabelMapResult):
        lm = result.label_map
        if not lm.same_grid(source):
            raise PluginError(f"plugin {manifest.id} returned a label map off the source grid "
                              f"({lm.shape} at {lm.origin}, expected {source.shape} at {source.origin})")
        if not (np.issubdtype(lm.array.dtype, np.integer) or lm.array.dtype == bool):
            raise PluginError(f"plugin {manifest.id} returned a label map of type {lm.array.dtype}, "
                              "expected integers")
    elif isinstance(result, ImageResult):
        if not result.image.same_grid(source):
            raise PluginError(f"plugin {manifest.id} returned an image off the source grid")
        if not np.all(np.isfinite(result.image.array)):
            raise PluginError(f"plugin {manifest.id} returned an image with NaN or infinite voxels")
    elif isinstance(result, BoxesResult):
        for b in result.boxes:
            lo, hi = np.asarray(b.lower_mm), np.asarray(b.upper_mm)
            if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo <= hi)
                    and np.isfinite(b.score)):
                raise PluginError(f"plugin {manifest.id} returned an invalid box {b}")
    elif isinstance(result, ScoresResult):
        if not all(np.isfinite(v) for v in result.scores.values()):
            raise PluginError(f"plugin {manifest.id} returned a non-finite score")
    return result


ProgressCallback = Callable[[str, float | None], None]
