"""What `medviewer segment` remembers of its last run on an image, so that a run with one more
click corrects that run's mask, whatever OUT it writes to.

The window sends the segment's mask with each click, and `segment` reads the mask in OUT when it
replaces it (medviewer.segmentation.corrections: a corrective click changes the mask only near
itself). A caller that writes each click's result to a new file (the reference robot user,
``tools/click_eval.py``, writes pred1, pred2, ...) gave the engine no previous mask: each run
outlined the lesion afresh from all the clicks, and a corrective click could undo what was right
(with the v0.5.0 weights, STS_024 0.859 -> 0.714 at the second click, STS_019 0.660 -> 0.524 at
the third).

So each run leaves, per image and engine, its clicks and its mask in the user's cache
(``$MEDVIEWER_SEGMENT_MEMORY`` or ``<cache>/medviewer/segment-memory``). A later run on the same
image, with the same engine, whose clicks *extend* the remembered ones (the same positive and
negative points first, in order, then more) takes that mask as the one its new clicks correct.
Anything else (another image, grid or engine, clicks that do not extend them, ``--fresh``)
starts afresh. Only the most recent runs are kept (:data:`KEEP`); a damaged entry is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time

import numpy as np

#: how many images' last runs are kept
KEEP = 16


def memory_dir() -> str:
    from medviewer.core.settings import default_cache_dir

    return os.environ.get("MEDVIEWER_SEGMENT_MEMORY") or os.path.join(default_cache_dir(), "segment-memory")


def _key(image_path: str, series: str | None, engine: str) -> str:
    text = json.dumps([os.path.abspath(image_path), series or "", engine])
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def _grid(volume) -> list:
    return [list(volume.shape), [round(float(v), 4) for v in volume.spacing],
            [round(float(v), 3) for v in volume.origin],
            [round(float(v), 5) for v in np.asarray(volume.direction).ravel()]]


def _points(points) -> list:
    return [[round(float(v), 3) for v in p] for p in points]


def recall(image_path: str, series: str | None, engine: str, volume, positives, negatives):
    """The mask of the last run on this image and engine whose clicks the given ones extend, and
    how many clicks that run had; (None, 0) when there is none."""
    folder = os.path.join(memory_dir(), _key(image_path, series, engine))
    try:
        with open(os.path.join(folder, "run.json")) as fh:
            run = json.load(fh)
        pos, neg = _points(positives), _points(negatives)
        before_pos, before_neg = run["positives"], run["negatives"]
        extends = (pos[:len(before_pos)] == before_pos and neg[:len(before_neg)] == before_neg
                   and len(before_pos) + len(before_neg) < len(pos) + len(neg))
        if not extends or run["grid"] != _grid(volume):
            return None, 0
        with np.load(os.path.join(folder, "mask.npz")) as data:
            mask = np.unpackbits(data["bits"], count=int(np.prod(volume.shape))).reshape(volume.shape).astype(bool)
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError):
        return None, 0
    return (mask, len(before_pos) + len(before_neg)) if mask.any() else (None, 0)


def remember(image_path: str, series: str | None, engine: str, volume, positives, negatives,
             mask: np.ndarray) -> None:
    """Keep this run's clicks and mask for the next run on the same image (best effort: a cache
    that cannot be written is no reason to fail the run)."""
    root = memory_dir()
    folder = os.path.join(root, _key(image_path, series, engine))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npz")
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, bits=np.packbits(np.asarray(mask, bool).ravel()))
        os.replace(tmp, os.path.join(folder, "mask.npz"))
        run = {"image": os.path.abspath(image_path), "series": series or "", "engine": engine,
               "grid": _grid(volume), "positives": _points(positives), "negatives": _points(negatives),
               "time": time.time()}
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(run, fh)
        os.replace(tmp, os.path.join(folder, "run.json"))
        _prune(root)
    except OSError:
        pass


def _prune(root: str) -> None:
    import shutil

    entries = sorted((os.path.getmtime(os.path.join(root, e)), e) for e in os.listdir(root)
                     if os.path.isdir(os.path.join(root, e)))
    for _, name in entries[:-KEEP]:
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)
