"""STL surfaces of a segment: writing them, and the exact outline of its voxels (numpy only).

``voxel_surface`` is the exact boundary of the voxels (blocky, watertight, outward-facing, in
patient LPS millimetres), so its enclosed volume equals the segment's voxel volume. The smoothed
surface the export writes by default (the 3D view's) comes from the render layer
(``medviewer.render.surface``, VTK), which this core module does not import.
"""

from __future__ import annotations

import os

import numpy as np

from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume
from medviewer.core.atomic import atomic_path

_STL_TRIANGLE = np.dtype([("normal", "<f4", (3,)), ("vertices", "<f4", (3, 3)), ("attribute", "<u2")])


def voxel_surface(mask: np.ndarray, volume: Volume) -> np.ndarray:
    """Triangles (n, 3, 3) in LPS mm bounding the voxels of ``mask`` ([z, y, x] on ``volume``)."""
    m = np.pad(np.asarray(mask, dtype=bool).transpose(2, 1, 0), 1)  # index order (i, j, k)
    quads = []
    for a, b, c in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
        d = np.diff(m.astype(np.int8), axis=a)
        for sign in (1, -1):  # 1: entering the mask along +a (face looks to -a)
            where = np.argwhere(d == sign).astype(float) - 1.0  # back to unpadded indices
            if where.size == 0:
                continue
            where[:, a] += 0.5  # the face lies between voxel p-1 and p
            corners = np.repeat(where[:, None, :], 4, axis=1)
            for n, (db, dc) in enumerate(((-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5))):
                corners[:, n, b] += db
                corners[:, n, c] += dc
            if sign == 1:
                corners = corners[:, ::-1]  # counter-clockwise seen from outside (-a)
            quads.append(corners)
    if not quads:
        return np.zeros((0, 3, 3))
    q = np.concatenate(quads)
    tri = np.concatenate([q[:, [0, 1, 2]], q[:, [0, 2, 3]]])
    if np.linalg.det(volume.direction) < 0:
        tri = tri[:, ::-1]
    return volume.index_to_patient(tri)


def enclosed_volume_ml(triangles: np.ndarray) -> float:
    """Signed volume of a closed triangle mesh (positive when its faces look outward)."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0 / 1000.0)


def write_stl(labels: Volume, label: int, out: str | os.PathLike, *, force: bool = False,
              name: str = "medviewer segment", triangles: np.ndarray | None = None) -> str:
    """Write segment ``label``'s surface as binary STL (atomic): ``triangles`` (n, 3, 3) in LPS
    mm, outward-facing, or else the outline of its voxels."""
    if triangles is None:
        triangles = voxel_surface(np.asarray(labels.array) == label, labels)
    if len(triangles) == 0:
        raise MedviewerError(f"segment {label} is empty: no surface to write", out)
    records = np.zeros(len(triangles), dtype=_STL_TRIANGLE)
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    records["normal"] = normals
    records["vertices"] = triangles
    header = f"{name} (LPS mm) written by medviewer".encode("ascii", "replace")[:80].ljust(80, b" ")
    with atomic_path(out, force) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(header)
            fh.write(np.uint32(len(records)).tobytes())
            fh.write(records.tobytes())
    return os.fspath(out)


def read_stl(path: str | os.PathLike) -> np.ndarray:
    """Triangles (n, 3, 3) of a binary STL file (for checks)."""
    with open(path, "rb") as fh:
        fh.read(80)
        count = int(np.frombuffer(fh.read(4), "<u4")[0])
        records = np.frombuffer(fh.read(count * _STL_TRIANGLE.itemsize), dtype=_STL_TRIANGLE)
    return records["vertices"].astype(float)
