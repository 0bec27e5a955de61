"""A voxel array that carries its geometry: the one place index <-> patient mm is converted.

Conventions (the only ones in the project):

* ``array`` is indexed ``[z, y, x]`` (slice, row, column), as numpy and SimpleITK's
  ``GetArrayFromImage`` give it.
* ``spacing``, ``origin`` and continuous indices ``ijk`` are in ``(x, y, z)`` order
  (column, row, slice), as ITK and DICOM give them.
* Patient coordinates are DICOM LPS millimetres (the frame of Image Position Patient).
* ``direction`` is a 3 x 3 matrix whose *columns* are the LPS unit vectors of the i, j and k
  index axes (ITK's convention): ``patient = origin + direction @ (spacing * ijk)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np

from medviewer.core.errors import MedviewerError

_GEOMETRY_TOLERANCE = 1e-4


def _frozen_mapping(m: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(m or {}))


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D image on a regular grid in patient space.

    ``meta`` holds descriptive fields (patient_id, study_instance_uid, series_instance_uid,
    series_description, ...); ``source_sop_instance_uids`` gives, for each slice ``k``, the SOP
    Instance UID it came from (with ``source_frame_numbers`` for multi-frame sources).
    """

    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    frame_of_reference_uid: str | None = None
    modality: str = "OT"
    source_sop_instance_uids: tuple[str, ...] = ()
    source_frame_numbers: tuple[int, ...] | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        array = np.asarray(self.array)
        if array.ndim != 3:
            raise MedviewerError(f"a volume needs a 3D array, got shape {array.shape}")
        direction = np.asarray(self.direction, dtype=float).reshape(3, 3)
        spacing = tuple(float(s) for s in self.spacing)
        # The loaders check geometry naming the file (io/dicom_series, io/image_files); this is
        # the last line, so that no NaN or degenerate grid is ever drawn or measured.
        if len(spacing) != 3 or not all(np.isfinite(spacing)) or min(spacing) <= 0:
            raise MedviewerError(f"voxel spacing must be three positive numbers, got {self.spacing}")
        origin = tuple(float(o) for o in self.origin)
        if len(origin) != 3 or not all(np.isfinite(origin)):
            raise MedviewerError(f"the origin must be three finite numbers, got {self.origin}")
        if not np.all(np.isfinite(direction)) or not np.allclose(direction.T @ direction, np.eye(3), atol=1e-3):
            raise MedviewerError("the direction matrix is not orthonormal (sheared or tilted grid)")
        object.__setattr__(self, "array", array)
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "direction", direction)
        object.__setattr__(self, "source_sop_instance_uids", tuple(self.source_sop_instance_uids))
        if self.source_frame_numbers is not None:
            object.__setattr__(self, "source_frame_numbers", tuple(int(f) for f in self.source_frame_numbers))
        object.__setattr__(self, "meta", _frozen_mapping(self.meta))

    # ---- shape -------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape, (z, y, x)."""
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def size_xyz(self) -> tuple[int, int, int]:
        """Grid size in (x, y, z) order, as ITK gives it."""
        z, y, x = self.array.shape
        return (x, y, z)

    # ---- geometry ----------------------------------------------------------------------------
    @property
    def affine(self) -> np.ndarray:
        """4 x 4 matrix taking homogeneous (i, j, k, 1) to LPS millimetres."""
        a = np.eye(4)
        a[:3, :3] = self.direction * np.asarray(self.spacing)[None, :]
        a[:3, 3] = self.origin
        return a

    def index_to_patient(self, ijk: Sequence[float] | np.ndarray) -> np.ndarray:
        """Continuous (x, y, z) indices, shape (..., 3) -> LPS millimetres, shape (..., 3)."""
        ijk = np.asarray(ijk, dtype=float)
        m = self.direction * np.asarray(self.spacing)[None, :]
        return ijk @ m.T + np.asarray(self.origin)

    def patient_to_index(self, points: Sequence[float] | np.ndarray) -> np.ndarray:
        """LPS millimetres, shape (..., 3) -> continuous (x, y, z) indices, shape (..., 3)."""
        p = np.asarray(points, dtype=float) - np.asarray(self.origin)
        return (p @ self.direction) / np.asarray(self.spacing)

    def voxel_to_patient(self, zyx: Sequence[float] | np.ndarray) -> np.ndarray:
        """Array indices (z, y, x), shape (..., 3) -> LPS millimetres."""
        return self.index_to_patient(np.asarray(zyx, dtype=float)[..., ::-1])

    def patient_to_voxel(self, points: Sequence[float] | np.ndarray, *, clip: bool = False) -> np.ndarray:
        """LPS millimetres -> nearest array indices (z, y, x) as ints.

        Raises MedviewerError for a point outside the grid unless ``clip`` is set.
        """
        zyx = np.rint(self.patient_to_index(points)[..., ::-1]).astype(int)
        upper = np.asarray(self.shape) - 1
        if clip:
            return np.clip(zyx, 0, upper)
        if np.any(zyx < 0) or np.any(zyx > upper):
            raise MedviewerError(f"point {np.asarray(points).tolist()} mm lies outside the volume")
        return zyx

    def contains_point(self, point: Sequence[float]) -> bool:
        zyx = np.rint(self.patient_to_index(point)[::-1])
        return bool(np.all(zyx >= 0) and np.all(zyx <= np.asarray(self.shape) - 1))

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def same_grid(self, other: "Volume", tolerance: float = _GEOMETRY_TOLERANCE) -> bool:
        """True when both volumes sample the same points of patient space."""
        return (
            self.shape == other.shape
            and np.allclose(self.spacing, other.spacing, atol=tolerance)
            and np.allclose(self.origin, other.origin, atol=tolerance * 10)
            and np.allclose(self.direction, other.direction, atol=tolerance)
        )

    # ---- derived volumes ---------------------------------------------------------------------
    def with_array(self, array: np.ndarray, **changes: Any) -> "Volume":
        """A volume on the same grid (same geometry and sources) holding other voxels."""
        array = np.asarray(array)
        if array.shape != self.shape and "origin" not in changes:
            raise MedviewerError(f"array of shape {array.shape} does not fit the grid {self.shape}")
        return dataclasses.replace(self, array=array, **changes)

    def crop(self, lower_zyx: Sequence[int], upper_zyx: Sequence[int]) -> "Volume":
        """The sub-volume ``array[z0:z1, y0:y1, x0:x1]`` with its geometry (bounds are clipped)."""
        lo = np.clip(np.asarray(lower_zyx, dtype=int), 0, self.shape)
        hi = np.clip(np.asarray(upper_zyx, dtype=int), lo, self.shape)
        sub = self.array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        origin = self.voxel_to_patient(lo)
        uids = self.source_sop_instance_uids[lo[0]:hi[0]] if self.source_sop_instance_uids else ()
        frames = self.source_frame_numbers[lo[0]:hi[0]] if self.source_frame_numbers else None
        return dataclasses.replace(
            self, array=sub, origin=tuple(origin), source_sop_instance_uids=uids,
            source_frame_numbers=frames,
        )

    # ---- SimpleITK bridge --------------------------------------------------------------------
    def to_sitk(self):
        """A SimpleITK image with the same voxels and geometry (the array is copied)."""
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(np.ascontiguousarray(self.array))
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(tuple(self.direction.ravel()))
        return image

    @classmethod
    def from_sitk(cls, image, **fields: Any) -> "Volume":
        """A Volume from a 3D SimpleITK image; ``fields`` fill the non-geometric attributes."""
        import SimpleITK as sitk

        if image.GetDimension() != 3:
            raise MedviewerError(f"expected a 3D image, got {image.GetDimension()}D")
        if image.GetNumberOfComponentsPerPixel() != 1:
            raise MedviewerError("multi-component (colour or vector) images are not supported")
        return cls(
            array=sitk.GetArrayFromImage(image),
            spacing=image.GetSpacing(),
            origin=image.GetOrigin(),
            direction=np.asarray(image.GetDirection()).reshape(3, 3),
            **fields,
        )

    # ---- description -------------------------------------------------------------------------
    def orientation_code(self) -> str:
        """Three letters naming where each index axis points (e.g. 'LPS' for axial CT)."""
        letters = []
        for axis in range(3):
            v = self.direction[:, axis]
            a = int(np.argmax(np.abs(v)))
            letters.append(("L", "P", "S")[a] if v[a] > 0 else ("R", "A", "I")[a])
        return "".join(letters)

    def slice_holding(self, points, tolerance: float = 1e-3) -> tuple[int, int] | None:
        """(index axis, slice index) of the slice that holds all of ``points`` (LPS mm: they agree
        along that index axis within ``tolerance`` voxels), None when none does. Points that
        share two index axes (an axis-parallel line) are given the slice axis first (z, y, x)."""
        ijk = self.patient_to_index(np.asarray(points, dtype=float).reshape(-1, 3))
        same = np.ptp(ijk, axis=0) < tolerance
        axis = next((a for a in (2, 1, 0) if same[a]), None)
        return None if axis is None else (axis, int(round(float(ijk[0, axis]))))

    def slice_plane(self, index_axis: int) -> str:
        """'axial', 'coronal' or 'sagittal': the slices across index axis ``index_axis`` (x=0,
        y=1, z=2), named by the patient axis it runs nearest (S, P, L)."""
        a = int(np.argmax(np.abs(self.direction[:, index_axis])))
        return ("sagittal", "coronal", "axial")[a]

    def __repr__(self) -> str:
        return (
            f"Volume(shape_zyx={self.shape}, dtype={self.array.dtype}, spacing={self.spacing}, "
            f"origin={tuple(round(o, 3) for o in self.origin)}, orientation={self.orientation_code()}, "
            f"modality={self.modality!r})"
        )
