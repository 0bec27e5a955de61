"""Segments in progress kept on disk, so that a crash or a power cut loses none of them.

The segment editor saves its label map and segment table here a moment after each edit; once
they are exported (or the user discards them) the copy goes. Opening the same series again with
a copy left behind offers to recover it.

One folder per image: ``$MEDVIEWER_RECOVERY_DIR`` (tests) or ``<cache>/recovery``, holding
``<key>/labels.nrrd`` (the label map, compressed) and ``<key>/segments.json`` (names, colours,
when, and the image's grid, checked on reading). The key is the series' Series Instance UID (or,
for an image file, its path) with the grid's shape. A folder is written whole and then renamed
into place: a crash while saving leaves the previous copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from medviewer.core.errors import MedviewerError
from medviewer.core.segments import Segment
from medviewer.core.settings import default_cache_dir
from medviewer.core.volume import Volume


def recovery_root() -> str:
    return os.environ.get("MEDVIEWER_RECOVERY_DIR") or os.path.join(default_cache_dir(), "recovery")


def recovery_key(volume: Volume) -> str | None:
    """The folder name for ``volume``'s segments; None when the image cannot be told apart
    (no Series Instance UID, no source path)."""
    source = volume.meta.get("source_file")
    ident = volume.meta.get("series_instance_uid") or (os.path.abspath(source) if source else None)
    if not ident:
        return None
    text = f"{ident}|{'x'.join(str(n) for n in volume.shape)}"
    return hashlib.sha1(text.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Recovered:
    path: str
    saved_at: float           # seconds since the epoch
    segments: list[Segment]

    @property
    def age_text(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.saved_at))


def _grid(volume: Volume) -> dict:
    return {"shape": list(volume.shape), "spacing": [round(s, 6) for s in volume.spacing],
            "origin": [round(o, 4) for o in volume.origin]}


def save_recovery(volume: Volume, labels: np.ndarray, segments: Sequence[Segment]) -> str | None:
    """Keep ``labels`` (on ``volume``'s grid) and ``segments``; returns the folder, or None when
    the image has no key. Replaces the previous copy whole."""
    import SimpleITK as sitk

    key = recovery_key(volume)
    if key is None:
        return None
    root = recovery_root()
    os.makedirs(root, exist_ok=True)
    target = os.path.join(root, key)
    staging = tempfile.mkdtemp(prefix=".saving-", dir=root)
    try:
        labels = np.asarray(labels)
        kept = labels if labels.dtype in (np.uint8, np.uint16) else labels.astype(np.uint16)
        image = sitk.GetImageFromArray(np.ascontiguousarray(kept))
        sitk.WriteImage(image, os.path.join(staging, "labels.nrrd"), useCompression=True)
        table = {"format": "medviewer recovery", "version": 1, "saved_at": time.time(),
                 "series_instance_uid": volume.meta.get("series_instance_uid"),
                 "source_file": volume.meta.get("source_file"), "grid": _grid(volume),
                 "segments": [s.to_dict() for s in segments]}
        with open(os.path.join(staging, "segments.json"), "w") as f:
            json.dump(table, f)
        old = None
        if os.path.exists(target):
            old = target + ".old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(staging, target)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def find_recovery(volume: Volume) -> Recovered | None:
    """The segments kept for ``volume``, if any (and on its grid)."""
    key = recovery_key(volume)
    if key is None:
        return None
    folder = os.path.join(recovery_root(), key)
    if not os.path.exists(folder) and os.path.exists(folder + ".old"):
        folder += ".old"   # a crash between the two renames of a save
    try:
        with open(os.path.join(folder, "segments.json")) as f:
            table = json.load(f)
    except (OSError, ValueError):
        return None
    if table.get("grid") != _grid(volume):
        return None
    segments = [Segment.from_dict(d) for d in table.get("segments", [])]
    return Recovered(folder, float(table.get("saved_at", 0.0)), segments)


def load_recovery(found: Recovered, volume: Volume) -> np.ndarray:
    """The kept label map (uint16, on ``volume``'s grid)."""
    import SimpleITK as sitk

    path = os.path.join(found.path, "labels.nrrd")
    try:
        array = sitk.GetArrayFromImage(sitk.ReadImage(path))
    except RuntimeError as exc:
        raise MedviewerError(f"the kept segments cannot be read ({str(exc).splitlines()[0]})", path) from None
    if array.shape != volume.shape:
        raise MedviewerError(f"the kept segments lie on another grid ({array.shape})", path)
    return array


def discard_recovery(volume: Volume) -> None:
    """Remove what is kept for ``volume`` (exported, or discarded by the user)."""
    key = recovery_key(volume)
    if key is not None:
        for folder in (os.path.join(recovery_root(), key), os.path.join(recovery_root(), key + ".old")):
            shutil.rmtree(folder, ignore_errors=True)
