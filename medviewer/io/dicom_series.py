"""A DICOM series -> a geometry-correct Volume.

Slices are ordered by their position along the slice normal (never by InstanceNumber or file
name). Unequal spacing, missing slices, duplicate positions and gantry tilt are detected and the
load is refused with a message that says which; a series that passes is read by SimpleITK/GDCM
(any transfer syntax GDCM decodes, JPEG 2000 included) with the rescale applied (HU for CT).
Enhanced (multi-frame) images are read through highdicom.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from medviewer.core.errors import MedviewerError, printable
from medviewer.core.volume import Volume
from medviewer.io.dicom_index import InstanceHeader, SeriesEntry, StudyEntry, plausible_orientation
from medviewer.io.guard import guarded, one_line
from medviewer.io.pixel_checks import MAX_PIXEL_BYTES

# Slice gaps may differ from the median by this fraction before the series counts as irregular.
SPACING_RELATIVE_TOLERANCE = 0.02
# A series is decoded only if its voxels fit in this many bytes (as float32).
MAX_SERIES_BYTES = 2 * MAX_PIXEL_BYTES
# Geometry beyond these is damage, not a scanner's (a kilometre from the origin, a metre a pixel):
# refused before its arithmetic overflows.
MAX_POSITION_MM = 1e6
MAX_SPACING_MM = 1e3
# Angle (degrees) between the slice normal and the slice-to-slice direction that counts as tilt.
TILT_TOLERANCE_DEGREES = 0.5


@dataclass(frozen=True)
class SeriesGeometry:
    """Where the slices of a series lie, and what stops them forming a regular grid."""

    instances: tuple[InstanceHeader, ...]  # ordered along the slice normal
    spacing: tuple[float, float, float]  # (x, y, z) mm
    origin: tuple[float, float, float]
    direction: np.ndarray
    problems: tuple[str, ...] = ()  # each one refuses the load
    multiframe: bool = False

    @property
    def loadable(self) -> bool:
        return not self.problems


def analyze_series(entry: SeriesEntry) -> SeriesGeometry:
    """Order the slices of ``entry`` and check that they form a regular grid.

    Never raises: every problem found (damaged geometry included, with the file that carries it)
    is a line of ``problems``."""
    identity = np.eye(3)
    if not entry.is_image:
        return SeriesGeometry((), (1, 1, 1), (0, 0, 0), identity,
                              (f"not an image series (modality {entry.modality})",))
    instances = [i for i in entry.instances if i.has_pixels]
    if len(instances) == 1 and instances[0].number_of_frames > 1:
        h = instances[0]
        spacing = (h.pixel_spacing[1], h.pixel_spacing[0], 1.0) if h.pixel_spacing else (1.0, 1.0, 1.0)
        bad = _spacing_problem(h.pixel_spacing)
        problems = (f"{_name(h)}: {bad}",) if bad else ()
        return SeriesGeometry((h,), spacing if not bad else (1, 1, 1), (0, 0, 0), identity, problems,
                              multiframe=True)
    if any(i.number_of_frames > 1 for i in instances):
        return SeriesGeometry(tuple(instances), (1, 1, 1), (0, 0, 0), identity,
                              ("several multi-frame instances in one series are not supported",))
    missing = [i for i in instances if i.position is None or i.orientation is None]
    if missing:
        return SeriesGeometry(tuple(instances), (1, 1, 1), (0, 0, 0), identity, (
            f"{len(missing)} of {len(instances)} slices lack Image Position/Orientation (Patient), "
            f"e.g. {missing[0].path}: cannot place them in space",))
    damaged = _damaged_geometry(instances)
    if damaged:
        return SeriesGeometry(tuple(instances), (1, 1, 1), (0, 0, 0), identity, (damaged,))
    first = instances[0]
    row = np.asarray(first.orientation[:3])
    row = row / np.linalg.norm(row)
    col = np.asarray(first.orientation[3:])
    col = col - (col @ row) * row  # within the tolerance checked: make the grid exactly orthonormal
    col = col / np.linalg.norm(col)
    normal = np.cross(row, col)
    direction = np.column_stack([row, col, normal])
    px = first.pixel_spacing or (1.0, 1.0)
    problems: list[str] = []
    if first.pixel_spacing is None:
        problems.append("no Pixel Spacing: in-plane size unknown")
    positions = np.array([i.position for i in instances])
    distance = positions @ normal
    order = np.argsort(distance, kind="stable")
    ordered = tuple(instances[k] for k in order)
    distance = distance[order]
    positions = positions[order]
    thickness = first.slice_thickness
    z_spacing = float(thickness) if thickness is not None and math.isfinite(thickness) and thickness > 0 else 1.0
    if len(ordered) > 1:
        gaps = np.diff(distance)
        if np.any(gaps < 1e-3):
            problems.append(_shared_positions(ordered, gaps))
        else:
            step = float(np.median(gaps))
            irregular = np.abs(gaps - step) > SPACING_RELATIVE_TOLERANCE * step
            if np.any(irregular):
                ratios = gaps / step
                multiples = np.abs(ratios - np.rint(ratios)) < 0.1
                where = int(np.argmax(gaps))
                if np.all(multiples):
                    lost = int(np.sum(np.rint(ratios) - 1))
                    problems.append(
                        f"{lost} slice(s) missing: gap of {gaps[where]:.2f} mm after slice "
                        f"{where + 1} of {len(ordered)} ({_name(ordered[where])}) where the spacing "
                        f"is {step:.2f} mm{_damaged_note(entry)}")
                else:
                    problems.append(f"unequal slice spacing ({gaps.min():.2f} to {gaps.max():.2f} mm, "
                                    f"widest after {_name(ordered[where])}){_damaged_note(entry)}")
            z_spacing = float((distance[-1] - distance[0]) / (len(ordered) - 1))
            steps = np.diff(positions, axis=0)
            cosines = np.abs(steps @ normal) / np.linalg.norm(steps, axis=1)
            tilt = float(np.degrees(np.arccos(np.clip(cosines.min(), -1, 1))))
            if tilt > TILT_TOLERANCE_DEGREES:
                problems.append(f"gantry tilt of {tilt:.1f} degrees (slices are sheared); "
                                "reconstruct the series without tilt to load it")
        orientations = {tuple(round(v, 4) for v in i.orientation) for i in ordered}
        if len(orientations) > 1:
            odd = next(i for i in ordered if tuple(round(v, 4) for v in i.orientation)
                       != tuple(round(v, 4) for v in first.orientation))
            problems.append(f"slices have different orientations (e.g. {_name(odd)})")
    spacing = (float(px[1]), float(px[0]), z_spacing)
    return SeriesGeometry(ordered, spacing, tuple(positions[0]), direction, tuple(problems))


def _name(h: InstanceHeader) -> str:
    return printable(os.path.basename(h.path))


def _spacing_problem(spacing) -> str | None:
    if spacing is not None and not all(math.isfinite(v) and 0 < v <= MAX_SPACING_MM for v in spacing):
        return f"Pixel Spacing {_values(spacing)} is not two positive numbers (up to {MAX_SPACING_MM:g} mm)"
    return None


def _values(values) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def _instance_geometry_problem(h: InstanceHeader, first: InstanceHeader) -> str | None:
    if not all(math.isfinite(v) and abs(v) <= MAX_POSITION_MM for v in h.position):
        return f"Image Position (Patient) {_values(h.position)} is not finite (or beyond {MAX_POSITION_MM:g} mm)"
    if not plausible_orientation(h.orientation):
        return (f"Image Orientation (Patient) {_values(h.orientation)} is not two perpendicular "
                "unit vectors")
    bad = _spacing_problem(h.pixel_spacing)
    if bad:
        return bad
    if h.pixel_spacing is not None and first.pixel_spacing is not None and not np.allclose(
            h.pixel_spacing, first.pixel_spacing, rtol=1e-3):
        return f"Pixel Spacing {_values(h.pixel_spacing)} differs from {_values(first.pixel_spacing)}"
    return None


def _damaged_geometry(instances: list[InstanceHeader]) -> str | None:
    """One line naming the slices whose geometry cannot be used (not finite, not orthonormal,
    not positive), or None. Checked before any arithmetic, so that no NaN reaches a Volume."""
    bad = [(h, p) for h in instances if (p := _instance_geometry_problem(h, instances[0]))]
    if not bad:
        return None
    shown = "; ".join(f"{_name(h)}: {p}" for h, p in bad[:3])
    more = f"; and {len(bad) - 3} more" if len(bad) > 3 else ""
    return f"{len(bad)} of {len(instances)} slices have unusable geometry ({shown}{more})"


def _shared_positions(ordered: tuple[InstanceHeader, ...], gaps: np.ndarray) -> str:
    pairs = [(ordered[k], ordered[k + 1]) for k in np.flatnonzero(gaps < 1e-3)]
    a, b = pairs[0]
    if a.sop_instance_uid == b.sop_instance_uid:
        what = "the same SOP Instance UID with different contents (a damaged or edited copy?)"
    else:
        what = "a position (several acquisitions or time points in one series?)"
    return f"{len(pairs)} slice(s) share {what}, e.g. {_name(a)} and {_name(b)}"


def _damaged_note(entry: SeriesEntry) -> str:
    """``; N file(s) here were skipped (NAME: reason; ...)`` from the index: the files that
    likely held the missing slices."""
    if not entry.damaged:
        return ""
    shown = "; ".join(f"{printable(os.path.basename(s.path))}: {s.reason}" for s in entry.damaged[:3])
    more = f"; and {len(entry.damaged) - 3} more" if len(entry.damaged) > 3 else ""
    return f"; {len(entry.damaged)} file(s) here were skipped ({shown}{more})"


def _volume_fields(entry: SeriesEntry, study: StudyEntry | None) -> dict:
    meta = {
        "patient_id": entry.patient_id,
        "study_instance_uid": entry.study_instance_uid,
        "series_instance_uid": entry.uid,
        "series_number": entry.series_number,
        "series_description": entry.series_description,
        "source_folder": entry.folder,
    }
    if study is not None:
        meta.update(study_date=study.study_date, study_description=study.study_description,
                    accession_number=study.accession_number)
    meta.update(_identity(entry))
    return dict(frame_of_reference_uid=entry.frame_of_reference_uid, modality=entry.modality, meta=meta)


def _identity(entry: SeriesEntry) -> dict:
    """Who the images show and how thick their slices are, for the views' corner annotations
    (the index keeps neither the name, birth date nor sex): from the first file's header."""
    import pydicom

    out: dict = {}
    first = entry.instances[0] if entry.instances else None
    if first is not None and first.slice_thickness:
        out["slice_thickness"] = float(first.slice_thickness)
    try:
        ds = pydicom.dcmread(first.path, stop_before_pixels=True,
                             specific_tags=["PatientName", "PatientBirthDate", "PatientSex"])
    except Exception:   # a header unreadable now was read when indexing: the corners go without it
        return out
    for key, tag in (("patient_name", "PatientName"), ("patient_birth_date", "PatientBirthDate"),
                     ("patient_sex", "PatientSex")):
        value = str(ds.get(tag, "") or "").strip()
        if value:
            out[key] = value
    return out


