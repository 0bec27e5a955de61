"""RTSTRUCT export: a label map -> one ROI of closed planar contours per segment.

Contours are traced per slice by rt-utils' OpenCV tracer (``find_mask_contours``: every outer
boundary and every hole) on the mask doubled in each direction, so that they enclose the centres
of the outline voxels by a quarter of a pixel (see ``mask_contours``), and placed in patient space
by the Volume's geometry, on the slices in the Volume's order (so rt-utils' own slice ordering and
its row/column spacing convention play no part). The dataset is written with pydicom.

Import (contours -> mask) is ``medviewer.io.annotations.read_rtstruct``.
"""

from __future__ import annotations

import datetime
import os
from typing import Sequence

import numpy as np

from medviewer import __version__
from medviewer.core.errors import MedviewerError
from medviewer.core.segments import Segment, default_segments
from medviewer.core.volume import Volume
from medviewer.core.atomic import check_target, write_dataset
from medviewer.export.common import tidy_copied_attributes

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"


def mask_contours(mask: np.ndarray, volume: Volume) -> list[tuple[int, np.ndarray]]:
    """(slice k, contour points (n, 3) in LPS mm) for every outline of a boolean mask.

    Each outline runs a quarter of a pixel outside the centres of the mask's edge pixels (traced
    on the mask doubled in each direction), so that a reader that fills the pixels whose centres
    lie inside the contour (plastimatch, so SlicerRT; our own reader) gets the mask back exactly.
    An outline through the edge pixels' centres leaves each of them on the line, where such a
    reader keeps or drops it as it happens: plastimatch dropped them, a ring of 4.5% of an expert's
    sarcoma contour."""
    from rt_utils.image_helper import find_mask_contours

    out = []
    for k in np.nonzero(mask.reshape(mask.shape[0], -1).any(axis=1))[0]:
        doubled = np.repeat(np.repeat(mask[k].astype(np.uint8), 2, axis=0), 2, axis=1)
        contours, _ = find_mask_contours(doubled, approximate_contours=True)
        for contour in contours:
            # a doubled pixel's centre u lies at (u - 0.5) / 2 in the pixel's index: i - 0.25 or i + 0.25
            cr = (np.asarray(contour, dtype=float).reshape(-1, 2) - 0.5) / 2.0  # (col, row)
            ijk = np.column_stack([cr, np.full(len(cr), float(k))])
            out.append((int(k), volume.index_to_patient(ijk)))
    return out


def _copy(src, dst, keywords) -> None:
    for kw in keywords:
        value = src.get(kw)
        setattr(dst, kw, value if value is not None else "")


