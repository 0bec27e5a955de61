"""Test plugins for the plugin panel (imported through their manifests' search_path)."""

import time

import numpy as np

from medviewer.plugins.api import Box, BoxesResult, Label, LabelMapResult, Manifest, Param, Plugin

HERE = __file__.rsplit("/", 1)[0]

#: label 1 green, label 2 magenta: colours no CT grey can take
LABELS = (Label(1, "left blob", (0, 255, 0)), Label(2, "right blob", (255, 0, 255)))
BOX_LABELS = (Label(1, "nodule", (0, 255, 255)),)


def manifest(pid="fake-lesions", isolation="thread", entry="Fake"):
    return Manifest(
        id=pid, title=f"Fake lesions ({pid})", kind="segmentation", also_kinds=("detection",),
        entry=f"ui_test_plugins:{entry}", search_path=HERE, isolation=isolation, labels=LABELS,
        params=(Param("output", "choice", "mask", choices=("mask", "boxes")),
                Param("seconds", "float", 0.0, "how long to work before answering"),
                Param("size_mm", "float", 8.0)))


def blob_centres(volume, cursor):
    """Label 1 at 30 mm to the patient's left of ``cursor``, label 2 at 30 mm to the right."""
    c = np.asarray(cursor, float)
    return {1: c + (30.0, 0, 0), 2: c - (30.0, 0, 0)}


class Fake(Plugin):
    """Works ``seconds`` in small cancellable steps, then returns blobs or a box at the prompt."""

    def run(self, request, progress, cancel):
        volume = request.volume
        seconds = float(request.params["seconds"])
        size = float(request.params["size_mm"])
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            cancel.check()
            progress("thinking", 1.0 - (end - time.monotonic()) / max(seconds, 1e-6))
            time.sleep(0.02)
        cursor = request.prompts.positive[0]
        if request.params["output"] == "boxes":
            c = np.asarray(cursor, float)
            return BoxesResult((Box(tuple(c - size), tuple(c + size), 1, 0.93, "nodule"),), BOX_LABELS)
        labels = np.zeros(volume.shape, np.uint8)
        for value, centre in blob_centres(volume, cursor).items():
            z, y, x = volume.patient_to_voxel(centre)
            r = np.ceil(size / np.asarray(volume.spacing)[::-1]).astype(int)
            labels[z - r[0]:z + r[0] + 1, y - r[1]:y + r[1] + 1, x - r[2]:x + r[2] + 1] = value
        return LabelMapResult(volume.with_array(labels), LABELS)


class Raises(Plugin):
    def run(self, request, progress, cancel):
        progress("about to fail", 0.5)
        raise ValueError("the model file is corrupt")