def load_series(entry: SeriesEntry, study: StudyEntry | None = None,
                progress: Callable[[float], None] | None = None,
                cancelled: Callable[[], bool] | None = None) -> Volume:
    """Read the voxels of an indexed series into a Volume (HU for CT).

    ``progress(fraction)`` reports reading; ``cancelled()`` returning True aborts the read with a
    MedviewerError. Raises MedviewerError naming the series folder (or the bad file) on refusal.
    The files of the series' folder that the index skipped are listed, with their reasons, in
    ``volume.meta["dropped_files"]`` ((path, reason) pairs): a partial load says what it left out.
    """
    geometry = analyze_series(entry)
    label = entry.series_description or entry.uid or "without UID"
    if geometry.problems:
        raise MedviewerError(f"series {label!r} cannot be loaded: {'; '.join(geometry.problems)}",
                             entry.folder)
    fields = _volume_fields(entry, study)
    fields["meta"]["dropped_files"] = tuple((s.path, s.reason) for s in entry.damaged)
    try:
        if geometry.multiframe:
            return _load_multiframe(entry, fields, geometry.instances[0])
        array = _read_pixels(geometry.instances, entry.folder, progress, cancelled)
        return Volume(
            array=array,
            spacing=geometry.spacing,
            origin=geometry.origin,
            direction=geometry.direction,
            source_sop_instance_uids=tuple(i.sop_instance_uid for i in geometry.instances),
            **fields,
        )
    except MedviewerError as exc:
        if exc.path is None:
            raise MedviewerError(exc.message, entry.folder) from None
        raise


