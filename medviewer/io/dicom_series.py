"""A DICOM series -> a geometry-correct Volume.

Slices are ordered by their position along the slice normal (never by InstanceNumber or file
name). Unequal spacing, missing slices, duplicate positions and gantry tilt are detected and the
load is refused with a message that says which; a series that passes is read by SimpleITK/GDCM
(any transfer syntax GDCM decodes, JPEG 2000 included) with the rescale applied (HU for CT).
Enhanced (multi-frame) images are read through highdicom.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume
from medviewer.io.dicom_index import InstanceHeader, SeriesEntry, StudyEntry

# Slice gaps may differ from the median by this fraction before the series counts as irregular.
SPACING_RELATIVE_TOLERANCE = 0.02
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
    """Order the slices of ``entry`` and check that they form a regular grid."""
    identity = np.eye(3)
    if not entry.is_image:
        return SeriesGeometry((), (1, 1, 1), (0, 0, 0), identity,
                              (f"not an image series (modality {entry.modality})",))
    instances = [i for i in entry.instances if i.has_pixels]
    if len(instances) == 1 and instances[0].number_of_frames > 1:
        h = instances[0]
        spacing = (h.pixel_spacing[1], h.pixel_spacing[0], 1.0) if h.pixel_spacing else (1.0, 1.0, 1.0)
        return SeriesGeometry((h,), spacing, (0, 0, 0), identity, (), multiframe=True)
    if any(i.number_of_frames > 1 for i in instances):
        return SeriesGeometry(tuple(instances), (1, 1, 1), (0, 0, 0), identity,
                              ("several multi-frame instances in one series are not supported",))
    missing = [i for i in instances if i.position is None or i.orientation is None]
    if missing:
        return SeriesGeometry(tuple(instances), (1, 1, 1), (0, 0, 0), identity, (
            f"{len(missing)} of {len(instances)} slices lack Image Position/Orientation (Patient), "
            f"e.g. {missing[0].path}: cannot place them in space",))
    first = instances[0]
    row = np.asarray(first.orientation[:3])
    col = np.asarray(first.orientation[3:])
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
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
    z_spacing = float(first.slice_thickness or 1.0)
    if len(ordered) > 1:
        gaps = np.diff(distance)
        if np.any(gaps < 1e-3):
            dup = int(np.sum(gaps < 1e-3))
            problems.append(f"{dup} slice(s) share a position with another (several acquisitions or "
                            "time points in one series?)")
        else:
            step = float(np.median(gaps))
            irregular = np.abs(gaps - step) > SPACING_RELATIVE_TOLERANCE * step
            if np.any(irregular):
                ratios = gaps / step
                multiples = np.abs(ratios - np.rint(ratios)) < 0.1
                if np.all(multiples):
                    lost = int(np.sum(np.rint(ratios) - 1))
                    where = int(np.argmax(gaps))
                    problems.append(
                        f"{lost} slice(s) missing: gap of {gaps[where]:.2f} mm after slice "
                        f"{where + 1} of {len(ordered)} where the spacing is {step:.2f} mm")
                else:
                    problems.append(f"unequal slice spacing ({gaps.min():.2f} to {gaps.max():.2f} mm)")
            z_spacing = float((distance[-1] - distance[0]) / (len(ordered) - 1))
            steps = np.diff(positions, axis=0)
            cosines = np.abs(steps @ normal) / np.linalg.norm(steps, axis=1)
            tilt = float(np.degrees(np.arccos(np.clip(cosines.min(), -1, 1))))
            if tilt > TILT_TOLERANCE_DEGREES:
                problems.append(f"gantry tilt of {tilt:.1f} degrees (slices are sheared); "
                                "reconstruct the series without tilt to load it")
        orientations = {tuple(round(v, 4) for v in i.orientation) for i in ordered}
        if len(orientations) > 1:
            problems.append("slices have different orientations")
    spacing = (float(px[1]), float(px[0]), z_spacing)
    return SeriesGeometry(ordered, spacing, tuple(positions[0]), direction, tuple(problems))


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
    """
    geometry = analyze_series(entry)
    label = entry.series_description or entry.uid or "without UID"
    if geometry.problems:
        raise MedviewerError(f"series {label!r} cannot be loaded: {'; '.join(geometry.problems)}",
                             entry.folder)
    if geometry.multiframe:
        return _load_multiframe(entry, study, geometry.instances[0])
    import SimpleITK as sitk

    files = [i.path for i in geometry.instances]
    reader = sitk.ImageSeriesReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOff()
    reader.LoadPrivateTagsOff()
    if progress is not None or cancelled is not None:
        def _on_progress():
            if cancelled is not None and cancelled():
                reader.Abort()
            if progress is not None:
                progress(reader.GetProgress())
        reader.AddCommand(sitk.sitkProgressEvent, _on_progress)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        if cancelled is not None and cancelled():
            raise MedviewerError("loading cancelled", entry.folder) from None
        raise _find_bad_file(files, exc) from None
    if cancelled is not None and cancelled():
        raise MedviewerError("loading cancelled", entry.folder)
    array = sitk.GetArrayFromImage(image)
    if array.shape != (len(files), geometry.instances[0].rows, geometry.instances[0].columns):
        raise MedviewerError(f"decoded size {array.shape} does not match the headers", entry.folder)
    return Volume(
        array=array,
        spacing=geometry.spacing,
        origin=geometry.origin,
        direction=geometry.direction,
        source_sop_instance_uids=tuple(i.sop_instance_uid for i in geometry.instances),
        **_volume_fields(entry, study),
    )


def _find_bad_file(files: list[str], exc: Exception) -> MedviewerError:
    """After a failed series read: name the first file that does not decode on its own."""
    import SimpleITK as sitk

    for f in files:
        try:
            sitk.ReadImage(f, imageIO="GDCMImageIO")
        except RuntimeError as single:
            text = str(single).strip().splitlines()
            return MedviewerError(f"pixel data cannot be decoded ({text[-1] if text else single})", f)
    text = str(exc).strip().splitlines()
    return MedviewerError(f"series cannot be decoded ({text[-1] if text else exc})", files[0])


def _load_multiframe(entry: SeriesEntry, study: StudyEntry | None, header: InstanceHeader) -> Volume:
    import highdicom as hd

    try:
        image = hd.imread(header.path)
        hd_volume = image.get_volume(dtype=np.float32)
    except Exception as exc:  # highdicom raises ValueError/RuntimeError on unusable geometry
        raise MedviewerError(f"multi-frame image cannot be read as a volume ({exc})", header.path) from None
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
    volume = Volume(np.ascontiguousarray(array), spacing=tuple(spacing), origin=tuple(origin),
                    direction=steps / spacing, **_volume_fields(entry, study))
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
