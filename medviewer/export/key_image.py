"""A screenshot as a DICOM Secondary Capture image in the study it shows (highdicom): a key image
that every PACS viewer displays, overlays and all, where a SEG or an SR may not be shown.

The image carries the patient and study of the series it was taken from, in a series of its own;
it is RGB, marked as having burned-in annotation (the orientation letters, the measurements). A
single 2D view states its patient orientation (the directions of its rows and columns, in the
radiological convention of the views); a layout of several views, or the 3D view, leaves it empty.
"""

from __future__ import annotations

import os

import numpy as np

from medviewer import __version__
from medviewer.core.atomic import check_target, write_dataset
from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume
from medviewer.export.common import tidy_copied_attributes

#: the directions of a 2D view's rows (left to right) and columns (top to bottom) on screen
VIEW_ORIENTATION = {"axial": ("L", "P"), "coronal": ("L", "F"), "sagittal": ("P", "F")}


def build_key_image(pixels: np.ndarray, volume: Volume, *, view: str | None = None,
                    description: str = "medviewer key images", series_number: int = 305):
    """A Secondary Capture dataset of ``pixels`` ((h, w, 3) uint8) in ``volume``'s study;
    ``view``: the 2D view it shows (its patient orientation), None for several views or 3D."""
    import highdicom as hd

    from medviewer.export.sources import source_datasets

    pixels = np.ascontiguousarray(np.asarray(pixels)[..., :3], dtype=np.uint8)
    if pixels.ndim != 3 or min(pixels.shape[:2]) < 1:
        raise MedviewerError(f"a key image needs an (h, w, 3) picture, got shape {pixels.shape}")
    if not volume.source_sop_instance_uids:
        raise MedviewerError("a DICOM key image belongs to the DICOM study it shows, and this image was "
                             "not read from DICOM: save the screenshot as .png")
    reference = source_datasets(volume, first_only=True)[0]   # the study's attributes: one header will do
    orientation = VIEW_ORIENTATION.get(view or "", ("L", "P"))
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=reference, pixel_array=pixels, photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", patient_orientation=orientation,
        series_instance_uid=hd.UID(), series_number=series_number, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="medviewer")
    if view not in VIEW_ORIENTATION:
        sc.PatientOrientation = None   # type 2: known to be empty (a layout of views, or 3D)
    # Laterality, type 2C: the source's, else empty (unknown: dciodvfy wants it present for any CT)
    sc.Laterality = str(reference.get("Laterality", "") or "") or None
    sc.BurnedInAnnotation = "YES"
    sc.SeriesDescription = description[:64]
    sc.SoftwareVersions = __version__
    tidy_copied_attributes(sc)
    return sc


def write_key_image(pixels: np.ndarray, volume: Volume, path: str | os.PathLike, *, view: str | None = None,
                    force: bool = False) -> str:
    """Write ``pixels`` as a DICOM key image (Secondary Capture) at ``path``, atomically."""
    path = os.fspath(path)
    check_target(path, force)
    try:
        sc = build_key_image(pixels, volume, view=view)
    except MedviewerError as exc:
        raise MedviewerError(exc.message, path) from None
    return write_dataset(path, sc, force=force)