def _read_pixels(instances, folder: str, progress, cancelled) -> np.ndarray:
    """Decode the slices one file at a time into one array: a file that fails is named at once,
    each is decoded once, and memory is what the headers announced (checked before the first)."""
    first = instances[0]
    check_series_size(instances, folder)
    array = None
    for k, h in enumerate(instances):
        if cancelled is not None and cancelled():
            raise MedviewerError("loading cancelled", folder)
        plane = read_slice(h, first)
        if array is None:
            array = np.empty((len(instances), h.rows, h.columns), dtype=plane.dtype)
        elif np.result_type(array.dtype, plane.dtype) != array.dtype:
            array = array.astype(np.float32 if plane.dtype.itemsize <= 4 else np.float64)
        array[k] = plane
        if progress is not None:
            progress((k + 1) / len(instances))
    if cancelled is not None and cancelled():
        raise MedviewerError("loading cancelled", folder)
    return array


def check_series_size(instances, folder: str) -> None:
    """Refuse, before any decoding, a series whose voxels would not fit (as float32, at worst)."""
    first = instances[0]
    total = len(instances) * first.rows * first.columns * 4
    if total > MAX_SERIES_BYTES:
        raise MedviewerError(f"series too large to load: {len(instances)} slices of {first.columns} x "
                             f"{first.rows} ({total / 2**30:.1f} GiB)", folder)


