"""The MONAI bundles medviewer knows, and the user's model folder (read only: nothing is run,
torch is not imported; downloads live in medviewer_plugins/monai_bundle/download.py).

Known bundles: the shipped click engine (``resources/click_segment_bundle``), every bundle in the
user's model folder (where ``medviewer models get`` installs them), and the trusted folders
(:mod:`medviewer.plugins.trust`) that are bundles or hold bundles. The model folder is
``$MEDVIEWER_MODELS_DIR``, else the settings' ``"models_folder"``, else ``~/.medviewer/models``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from medviewer.core.errors import MedviewerError

CONFIG_NAMES = ("inference.json", "inference.yaml", "inference.yml")
SETTINGS_KEY = "models_folder"


def models_folder() -> Path:
    env = os.environ.get("MEDVIEWER_MODELS_DIR")
    if env:
        return Path(env).expanduser()
    from medviewer.core.settings import load_settings

    configured = load_settings().extra.get(SETTINGS_KEY)
    if isinstance(configured, str) and configured:
        return Path(configured).expanduser()
    return Path.home() / ".medviewer" / "models"


def config_file(folder: str | os.PathLike) -> Path | None:
    configs = Path(folder) / "configs"
    return next((configs / n for n in CONFIG_NAMES if (configs / n).is_file()), None)


def is_bundle(folder: str | os.PathLike) -> bool:
    return config_file(folder) is not None


def bundle_kind(folder: str | os.PathLike) -> str | None:
    """What the bundle's network does, from its inference config text (read, not executed):
    "vista3d" and "deepedit" (click engines), "click" (our own learned click engine's layout),
    "detection", "segmentation", or None where there is no inference config."""
    config = config_file(folder)
    if config is None:
        return None
    try:
        text = config.read_text(encoding="utf-8")
    except OSError:
        return None
    if "Vista3dInferer" in text or ("vista3d" in text.lower() and "use_point_window" in text):
        return "vista3d"
    if "DeepEdit" in text:
        return "deepedit"
    if "model_spacing_xyz" in text and "patch_size_zyx" in text:
        return "click"
    return "detection" if "detector" in text else "segmentation"


@dataclass(frozen=True)
class BundleInfo:
    name: str
    version: str
    path: str
    where: str  # "shipped", "model folder" or "trusted folder"
    kind: str
    has_weights: bool

    @property
    def click_engine(self) -> bool:
        return self.kind in ("deepedit", "vista3d")

    def describe(self) -> str:
        weights = "" if self.has_weights else ", no weights (models/model.pt)"
        use = "click engine" if self.click_engine or self.kind == "click" else self.kind
        return f"{self.name} {self.version or '?'} ({use}, {self.kind if self.click_engine else self.where}{weights})"


def read_info(folder: str | os.PathLike, where: str) -> BundleInfo:
    folder = Path(folder)
    meta = {}
    try:
        meta = json.loads((folder / "configs" / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    models = folder / "models"
    weights = any((models / n).is_file() for n in ("model.pt", "model.ts"))
    return BundleInfo(folder.name, str(meta.get("version", "")), os.path.realpath(folder), where,
                      bundle_kind(folder) or "?", weights)


def _bundles_in(root: Path) -> list[Path]:
    if is_bundle(root):
        return [root]
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and is_bundle(p))


def known_bundles() -> list[BundleInfo]:
    """Every bundle medviewer knows, each folder once (shipped, model folder, trusted folders)."""
    from medviewer.core.resources import resource_path
    from medviewer.plugins.trust import trusted_folders

    found: dict[str, BundleInfo] = {}
    sources = [(resource_path("click_segment_bundle"), "shipped"), (models_folder(), "model folder")]
    sources += [(Path(f), "trusted folder") for f in trusted_folders()]
    for root, where in sources:
        for folder in _bundles_in(Path(root)):
            info = read_info(folder, where)
            found.setdefault(info.path, info)
    return list(found.values())


def find_bundle(name_or_path: str) -> str:
    """The folder of a bundle given by its folder or by its name among the known bundles."""
    if os.path.isdir(os.path.expanduser(name_or_path)):
        return os.path.realpath(os.path.expanduser(name_or_path))
    matches = [b for b in known_bundles() if b.name == name_or_path]
    if not matches:
        raise MedviewerError(f"no bundle named {name_or_path!r} (see `medviewer models`; "
                             f"`medviewer models get {name_or_path}` downloads one)")
    return matches[0].path


def click_engine_folders() -> list[str]:
    """The known DeepEdit and VISTA3D bundles' folders: engines the click tool can offer."""
    return [b.path for b in known_bundles() if b.click_engine]


def click_params(choice: str) -> dict:
    """The click-segment plugin's parameters for an engine as a user picks it (the window's
    engine choice, ``medviewer segment --engine``): an engine name, or a bundle folder, which the
    plugin runs as its learned engine's ``bundle`` (a DeepEdit or VISTA3D bundle: that network)."""
    if os.path.isdir(choice):
        return {"engine": "learned", "bundle": choice}
    return {"engine": choice}
