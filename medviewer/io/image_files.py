"""NIfTI, NRRD and MetaImage (MHA/MHD) files <-> Volume, geometry kept, written atomically."""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np

from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def image_suffix(path: str | os.PathLike) -> str | None:
    """The image-file suffix of ``path`` ('.nii.gz', '.nrrd', ...) or None."""
    name = os.fspath(path).lower()
    return next((s for s in IMAGE_SUFFIXES if name.endswith(s)), None)


def read_image(path: str | os.PathLike) -> Volume:
    """Read a 3D NIfTI/NRRD/MHA/MHD image (SimpleITK converts NIfTI's RAS to LPS)."""
    import SimpleITK as sitk

    path = os.fspath(path)
    if image_suffix(path) is None:
        raise MedviewerError(f"not an image file (expected one of {', '.join(IMAGE_SUFFIXES)})", path)
    if not os.path.isfile(path):
        raise MedviewerError("no such file", path)
    try:
        image = sitk.ReadImage(path)
    except RuntimeError as exc:
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        raise MedviewerError(f"cannot be read as an image ({lines[-1] if lines else exc})", path) from None
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    if image.GetDimension() != 3:
        raise MedviewerError(f"a {image.GetDimension()}D image; only 3D volumes are supported", path)
    try:
        return Volume.from_sitk(image, meta={"source_file": path})
    except MedviewerError as exc:
        raise MedviewerError(exc.message, path) from None


def write_image(volume: Volume, path: str | os.PathLike, *, force: bool = False,
                compress: bool = True) -> str:
    """Write ``volume`` to ``path`` by its suffix. Nothing is left behind on failure.

    The file appears only when complete (temporary file, then rename); an existing file is
    replaced only with ``force``.
    """
    import SimpleITK as sitk

    path = os.fspath(path)
    suffix = image_suffix(path)
    if suffix is None:
        raise MedviewerError(f"unknown image format (use one of {', '.join(IMAGE_SUFFIXES)})", path)
    if os.path.exists(path) and not force:
        raise MedviewerError("already exists (use --force to replace it)", path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise MedviewerError("folder does not exist", folder)
    array = volume.array
    if array.dtype == bool:
        array = array.astype(np.uint8)
    image = volume.with_array(array).to_sitk()
    try:
        staging = tempfile.mkdtemp(prefix=".medviewer-", dir=folder)
    except OSError as exc:
        raise MedviewerError(f"cannot write here ({exc.strerror or exc})", folder) from None
    try:
        target = os.path.join(staging, os.path.basename(path))
        sitk.WriteImage(image, target, useCompression=compress)
        written = sorted(os.listdir(staging), key=lambda n: n == os.path.basename(path))
        for name in written:  # data files (.raw) first, the header that names them last
            os.replace(os.path.join(staging, name), os.path.join(folder, name))
    except (RuntimeError, OSError) as exc:
        text = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[-1]
        raise MedviewerError(f"could not be written ({text})", path) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path