def read_slice(h: InstanceHeader, first: InstanceHeader) -> np.ndarray:
    """One slice's pixels (rows, columns), decoded inside the file's guard: any failure is a
    MedviewerError naming the file. ``first`` is the series' first slice (its size is the series')."""
    import SimpleITK as sitk

    with guarded(h.path, "pixel data"):
        if (h.rows, h.columns) != (first.rows, first.columns):
            raise MedviewerError(f"{h.columns} x {h.rows} pixels where the series has "
                                 f"{first.columns} x {first.rows}")
        try:
            image = sitk.ReadImage(h.path, imageIO="GDCMImageIO")
        except RuntimeError as exc:
            raise MedviewerError(f"pixel data cannot be decoded ({one_line(exc)})") from None
        if image.GetNumberOfComponentsPerPixel() != 1:
            raise MedviewerError("multi-component (colour) pixels are not supported")
        view = sitk.GetArrayViewFromImage(image)
        if view.size != h.rows * h.columns:
            raise MedviewerError(f"decoded size {image.GetSize()} does not match the header's "
                                 f"{h.columns} x {h.rows}")
        return view.reshape(h.rows, h.columns).copy()


def _load_multiframe(entry: SeriesEntry, fields: dict, header: InstanceHeader) -> Volume:
    with guarded(header.path, "multi-frame image"):
        return _multiframe_volume(fields, header)


def _multiframe_volume(fields: dict, header: InstanceHeader) -> Volume:
    import highdicom as hd

    try:
        image = hd.imread(header.path)
        hd_volume = image.get_volume(dtype=np.float32)
    except Exception as exc:  # highdicom raises ValueError/RuntimeError on unusable geometry
        raise MedviewerError(f"multi-frame image cannot be read as a volume ({one_line(exc)})",
                             header.path) from None
    # highdicom indexes (slice, row, column), as our arrays do; its affine maps those indices to
    # LPS, so its columns, reversed, are our (x, y, z) steps.
    steps = np.asarray(hd_volume.affine)[:3, :3][:, ::-1].copy()
    origin = np.asarray(hd_volume.affine)[:3, 3].copy()
    array = np.asarray(hd_volume.array)
    if np.dot(np.cross(steps[:, 0], steps[:, 1]), steps[:, 2]) < 0:
        # Order slices along row x column, as for single-frame series.
        origin = origin + steps[:, 2] * (array.shape[0] - 1)
        steps[:, 2] = -steps[:, 2]
        array = array[::-1]
    spacing = np.linalg.norm(steps, axis=0)
    if not (np.all(np.isfinite(steps)) and np.all(np.isfinite(origin)) and np.all(spacing > 0)):
        raise MedviewerError("multi-frame image's frame positions or spacing are not finite and positive",
                             header.path)
    volume = Volume(np.ascontiguousarray(array), spacing=tuple(spacing), origin=tuple(origin),
                    direction=steps / spacing, **fields)
    array = volume.array
    if np.allclose(array, np.rint(array)) and array.min() >= -32768 and array.max() <= 32767:
        array = array.astype(np.int16)
    frame_numbers = _frame_numbers(image, volume)
    return volume.with_array(array, source_sop_instance_uids=(header.sop_instance_uid,) * volume.shape[0],
                             source_frame_numbers=frame_numbers)


def _frame_numbers(dataset, volume: Volume) -> tuple[int, ...] | None:
    """For each slice of ``volume``, the (1-based) frame of ``dataset`` it came from."""
    try:
        positions = np.array([
            [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
            for item in dataset.PerFrameFunctionalGroupsSequence
        ])
    except (AttributeError, IndexError):
        return None
    out = []
    for k in range(volume.shape[0]):
        p = volume.voxel_to_patient((k, 0, 0))
        out.append(int(np.argmin(np.linalg.norm(positions - p, axis=1))) + 1)
    return tuple(out)
