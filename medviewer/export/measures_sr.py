"""Lesion measures as a DICOM SR measurement report (TID 1500) about a DICOM SEG: the template
that 3D Slicer's Quantitative Reporting, dcmqi and the Imaging Data Commons use for measurements
of segmentations (not yet opened in Slicer itself).

Each segment with voxels becomes one "Volumetric ROI measurements" group (TID 1411) that
references its segment in the SEG (and the SEG's source series), with the segment's type as its
finding and these measurements: Volume (mL), Long axis and Short axis (the RECIST diameters of
:func:`medviewer.core.measures.measure_segments`, mm), and the CT attenuation (HU) of its voxels
derived as Mean, Standard deviation, Minimum and Maximum. The observer is medviewer, a device.
"""

from __future__ import annotations

import os
from typing import Sequence

from medviewer import __version__
from medviewer.core.atomic import check_target, write_dataset
from medviewer.core.errors import MedviewerError
from medviewer.core.measures import LesionMeasures
from medviewer.core.segments import Segment
from medviewer.core.volume import Volume


def seg_path_for(out: str) -> str:
    """Where the SEG that an SR report ``out`` refers to is written: beside it, ``<stem>-seg.dcm``."""
    stem = out[:-4] if out.lower().endswith(".dcm") else out
    return f"{stem}-seg.dcm"


def build_measures_sr(volume: Volume, seg, segments: Sequence[Segment], measures: Sequence[LesionMeasures], *,
                      source_images: Sequence, series_number: int = 304):
    """A Comprehensive 3D SR of ``measures`` (one per segment with voxels) about the segments of
    ``seg`` (a highdicom Segmentation built from ``segments``, in that order), on ``volume``'s
    source images ``source_images``."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from medviewer.export.sr import measurement_report_sr

    numbers = {s.label: n for n, s in enumerate(segments, start=1)}   # as build_seg numbers them
    by_label = {s.label: s for s in segments}
    series_uid = str(source_images[0].SeriesInstanceUID)
    ml = hd.sr.CodedConcept("ml", "UCUM", "milliliter")
    groups = []
    for m in measures:
        segment = by_label[m.label]

        def hu(derivation, value):
            return hd.sr.Measurement(name=codes.DCM.AttenuationCoefficient, value=round(float(value), 2),
                                     unit=codes.UCUM.HounsfieldUnit, derivation=derivation)
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=segment.name[:64]),
            referenced_segment=hd.sr.ReferencedSegment(
                sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID,
                segment_number=numbers[m.label],
                source_series=hd.sr.SourceSeriesForSegmentation(series_uid)),
            finding_type=hd.sr.CodedConcept(segment.type.value, segment.type.scheme, segment.type.meaning),
            measurements=[
                hd.sr.Measurement(name=codes.SCT.Volume, value=round(m.volume_ml, 3), unit=ml),
                hd.sr.Measurement(name=codes.SCT.LongAxis, value=round(m.long_axis_mm, 2), unit=codes.UCUM.Millimeter),
                hd.sr.Measurement(name=codes.SCT.ShortAxis, value=round(m.short_axis_mm, 2), unit=codes.UCUM.Millimeter),
                hu(codes.SCT.Mean, m.mean), hu(codes.SCT.StandardDeviation, m.std),
                hu(codes.SCT.Minimum, m.minimum), hu(codes.SCT.Maximum, m.maximum),
            ],
        ))
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="medviewer", model_name=f"medviewer {__version__}"))
    return measurement_report_sr(groups, [seg, *source_images],
                                 hd.sr.ObservationContext(observer_device_context=observer),
                                 description="medviewer lesion measures", series_number=series_number)


def write_measures_sr(volume: Volume, labels: Volume, segments: Sequence[Segment], out: str | os.PathLike, *,
                      force: bool = False, source_images: Sequence | None = None) -> tuple[str, str]:
    """Write the segments as a SEG beside ``out`` (:func:`seg_path_for`) and their measures as an
    SR at ``out`` that refers to it; both are checked before either is written, and the SEG is
    removed again if the SR cannot be written. Returns (SR path, SEG path)."""
    import numpy as np

    from medviewer.core.measures import measure_segments
    from medviewer.export.seg import build_seg
    from medviewer.export.sources import source_datasets

    out = os.fspath(out)
    seg_out = seg_path_for(out)
    for path in (out, seg_out):
        check_target(path, force)
    images = list(source_images) if source_images is not None else source_datasets(volume)
    if volume.source_frame_numbers is not None or len(images) != volume.shape[0]:
        raise MedviewerError("a measurement report needs a series of single-frame images, one per slice", out)
    seg = build_seg(volume, labels, segments, source_images=images)
    present = [s.label for s in segments if np.any(labels.array == s.label)]
    measures = measure_segments(volume, labels, present)
    sr = build_measures_sr(volume, seg, segments, measures, source_images=images)
    write_dataset(seg_out, seg, force=force)
    try:
        write_dataset(out, sr, force=force)
    except BaseException:
        os.remove(seg_out)
        raise
    return out, seg_out
