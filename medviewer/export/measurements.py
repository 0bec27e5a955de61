"""The measure tool's measurements, lengths, bidirectionals and elliptical ROIs: a table as CSV,
and a DICOM SR measurement report (TID 1500, written by highdicom) shaped as OHIF writes one.

A ruler is a line segment in patient LPS mm drawn on one slice of the series. Its plane is the
index axis along which both of its ends agree (the slice it lies on), named by the patient axis
that index axis runs nearest: axial (S), coronal (P) or sagittal (L).

In the SR each measurement is one "Measurement group" (TID 1501) whose tracking identifier names
the Cornerstone3D tool that draws it in OHIF ("Cornerstone3DTools@^0.1.0:Length", ":Bidirectional",
":EllipticalROI"): OHIF chooses by it the tool that re-opens the group for editing
(@cornerstonejs/adapters; tests/interop runs that reader on our SRs). Each measurement is
inferred from its own coordinates (TID 320):

- a ruler: a "Length" (SNOMED CT 410668003) in mm from an open POLYLINE of its two ends;
- a bidirectional (RECIST's long and short axis): a "Long Axis" (SNOMED CT 103339001) and a
  "Short Axis" (103340004) in mm, each from its own two-point POLYLINE (the meanings spelled as
  dcmjs spells them: OHIF finds the axes by their meaning);
- an ellipse (:mod:`medviewer.core.roi_stats`): its "Area" (SNOMED CT 42798000) in mm2 from an
  ELLIPSE of the four ends of its axes, the major axis first, and, on CT, the attenuation (HU) of
  its pixels derived as Mean, Standard deviation, Minimum and Maximum, as the lesion measures
  report them.

Coordinates on one source image (an axial measurement of an axial series) are that image's pixel
coordinates (SCOORD); any others (coronal, sagittal, tilted) are in the frame of reference, in mm
(SCOORD3D). The observer is the person measuring.
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
from medviewer.core.document import Bidirectional, Ellipse, Ruler
from medviewer.core.errors import MedviewerError
from medviewer.core.roi_stats import EllipseStats, ellipse_stats
from medviewer.core.volume import Volume

#: Cornerstone3D's tag for its tools in a tracking identifier ("<tag>:Length"), by which OHIF
#: finds the tool that re-opens a measurement group for editing (@cornerstonejs/adapters)
OHIF_TOOL_TAG = "Cornerstone3DTools@^0.1.0"

CSV_COLUMNS = ("measurement", "kind", "label", "length_mm", "short_axis_mm", "area_mm2", "mean", "std", "min", "max",
               "unit", "pixels", "plane", "slice", "start_x_mm", "start_y_mm", "start_z_mm", "end_x_mm", "end_y_mm",
               "end_z_mm", "short_start_x_mm", "short_start_y_mm", "short_start_z_mm", "short_end_x_mm",
               "short_end_y_mm", "short_end_z_mm", "center_x_mm", "center_y_mm", "center_z_mm",
               "semi_axis_a_mm", "semi_axis_b_mm", "sop_instance_uid")


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


def placement(volume: Volume, points) -> tuple[int | None, int | None, str, str | None]:
    """(index axis, slice index, plane, source image UID) of the slice of ``volume`` that holds
    all of ``points`` (LPS mm, see :meth:`Volume.slice_holding`); (None, None, "oblique", None)
    when none does."""
    found = volume.slice_holding(points)
    if found is None:
        return None, None, "oblique", None
    axis, slice_index = found
    return axis, slice_index, volume.slice_plane(axis), _source_uid(volume, axis, slice_index)


def lengths(volume: Volume, rulers: Sequence[Ruler]) -> list[Length]:
    """The rulers drawn on ``volume``, numbered from 1, with the slice each lies on."""
    return [Length(n, ruler_length(r), tuple(r.start), tuple(r.end), *placement(volume, [r.start, r.end]))
            for n, r in enumerate(rulers, start=1)]


def _source_uid(volume: Volume, axis: int | None, slice_index: int | None) -> str | None:
    uids = volume.source_sop_instance_uids
    if axis == 2 and uids and slice_index is not None and 0 <= slice_index < len(uids):
        return uids[slice_index]
    return None


def measurements_csv(volume: Volume, rulers: Sequence[Ruler], ellipses: Sequence[Ellipse] = (),
                     bidirectionals: Sequence[Bidirectional] = ()) -> str:
    """One row per measurement, numbered on: the lengths, the bidirectionals, the ellipses. Each
    row: its kind, its label, its values (length; long and short axis; area and the pixels' mean, SD, min,
    max), plane, slice (1-based), where it lies in LPS mm (a length's or long axis' ends, the short
    axis' ends; an ellipse's centre and semi-axes), its source image."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CSV_COLUMNS, restval="", lineterminator="\n")
    writer.writeheader()

    def mm(prefix: str, point) -> dict:
        return {f"{prefix}_{c}_mm": f"{v:.2f}" for c, v in zip("xyz", point)}

    def where(axis, slice_index, plane, uid) -> dict:
        return {"plane": plane, "slice": "" if slice_index is None else slice_index + 1, "sop_instance_uid": uid or ""}

    n = 0
    for m, ruler in zip(lengths(volume, rulers), rulers):
        n += 1
        writer.writerow({"measurement": n, "kind": "length", "label": ruler.label,
                         "length_mm": f"{m.length_mm:.2f}",
                         **where(m.axis, m.slice_index, m.plane, m.sop_instance_uid),
                         **mm("start", m.start_mm), **mm("end", m.end_mm)})
    for b in bidirectionals:
        n += 1
        writer.writerow({"measurement": n, "kind": "bidirectional", "label": b.label,
                         "length_mm": f"{b.long_mm:.2f}",
                         "short_axis_mm": f"{b.short_mm:.2f}", **where(*placement(volume, b.ends)),
                         **mm("start", b.long_start), **mm("end", b.long_end),
                         **mm("short_start", b.short_start), **mm("short_end", b.short_end)})
    for e, st in zip(ellipses, ellipse_measures(volume, ellipses)):
        n += 1
        values = ({"mean": f"{st.mean:.2f}", "std": f"{st.std:.2f}", "min": f"{st.minimum:g}",
                   "max": f"{st.maximum:g}"} if st.pixel_count else {})
        writer.writerow({"measurement": n, "kind": "ellipse", "label": e.label, "area_mm2": f"{st.area_mm2:.2f}",
                         **values,
                         "unit": st.unit, "pixels": st.pixel_count,
                         **where(st.axis, st.slice_index, st.plane, _source_uid(volume, st.axis, st.slice_index)),
                         **mm("center", e.center), "semi_axis_a_mm": f"{np.linalg.norm(e.axis_a):.2f}",
                         "semi_axis_b_mm": f"{np.linalg.norm(e.axis_b):.2f}"})
    return buf.getvalue()


