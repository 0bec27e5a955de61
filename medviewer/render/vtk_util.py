"""numpy <-> VTK for Volumes, matrices, and reading pixels back from a render window."""

from __future__ import annotations

import os
import tempfile
import weakref

import numpy as np
from vtkmodules.util import numpy_support
from vtkmodules.vtkCommonDataModel import vtkImageData
from vtkmodules.vtkCommonMath import vtkMatrix4x4
from vtkmodules.vtkIOImage import vtkPNGWriter
from vtkmodules.vtkRenderingCore import vtkWindowToImageFilter

from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume

_IMAGES: "weakref.WeakKeyDictionary[Volume, vtkImageData]" = weakref.WeakKeyDictionary()


def local_image(volume: Volume) -> vtkImageData:
    """The volume's voxels as vtkImageData in its *local* frame (origin 0, identity direction,
    the volume's spacing). ``local_to_patient(volume)`` takes that frame to LPS mm.

    Cached per Volume object; the voxels are shared with the numpy array, not copied (when the
    array is contiguous).
    """
    image = _IMAGES.get(volume)
    if image is None:
        array = volume.array
        if array.dtype == bool:
            array = array.astype(np.uint8)
        if array.dtype == np.float16 or array.dtype == np.int64 or array.dtype == np.uint64:
            array = array.astype(np.float32 if array.dtype == np.float16 else np.int32)
        array = np.ascontiguousarray(array)
        z, y, x = array.shape
        image = vtkImageData()
        image.SetDimensions(x, y, z)
        image.SetSpacing(volume.spacing)
        image.SetOrigin(0.0, 0.0, 0.0)
        scalars = numpy_support.numpy_to_vtk(array.reshape(-1), deep=False)
        scalars.SetName("scalars")
        image.GetPointData().SetScalars(scalars)
        image._numpy_keepalive = array  # the VTK array points into it
        _IMAGES[volume] = image
    return image


def local_to_patient(volume: Volume) -> np.ndarray:
    """4 x 4 matrix from the local frame of :func:`local_image` to LPS mm."""
    m = np.eye(4)
    m[:3, :3] = volume.direction
    m[:3, 3] = volume.origin
    return m


def vtk_matrix(m: np.ndarray) -> vtkMatrix4x4:
    out = vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            out.SetElement(r, c, float(m[r, c]))
    return out


def capture(render_window) -> np.ndarray:
    """The pixels of ``render_window`` as an (height, width, 3) uint8 array, top row first."""
    render_window.Render()
    grab = vtkWindowToImageFilter()
    grab.SetInput(render_window)
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.Update()
    image = grab.GetOutput()
    w, h, _ = image.GetDimensions()
    pixels = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(h, w, -1)
    return np.ascontiguousarray(pixels[::-1, :, :3])


def save_png(pixels: np.ndarray, path: str | os.PathLike) -> str:
    """Write an (h, w, 3) uint8 array to a PNG atomically; returns the path."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise MedviewerError("folder does not exist", folder)
    h, w = pixels.shape[:2]
    image = vtkImageData()
    image.SetDimensions(w, h, 1)
    flat = np.ascontiguousarray(pixels[::-1, :, :3]).reshape(-1, 3)
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(flat, deep=True))
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=folder, prefix=".screenshot-")
    os.close(fd)
    try:
        writer = vtkPNGWriter()
        writer.SetFileName(tmp)
        writer.SetInputData(image)
        writer.Write()
        if writer.GetErrorCode():
            raise MedviewerError("could not write the PNG", path)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp made it private; give it the usual file mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def lines_polydata_arrays(points: np.ndarray, segments: np.ndarray):
    """(points (n, 3), segments (m, 2) of point ids) -> vtkPoints, vtkCellArray of lines."""
    from vtkmodules.vtkCommonCore import vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkCellArray

    pts = vtkPoints()
    pts.SetData(numpy_support.numpy_to_vtk(np.ascontiguousarray(points, dtype=float), deep=True))
    cells = vtkCellArray()
    if len(segments):
        offsets = np.arange(0, 2 * len(segments) + 1, 2, dtype=np.int64)
        conn = np.ascontiguousarray(segments, dtype=np.int64).ravel()
        cells.SetData(numpy_support.numpy_to_vtkIdTypeArray(offsets, deep=True),
                      numpy_support.numpy_to_vtkIdTypeArray(conn, deep=True))
    return pts, cells
