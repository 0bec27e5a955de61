"""NIfTI, NRRD and MetaImage (MHA/MHD) files <-> Volume, geometry kept, written atomically."""

from __future__ import annotations

import math
import os
import shutil
import tempfile

import numpy as np

from medviewer.core.errors import MedviewerError, printable
from medviewer.core.volume import Volume
from medviewer.io.guard import check_regular, guarded, one_line, open_regular

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
# An image file whose header announces more voxels than this many bytes (as float64) is refused
# before it is read: a damaged size field must not allocate gigabytes.
MAX_IMAGE_BYTES = 8 << 30


def image_suffix(path: str | os.PathLike) -> str | None:
    """The image-file suffix of ``path`` ('.nii.gz', '.nrrd', ...) or None."""
    name = os.fspath(path).lower()
    return next((s for s in IMAGE_SUFFIXES if name.endswith(s)), None)


def read_image(path: str | os.PathLike) -> Volume:
    """Read a 3D NIfTI/NRRD/MHA/MHD image (SimpleITK converts NIfTI's RAS to LPS)."""
    path = os.fspath(path)
    if image_suffix(path) is None:
        raise MedviewerError(f"not an image file (expected one of {', '.join(IMAGE_SUFFIXES)})", path)
    if not os.path.lexists(path):
        raise MedviewerError("no such file", path)
    with guarded(path, "image file"):
        return _read_checked(path)


def _read_checked(path: str) -> Volume:
    """Read inside the guard: a regular file only, of a size its header can account for, and
    every error the reader raises becomes one line naming the file."""
    import SimpleITK as sitk

    check_regular(path)
    for data_file in _detached_data_files(path):
        try:  # a header may name a pipe or a device as its data: never opened
            check_regular(data_file)
        except MedviewerError as exc:
            raise MedviewerError(f"its data file {printable(data_file)}: {exc.message}", path) from None
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(path)
        reader.ReadImageInformation()
        size = reader.GetSize()
        voxels = math.prod(size) * reader.GetNumberOfComponents()
        if not size or min(size) <= 0 or voxels * 8 > _memory_cap():
            raise MedviewerError(f"absurd image size {' x '.join(map(str, size))} in the header")
        image = reader.Execute()
    except RuntimeError as exc:
        raise MedviewerError(f"cannot be read as an image ({one_line(exc)})", path) from None
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    if image.GetDimension() != 3:
        raise MedviewerError(f"a {image.GetDimension()}D image; only 3D volumes are supported", path)
    _check_geometry(image, path)
    return Volume.from_sitk(image, meta={"source_file": path})


def _detached_data_files(path: str) -> list[str]:
    """The data files a NRRD or MetaImage header names (``data file:`` / ``ElementDataFile =``),
    made absolute; [] for NIfTI and for data kept in the header's own file."""
    if not path.lower().endswith((".nrrd", ".nhdr", ".mha", ".mhd")):
        return []
    with open_regular(path) as f:
        head = f.read(1 << 16).decode("latin-1")
    lines = head.splitlines()
    for n, line in enumerate(lines):
        key, sep, value = line.partition("=" if path.lower().endswith((".mha", ".mhd")) else ":")
        if not sep or key.strip().lower() not in ("elementdatafile", "data file", "datafile"):
            continue
        value = value.strip()
        if value.upper() in ("LOCAL", ""):
            return []
        if value.upper().startswith("LIST"):
            names = [ln.strip() for ln in lines[n + 1:] if ln.strip()]
        elif "%" in value:
            raise MedviewerError(f"data file pattern {value!r} is not supported")
        else:
            names = [value]
        folder = os.path.dirname(os.path.abspath(path))
        return [os.path.join(folder, name) for name in names]
    return []


def _memory_cap() -> int:
    """MAX_IMAGE_BYTES, or half the machine's memory where that is less."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return MAX_IMAGE_BYTES
    return min(MAX_IMAGE_BYTES, physical // 2)


def _check_geometry(image, path: str) -> None:
    """Finite, positive spacing; a finite origin; an orthonormal direction: refused naming the
    file before a Volume is built from them."""
    spacing, origin = np.asarray(image.GetSpacing()), np.asarray(image.GetOrigin())
    direction = np.asarray(image.GetDirection()).reshape(image.GetDimension(), image.GetDimension())
    if not (np.all(np.isfinite(spacing)) and np.all(spacing > 0)):
        raise MedviewerError(f"voxel spacing {tuple(spacing.tolist())} is not positive and finite", path)
    if not np.all(np.isfinite(origin)):
        raise MedviewerError(f"origin {tuple(origin.tolist())} is not finite", path)
    if not (np.all(np.isfinite(direction)) and np.allclose(direction.T @ direction, np.eye(len(direction)), atol=1e-3)):
        raise MedviewerError("the direction matrix is not orthonormal (sheared, degenerate or not finite)", path)


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
