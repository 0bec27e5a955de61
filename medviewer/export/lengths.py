"""Length measurements (the window's length tool): a table as CSV, and a DICOM SR measurement
report (TID 1500 with TID 1410 planar ROI groups, written by highdicom).

A ruler is a line segment in patient LPS mm drawn on one slice of the series. Its plane is the
index axis along which both of its ends agree (the slice it lies on), named by the patient axis
that index axis runs nearest: axial (S), coronal (P) or sagittal (L). In the SR each ruler is one
"Planar ROI measurements" group with a "Length" (SNOMED CT 410668003) in mm: a ruler on one
source image (an axial ruler of an axial series) is an open POLYLINE of its two ends in that
image's pixel coordinates (SCOORD, as OHIF's length tool writes it); any other ruler a POLYLINE
in the frame of reference, in mm (SCOORD3D). The observer is the person measuring.
"""

from __future__ import annotations

import csv
import getpass
import io
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from medviewer.core.atomic import check_target, write_dataset, write_text
from medviewer.core.document import Ruler
from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume

CSV_COLUMNS = ("measurement", "length_mm", "plane", "slice", "start_x_mm", "start_y_mm", "start_z_mm",
               "end_x_mm", "end_y_mm", "end_z_mm", "sop_instance_uid")


@dataclass(frozen=True)
class Length:
    """One ruler as reported: its length, and the slice of the series it lies on."""

    number: int
    length_mm: float
    start_mm: tuple[float, float, float]
    end_mm: tuple[float, float, float]
    axis: int | None          # the index axis (x=0, y=1, z=2) both ends share, None: oblique
    slice_index: int | None   # 0-based along that axis
    plane: str                # axial, coronal, sagittal or oblique
    sop_instance_uid: str | None   # the source image holding it (slices along z of a DICOM series)


def ruler_length(ruler: Ruler) -> float:
    return float(np.linalg.norm(np.subtract(ruler.end, ruler.start)))


def lengths(volume: Volume, rulers: Sequence[Ruler]) -> list[Length]:
    """The rulers drawn on ``volume``, numbered from 1, with the slice each lies on."""
    out = []
    for n, ruler in enumerate(rulers, start=1):
        ends = np.array([volume.patient_to_index(ruler.start), volume.patient_to_index(ruler.end)])
        same = np.abs(ends[0] - ends[1]) < 1e-3
        # an axis-parallel ruler shares two index axes: call it by the slice axis first (z)
        axis = next((a for a in (2, 1, 0) if same[a]), None)
        slice_index = plane = uid = None
        if axis is None:
            plane = "oblique"
        else:
            slice_index = int(round(ends[0, axis]))
            plane = volume.slice_plane(axis)
            uids = volume.source_sop_instance_uids
            if axis == 2 and uids and 0 <= slice_index < len(uids):
                uid = uids[slice_index]
        out.append(Length(n, ruler_length(ruler), tuple(ruler.start), tuple(ruler.end), axis, slice_index,
                          plane, uid))
    return out


def lengths_csv(volume: Volume, rulers: Sequence[Ruler]) -> str:
    """One row per ruler: its number, length, plane, slice (1-based), ends in LPS mm, source image."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for m in lengths(volume, rulers):
        writer.writerow([m.number, f"{m.length_mm:.2f}", m.plane,
                         "" if m.slice_index is None else m.slice_index + 1,
                         *(f"{c:.2f}" for c in m.start_mm), *(f"{c:.2f}" for c in m.end_mm),
                         m.sop_instance_uid or ""])
    return buf.getvalue()


def build_lengths_sr(volume: Volume, rulers: Sequence[Ruler], *, observer_name: str | None = None,
                     source_images: Sequence | None = None, series_number: int = 303):
    """A Comprehensive 3D SR document holding a TID 1500 measurement report of the rulers."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from medviewer.export.sources import source_datasets
    from medviewer.export.sr import measurement_report_sr

    if not rulers:
        raise MedviewerError("no length measurements to report")
    images = list(source_images) if source_images is not None else source_datasets(volume)
    if len(images) != volume.shape[0]:
        raise MedviewerError("a measurement SR needs a series of single-frame images, one per slice")
    frame = volume.frame_of_reference_uid
    groups, used = [], {}
    for m in lengths(volume, rulers):
        if m.axis == 2:   # on one source image: its pixel coordinates, (0, 0) its top-left corner
            image = images[m.slice_index]
            used[image.SOPInstanceUID] = image
            pixels = np.array([volume.patient_to_index(m.start_mm)[:2], volume.patient_to_index(m.end_mm)[:2]]) + 0.5
            region = hd.sr.ImageRegion(
                graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=pixels,
                source_image=hd.sr.SourceImageForRegion(
                    referenced_sop_class_uid=image.SOPClassUID, referenced_sop_instance_uid=image.SOPInstanceUID))
        else:
            if not frame:
                raise MedviewerError("the series has no frame of reference UID: a length drawn across its "
                                     "slices cannot be placed in an SR; export the measurements as CSV")
            # every image of the series shares that frame: all are evidence
            used.update((image.SOPInstanceUID, image) for image in images)
            region = hd.sr.ImageRegion3D(graphic_type=hd.sr.GraphicTypeValues3D.POLYLINE,
                                         graphic_data=np.array([m.start_mm, m.end_mm], dtype=float),
                                         frame_of_reference_uid=frame)
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"length {m.number}"),
            referenced_region=region,
            measurements=[hd.sr.Measurement(name=codes.SCT.Length, value=round(m.length_mm, 3),
                                            unit=codes.UCUM.Millimeter)],
        ))
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
            name=(observer_name or _user_name())[:64]))
    return measurement_report_sr(groups, list(used.values()),
                                 hd.sr.ObservationContext(observer_person_context=observer),
                                 description="medviewer measurements", series_number=series_number)


def _user_name() -> str:
    """The login name as a DICOM person name (a single component ends with a caret: "jane^")."""
    try:
        name = getpass.getuser() or ""
    except Exception:   # no login name (a container without a user entry)
        name = ""
    name = name.replace("\\", "").strip() or "medviewer user"
    return name if "^" in name else name + "^"


def write_lengths(volume: Volume, rulers: Sequence[Ruler], out: str | os.PathLike, *, force: bool = False,
                  **options) -> str:
    """Write the rulers as CSV (``.csv``) or a TID 1500 SR (``.dcm``), atomically."""
    out = os.fspath(out)
    check_target(out, force)
    if not rulers:
        raise MedviewerError("no length measurements to export", out)
    if out.lower().endswith(".csv"):
        return write_text(out, lengths_csv(volume, rulers), force=force)
    if out.lower().endswith(".dcm"):
        if not volume.source_sop_instance_uids:
            raise MedviewerError("a DICOM SR references the DICOM images measured on, and this image was not "
                                 "read from DICOM: export the measurements as .csv", out)
        try:
            sr = build_lengths_sr(volume, rulers, **options)
        except MedviewerError as exc:
            raise MedviewerError(exc.message, out) from None
        return write_dataset(out, sr, force=force)
    raise MedviewerError("length measurements are written as .csv or .dcm (DICOM SR)", out)
