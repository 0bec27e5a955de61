"""The measure tool's measurements, lengths and elliptical ROIs: a table as CSV, and a DICOM SR
measurement report (TID 1500 with TID 1410 planar ROI groups, written by highdicom).

A ruler is a line segment in patient LPS mm drawn on one slice of the series. Its plane is the
index axis along which both of its ends agree (the slice it lies on), named by the patient axis
that index axis runs nearest: axial (S), coronal (P) or sagittal (L). In the SR each ruler is one
"Planar ROI measurements" group with a "Length" (SNOMED CT 410668003) in mm: a ruler on one
source image (an axial ruler of an axial series) is an open POLYLINE of its two ends in that
image's pixel coordinates (SCOORD, as OHIF's length tool writes it); any other ruler a POLYLINE
in the frame of reference, in mm (SCOORD3D). An ellipse (:mod:`medviewer.core.roi_stats`) is
likewise an ELLIPSE of the four ends of its axes (SCOORD on an axial slice of an axial series, as
OHIF's elliptical ROI writes it; else SCOORD3D, an oblique one too), with its "Area" (SNOMED CT 42798000) in mm2 and,
on CT, the attenuation (HU) of its pixels derived as Mean, Standard deviation, Minimum and
Maximum, as the lesion measures report them. The observer is the person measuring.
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
from medviewer.core.document import Ellipse, Ruler
from medviewer.core.errors import MedviewerError
from medviewer.core.roi_stats import EllipseStats, ellipse_stats
from medviewer.core.volume import Volume

CSV_COLUMNS = ("measurement", "kind", "length_mm", "area_mm2", "mean", "std", "min", "max", "unit", "pixels",
               "plane", "slice", "start_x_mm", "start_y_mm", "start_z_mm", "end_x_mm", "end_y_mm", "end_z_mm",
               "center_x_mm", "center_y_mm", "center_z_mm", "semi_axis_a_mm", "semi_axis_b_mm",
               "sop_instance_uid")


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
            uid = _source_uid(volume, axis, slice_index)
        out.append(Length(n, ruler_length(ruler), tuple(ruler.start), tuple(ruler.end), axis, slice_index,
                          plane, uid))
    return out


def _source_uid(volume: Volume, axis: int | None, slice_index: int | None) -> str | None:
    uids = volume.source_sop_instance_uids
    if axis == 2 and uids and slice_index is not None and 0 <= slice_index < len(uids):
        return uids[slice_index]
    return None


def measurements_csv(volume: Volume, rulers: Sequence[Ruler], ellipses: Sequence[Ellipse] = ()) -> str:
    """One row per measurement, the lengths first, numbered on: its kind (length or ellipse), its
    values (length; area and the pixels' mean, SD, min, max), plane, slice (1-based), where it
    lies in LPS mm (a length's ends; an ellipse's centre and semi-axes), its source image."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    row = dict.fromkeys(CSV_COLUMNS, "")
    mm = lambda values: [f"{c:.2f}" for c in values]  # noqa: E731
    for m in lengths(volume, rulers):
        writer.writerow({**row, "measurement": m.number, "kind": "length", "length_mm": f"{m.length_mm:.2f}",
                         "plane": m.plane, "slice": "" if m.slice_index is None else m.slice_index + 1,
                         **dict(zip(CSV_COLUMNS[12:18], mm(m.start_mm + m.end_mm))),
                         "sop_instance_uid": m.sop_instance_uid or ""}.values())
    for n, (e, st) in enumerate(zip(ellipses, ellipse_measures(volume, ellipses)), start=len(rulers) + 1):
        values = ({"mean": f"{st.mean:.2f}", "std": f"{st.std:.2f}", "min": f"{st.minimum:g}",
                   "max": f"{st.maximum:g}"} if st.pixel_count else {})
        writer.writerow({**row, "measurement": n, "kind": "ellipse", "area_mm2": f"{st.area_mm2:.2f}", **values,
                         "unit": st.unit, "pixels": st.pixel_count, "plane": st.plane,
                         "slice": "" if st.slice_index is None else st.slice_index + 1,
                         **dict(zip(CSV_COLUMNS[18:21], mm(e.center))),
                         "semi_axis_a_mm": f"{np.linalg.norm(e.axis_a):.2f}",
                         "semi_axis_b_mm": f"{np.linalg.norm(e.axis_b):.2f}",
                         "sop_instance_uid": _source_uid(volume, st.axis, st.slice_index) or ""}.values())
    return buf.getvalue()


def ellipse_measures(volume: Volume, ellipses: Sequence[Ellipse]) -> list[EllipseStats]:
    """The statistics of each ellipse; one that does not lie on a slice is refused, numbered."""
    out = []
    for n, e in enumerate(ellipses, start=1):
        try:
            out.append(ellipse_stats(volume, e))
        except MedviewerError as exc:
            raise MedviewerError(f"ellipse {n}: {exc.message}") from None
    return out


def build_measurements_sr(volume: Volume, rulers: Sequence[Ruler], ellipses: Sequence[Ellipse] = (), *,
                          observer_name: str | None = None, source_images: Sequence | None = None,
                          series_number: int = 303):
    """A Comprehensive 3D SR document holding a TID 1500 measurement report of the rulers and
    ellipses."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from medviewer.export.sources import source_datasets
    from medviewer.export.sr import measurement_report_sr

    if not rulers and not ellipses:
        raise MedviewerError("no measurements to report")
    images = list(source_images) if source_images is not None else source_datasets(volume)
    if len(images) != volume.shape[0]:
        raise MedviewerError("a measurement SR needs a series of single-frame images, one per slice")
    frame = volume.frame_of_reference_uid
    used = {}

    def region(points_mm: np.ndarray, slice_index: int | None, planar, spatial):
        """On its source image in pixel coordinates ((0, 0) its top-left corner) when on an axial
        slice (``slice_index``), else in mm in the frame of reference."""
        if slice_index is not None:
            image = images[slice_index]
            used[image.SOPInstanceUID] = image
            pixels = volume.patient_to_index(points_mm)[:, :2] + 0.5
            return hd.sr.ImageRegion(graphic_type=planar, graphic_data=pixels, source_image=hd.sr.SourceImageForRegion(
                referenced_sop_class_uid=image.SOPClassUID, referenced_sop_instance_uid=image.SOPInstanceUID))
        if not frame:
            raise MedviewerError("the series has no frame of reference UID: a measurement across its slices "
                                 "cannot be placed in an SR; export the measurements as CSV")
        used.update((image.SOPInstanceUID, image) for image in images)   # all share the frame
        return hd.sr.ImageRegion3D(graphic_type=spatial, graphic_data=np.asarray(points_mm, dtype=float),
                                   frame_of_reference_uid=frame)

    def group(identifier: str, roi, measurements):
        return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=identifier),
            referenced_region=roi, measurements=measurements)

    groups = []
    for m in lengths(volume, rulers):
        roi = region(np.array([m.start_mm, m.end_mm]), m.slice_index if m.axis == 2 else None,
                     hd.sr.GraphicTypeValues.POLYLINE, hd.sr.GraphicTypeValues3D.POLYLINE)
        groups.append(group(f"length {m.number}", roi, [
            hd.sr.Measurement(name=codes.SCT.Length, value=round(m.length_mm, 3), unit=codes.UCUM.Millimeter)]))
    for n, (e, st) in enumerate(zip(ellipses, ellipse_measures(volume, ellipses)), start=1):
        roi = region(e.ends, st.slice_index if st.axis == 2 else None,
                     hd.sr.GraphicTypeValues.ELLIPSE, hd.sr.GraphicTypeValues3D.ELLIPSE)
        measurements = [hd.sr.Measurement(name=codes.SCT.Area, value=round(st.area_mm2, 3),
                                          unit=codes.UCUM.SquareMillimeter)]
        if st.unit == "HU" and st.pixel_count:
            measurements += [hd.sr.Measurement(name=codes.DCM.AttenuationCoefficient, value=round(float(v), 2),
                                               unit=codes.UCUM.HounsfieldUnit, derivation=d)
                             for d, v in ((codes.SCT.Mean, st.mean), (codes.SCT.StandardDeviation, st.std),
                                          (codes.SCT.Minimum, st.minimum), (codes.SCT.Maximum, st.maximum))]
        groups.append(group(f"ellipse {n}", roi, measurements))
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


def write_measurements(volume: Volume, rulers: Sequence[Ruler], out: str | os.PathLike, *,
                       ellipses: Sequence[Ellipse] = (), force: bool = False, **options) -> str:
    """Write the rulers and ellipses as CSV (``.csv``) or a TID 1500 SR (``.dcm``), atomically."""
    out = os.fspath(out)
    check_target(out, force)
    if not rulers and not ellipses:
        raise MedviewerError("no measurements to export", out)
    try:
        if out.lower().endswith(".csv"):
            return write_text(out, measurements_csv(volume, rulers, ellipses), force=force)
        if out.lower().endswith(".dcm"):
            if not volume.source_sop_instance_uids:
                raise MedviewerError("a DICOM SR references the DICOM images measured on, and this image was not "
                                     "read from DICOM: export the measurements as .csv")
            return write_dataset(out, build_measurements_sr(volume, rulers, ellipses, **options), force=force)
    except MedviewerError as exc:
        raise MedviewerError(exc.message, out) from None
    raise MedviewerError("measurements are written as .csv or .dcm (DICOM SR)", out)