def build_rtstruct(source: Volume, labels: Volume, segments: Sequence[Segment] | None = None, *,
                   source_images: Sequence | None = None, series_description: str = "medviewer contours",
                   series_number: int = 301, deidentifier=None):
    """The RTSTRUCT dataset (not written) for ``labels`` on ``source``."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

    from medviewer.export.sources import source_datasets

    if not source.same_grid(labels):
        raise MedviewerError("the label map is not on the source series' grid")
    lab = np.asarray(labels.array)
    if segments is None:
        segments = default_segments(v for v in np.unique(lab) if v != 0)
    segments = list(segments)
    if not segments:
        raise MedviewerError("nothing to export: the label map is empty")
    images = list(source_images) if source_images is not None else source_datasets(source)
    if deidentifier is not None:
        images = [deidentifier.apply(ds) for ds in images]
    if source.source_frame_numbers is not None or len(images) != source.shape[0]:
        raise MedviewerError("RTSTRUCT export needs a series of single-frame images, one per slice")
    first = images[0]
    frame_uid = str(first.get("FrameOfReferenceUID", "") or source.frame_of_reference_uid or "")
    if not frame_uid:
        raise MedviewerError("the source images have no Frame of Reference UID")

    now = datetime.datetime.now()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = RTSTRUCT_SOP_CLASS
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = RTSTRUCT_SOP_CLASS
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    _copy(first, ds, ["PatientName", "PatientID", "PatientBirthDate", "PatientSex"])
    _copy(first, ds, ["StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName",
                      "StudyID", "AccessionNumber"])
    tidy_copied_attributes(ds)
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = first.get("PositionReferenceIndicator", "") or ""
    if first.get("StudyDescription"):
        ds.StudyDescription = first.StudyDescription
    for kw in ("PatientIdentityRemoved", "DeidentificationMethod"):
        if kw in first:
            setattr(ds, kw, first.get(kw))
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = series_number
    ds.SeriesDescription = series_description[:64]
    ds.SeriesDate = ds.InstanceCreationDate
    ds.SeriesTime = ds.InstanceCreationTime
    ds.OperatorsName = ""
    ds.Manufacturer = "medviewer"
    ds.ManufacturerModelName = "medviewer"
    ds.SoftwareVersions = __version__
    ds.InstanceNumber = 1
    ds.StructureSetLabel = "medviewer"
    ds.StructureSetName = series_description[:64]
    ds.StructureSetDate = ds.InstanceCreationDate
    ds.StructureSetTime = ds.InstanceCreationTime

    contour_images = []
    for img in images:
        item = Dataset()
        item.ReferencedSOPClassUID = img.SOPClassUID
        item.ReferencedSOPInstanceUID = img.SOPInstanceUID
        contour_images.append(item)
    series_item = Dataset()
    series_item.SeriesInstanceUID = first.SeriesInstanceUID
    series_item.ContourImageSequence = contour_images
    study_item = Dataset()
    study_item.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired, but what RT systems expect)
    study_item.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study_item.RTReferencedSeriesSequence = [series_item]
    frame_item = Dataset()
    frame_item.FrameOfReferenceUID = frame_uid
    frame_item.RTReferencedStudySequence = [study_item]
    ds.ReferencedFrameOfReferenceSequence = [frame_item]

    rois, contours_seq, observations = [], [], []
    for number, segment in enumerate(segments, start=1):
        mask = lab == segment.label
        if not mask.any():
            continue
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = frame_uid
        roi.ROIName = segment.name[:64]
        if segment.description:
            roi.ROIDescription = segment.description[:64]
        roi.ROIGenerationAlgorithm = segment.algorithm.type
        if segment.algorithm.name:
            roi.ROIGenerationDescription = f"{segment.algorithm.name} {segment.algorithm.version or ''}".strip()[:64]
        rois.append(roi)
        rc = Dataset()
        rc.ReferencedROINumber = number
        rc.ROIDisplayColor = list(segment.color)
        items = []
        for k, points in mask_contours(mask, source):
            c = Dataset()
            ref = Dataset()
            ref.ReferencedSOPClassUID = images[k].SOPClassUID
            ref.ReferencedSOPInstanceUID = images[k].SOPInstanceUID
            c.ContourImageSequence = [ref]
            # one- and two-point outlines (a lone voxel, a thin line) stay CLOSED_PLANAR: they
            # enclose their voxels' centres, which the importer keeps as outline voxels
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = len(points)
            c.ContourData = [float(f"{v:.4f}") for v in points.ravel()]
            items.append(c)
        rc.ContourSequence = items
        contours_seq.append(rc)
        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = "GTV" if segment.type.value in ("108369006", "4147007") else ""
        obs.ROIInterpreter = ""
        observations.append(obs)
    if not rois:
        raise MedviewerError("nothing to export: every segment is empty")
    ds.StructureSetROISequence = rois
    ds.ROIContourSequence = contours_seq
    ds.RTROIObservationsSequence = observations
    ds.ApprovalStatus = "UNAPPROVED"
    return ds


def write_rtstruct(source: Volume, labels: Volume, segments: Sequence[Segment] | None,
                   out: str | os.PathLike, *, force: bool = False, **options) -> str:
    """Write an RTSTRUCT of ``labels`` over ``source`` to ``out`` (atomic; ``force`` replaces)."""
    check_target(out, force)
    ds = build_rtstruct(source, labels, segments, **options)
    return write_dataset(out, ds, force=force)
