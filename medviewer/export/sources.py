"""The DICOM source images of a loaded Volume, in the Volume's slice order."""

from __future__ import annotations

import os

from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume


def source_paths(volume: Volume) -> list[str]:
    """File of each distinct source instance of ``volume``, in slice order (one per multi-frame)."""
    from medviewer.io.dicom_index import index_folder

    folder = volume.meta.get("source_folder")
    uids = volume.source_sop_instance_uids
    if not folder or not uids:
        raise MedviewerError("this image was not loaded from DICOM: a DICOM SEG/RTSTRUCT needs the "
                             "source DICOM series (open the series folder, not a NIfTI/NRRD file)")
    if not os.path.isdir(folder):
        raise MedviewerError("the source series folder is gone", folder)
    index = index_folder(folder)
    by_uid = {h.sop_instance_uid: h.path for s in index.all_series() for h in s.instances}
    ordered: list[str] = []
    for uid in uids:
        if uid not in by_uid:
            raise MedviewerError(f"source image {uid} is no longer in the series folder", folder)
        if not ordered or ordered[-1] != by_uid[uid]:
            ordered.append(by_uid[uid])
    return ordered


def source_datasets(volume: Volume, *, pixels: bool = False, first_only: bool = False) -> list:
    """pydicom datasets of the source images, in slice order (headers only unless ``pixels``;
    ``first_only``: the first slice's alone)."""
    import pydicom

    out = []
    paths = source_paths(volume)
    for path in paths[:1] if first_only else paths:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=not pixels)
        except Exception as exc:
            raise MedviewerError(f"source image unreadable ({exc})", path) from None
        missing = [k for k in REFERENCE_UIDS if not str(getattr(ds, k, "") or "").strip()]
        if missing:
            raise MedviewerError(
                f"source image has no {', '.join(missing)} (anonymised without its UIDs): a DICOM SEG, "
                "RTSTRUCT or SR references its source images by them; export a label map "
                "(.nii.gz or .nrrd) instead", path)
        out.append(ds)
    return out


# What a derived object (SEG, RTSTRUCT, SR) needs of each source image to reference it.
REFERENCE_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