def major_first(ellipse: Ellipse) -> np.ndarray:
    """The four ends of the ellipse's axes, the major axis' first, as DICOM's ELLIPSE has them."""
    ends = ellipse.ends
    return ends if np.linalg.norm(ellipse.axis_a) >= np.linalg.norm(ellipse.axis_b) else ends[[2, 3, 0, 1]]


def ellipse_measures(volume: Volume, ellipses: Sequence[Ellipse]) -> list[EllipseStats]:
    """The statistics of each ellipse; one that does not lie on a slice is refused, numbered."""
    out = []
    for n, e in enumerate(ellipses, start=1):
        try:
            out.append(ellipse_stats(volume, e))
        except MedviewerError as exc:
            raise MedviewerError(f"ellipse {n}: {exc.message}") from None
    return out


def build_measurements_sr(volume: Volume, rulers: Sequence[Ruler], ellipses: Sequence[Ellipse] = (),
                          bidirectionals: Sequence[Bidirectional] = (), *, observer_name: str | None = None,
                          source_images: Sequence | None = None, series_number: int = 303):
    """A Comprehensive 3D SR document holding a TID 1500 measurement report of the rulers,
    bidirectionals and ellipses."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from medviewer.export.sources import source_datasets
    from medviewer.export.sr import measurement_report_sr

    if not rulers and not ellipses and not bidirectionals:
        raise MedviewerError("no measurements to report")
    images = list(source_images) if source_images is not None else source_datasets(volume)
    if len(images) != volume.shape[0]:
        raise MedviewerError("a measurement SR needs a series of single-frame images, one per slice")
    frame = volume.frame_of_reference_uid
    used = {}

    def region(points_mm: np.ndarray, slice_index: int | None, planar, spatial):
        """The SCOORD a measurement is inferred from: on its source image in pixel coordinates
        ((0, 0) its top-left corner) when on an axial slice (``slice_index``), else in mm in the
        frame of reference (SCOORD3D)."""
        if slice_index is not None:
            image = images[slice_index]
            used[image.SOPInstanceUID] = image
            pixels = volume.patient_to_index(points_mm)[:, :2] + 0.5
            return hd.sr.CoordinatesForMeasurement(
                graphic_type=planar, graphic_data=pixels, source_image=hd.sr.SourceImageForRegion(
                    referenced_sop_class_uid=image.SOPClassUID, referenced_sop_instance_uid=image.SOPInstanceUID))
        if not frame:
            raise MedviewerError("the series has no frame of reference UID: a measurement across its slices "
                                 "cannot be placed in an SR; export the measurements as CSV")
        used.update((image.SOPInstanceUID, image) for image in images)   # all share the frame
        return hd.sr.CoordinatesForMeasurement3D(graphic_type=spatial, graphic_data=np.asarray(points_mm, dtype=float),
                                                 frame_of_reference_uid=frame)

    def line(points_mm, slice_index):
        return region(np.asarray(points_mm, dtype=float), slice_index, hd.sr.GraphicTypeValues.POLYLINE,
                      hd.sr.GraphicTypeValues3D.POLYLINE)

    def group(tool: str, measurements, label: str):
        # TID 1501, each measurement inferred from its own coordinates, with Cornerstone's tool
        # named in the tracking identifier: the shape OHIF writes, and re-opens as an editable tool;
        # the user's label as the group's comment (TID 1501's TEXT row), where OHIF keeps its own
        made = hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"{OHIF_TOOL_TAG}:{tool}"),
            measurements=measurements)
        if label:
            made[0].ContentSequence.append(hd.sr.TextContentItem(
                name=codes.DCM.Comment, value=label, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
        return made

    # SNOMED CT's codes, with the capitals of dcmjs' meanings: Cornerstone finds the two axes by
    # their meaning, letter for letter
    LONG_AXIS, SHORT_AXIS = (hd.sr.CodedConcept(value=c.value, scheme_designator="SCT", meaning=m)
                             for c, m in ((codes.SCT.LongAxis, "Long Axis"), (codes.SCT.ShortAxis, "Short Axis")))
    groups = []
    for m, ruler in zip(lengths(volume, rulers), rulers):
        groups.append(group("Length", [hd.sr.Measurement(
            name=codes.SCT.Length, value=round(m.length_mm, 3), unit=codes.UCUM.Millimeter,
            referenced_coordinates=[line([m.start_mm, m.end_mm], m.slice_index if m.axis == 2 else None)])],
            ruler.label))
    for b in bidirectionals:
        axis, slice_index, _, _ = placement(volume, b.ends)
        on_image = slice_index if axis == 2 else None
        groups.append(group("Bidirectional", [
            hd.sr.Measurement(name=name, value=round(value, 3), unit=codes.UCUM.Millimeter,
                              referenced_coordinates=[line(ends, on_image)])
            for name, value, ends in ((LONG_AXIS, b.long_mm, [b.long_start, b.long_end]),
                                      (SHORT_AXIS, b.short_mm, [b.short_start, b.short_end]))], b.label))
    for e, st in zip(ellipses, ellipse_measures(volume, ellipses)):
        ellipse = region(major_first(e), st.slice_index if st.axis == 2 else None,
                         hd.sr.GraphicTypeValues.ELLIPSE, hd.sr.GraphicTypeValues3D.ELLIPSE)
        measurements = [hd.sr.Measurement(name=codes.SCT.Area, value=round(st.area_mm2, 3),
                                          unit=codes.UCUM.SquareMillimeter, referenced_coordinates=[ellipse])]
        if st.unit == "HU" and st.pixel_count:
            measurements += [hd.sr.Measurement(name=codes.DCM.AttenuationCoefficient, value=round(float(v), 2),
                                               unit=codes.UCUM.HounsfieldUnit, derivation=d)
                             for d, v in ((codes.SCT.Mean, st.mean), (codes.SCT.StandardDeviation, st.std),
                                          (codes.SCT.Minimum, st.minimum), (codes.SCT.Maximum, st.maximum))]
        groups.append(group("EllipticalROI", measurements, e.label))
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
                       ellipses: Sequence[Ellipse] = (), bidirectionals: Sequence[Bidirectional] = (),
                       force: bool = False, **options) -> str:
    """Write the rulers, bidirectionals and ellipses as CSV (``.csv``) or a TID 1500 SR
    (``.dcm``), atomically."""
    out = os.fspath(out)
    check_target(out, force)
    if not rulers and not ellipses and not bidirectionals:
        raise MedviewerError("no measurements to export", out)
    try:
        if out.lower().endswith(".csv"):
            return write_text(out, measurements_csv(volume, rulers, ellipses, bidirectionals), force=force)
        if out.lower().endswith(".dcm"):
            if not volume.source_sop_instance_uids:
                raise MedviewerError("a DICOM SR references the DICOM images measured on, and this image was not "
                                     "read from DICOM: export the measurements as .csv")
            return write_dataset(out, build_measurements_sr(volume, rulers, ellipses, bidirectionals, **options),
                                 force=force)
    except MedviewerError as exc:
        raise MedviewerError(exc.message, out) from None
    raise MedviewerError("measurements are written as .csv or .dcm (DICOM SR)", out)
