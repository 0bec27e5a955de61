"""Detection results: boxes as JSON and as a DICOM SR measurement report (TID 1500, highdicom).

Each box becomes one "Planar ROI measurements" group: a closed POLYLINE image region (pixel
coordinates, on the source image of its slice) with a tracking identifier, the finding (SNOMED CT
lesion) and, when there is a score, a "Probability" (DCM) measurement in [0, 1] (unit "1"). The observer is the detector, a device named by the plugin.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

from medviewer import __version__
from medviewer.core.errors import MedviewerError
from medviewer.core.segments import DetectionBox
from medviewer.core.volume import Volume
from medviewer.core.atomic import check_target, write_dataset, write_text
from medviewer.export.common import tidy_copied_attributes


def detections_dict(volume: Volume, boxes: Sequence[DetectionBox], *, algorithm_name: str = "medviewer",
                    algorithm_version: str = __version__) -> dict:
    out = {
        "format": "medviewer detections", "version": 1,
        "algorithm": {"name": algorithm_name, "version": algorithm_version},
        "study_instance_uid": volume.meta.get("study_instance_uid"),
        "series_instance_uid": volume.meta.get("series_instance_uid"),
        "frame_of_reference_uid": volume.frame_of_reference_uid,
        "coordinates": "pixel (column x, row y) corners, inclusive, of the slice; centre_mm in LPS mm",
        "boxes": [],
    }
    for b in boxes:
        d = b.to_dict()
        if b.sop_instance_uid is None and volume.source_sop_instance_uids:
            d["sop_instance_uid"] = volume.source_sop_instance_uids[b.slice_index]
        centre = volume.index_to_patient([(b.xmin + b.xmax) / 2, (b.ymin + b.ymax) / 2, b.slice_index])
        d["centre_mm"] = [round(float(c), 2) for c in centre]
        d["width_mm"] = round((b.xmax - b.xmin + 1) * volume.spacing[0], 2)
        d["height_mm"] = round((b.ymax - b.ymin + 1) * volume.spacing[1], 2)
        out["boxes"].append(d)
    return out


def build_detection_sr(volume: Volume, boxes: Sequence[DetectionBox], *, algorithm_name: str = "medviewer",
                       algorithm_version: str = __version__, source_images: Sequence | None = None,
                       series_number: int = 302):
    """A Comprehensive 3D SR document holding a TID 1500 measurement report of the boxes."""
    import highdicom as hd
    import numpy as np
    from pydicom.sr.codedict import codes

    from medviewer.export.sources import source_datasets

    if not boxes:
        raise MedviewerError("no boxes to report")
    images = list(source_images) if source_images is not None else source_datasets(volume)
    if len(images) != volume.shape[0]:
        raise MedviewerError("a detection SR needs a series of single-frame images, one per slice")
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name=algorithm_name[:64], model_name=f"{algorithm_name} {algorithm_version}"[:64]))
    groups = []
    used = {}
    for n, b in enumerate(boxes, start=1):
        image = images[b.slice_index]
        used[image.SOPInstanceUID] = image
        x0, y0, x1, y1 = b.xmin, b.ymin, b.xmax + 1, b.ymax + 1  # pixel corners -> outline of the pixels
        # SCOORD (column, row) puts the image's top-left corner at (0, 0) and pixel centres at
        # +0.5, so the box around pixels xmin..xmax runs from xmin to xmax + 1
        polygon = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], dtype=float)
        region = hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=polygon,
            source_image=hd.sr.SourceImageForRegion(
                referenced_sop_class_uid=image.SOPClassUID, referenced_sop_instance_uid=image.SOPInstanceUID))
        measurements = []
        if b.score is not None:
            measurements.append(hd.sr.Measurement(
                name=codes.DCM.Probability, value=float(b.score),
                unit=hd.sr.CodedConcept("1", "UCUM", "no units")))
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"{b.label} {n}"[:64]),
            referenced_region=region,
            finding_type=hd.sr.CodedConcept(b.finding.value, b.finding.scheme, b.finding.meaning),
            measurements=measurements or None,
        ))
    return measurement_report_sr(groups, list(used.values()),
                                 hd.sr.ObservationContext(observer_device_context=observer),
                                 description="medviewer detections", series_number=series_number)


def measurement_report_sr(groups, evidence, observation_context, *, description: str, series_number: int):
    """A Comprehensive 3D SR document: a TID 1500 measurement report of ``groups`` (planar ROI
    measurement groups) on the CT images ``evidence`` (pydicom headers)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    report = hd.sr.MeasurementReport(
        observation_context=observation_context,
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=groups,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence, content=report,
        series_instance_uid=hd.UID(), series_number=series_number, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="medviewer", series_description=description,
        is_complete=True, is_final=False, is_verified=False,
    )
    tidy_copied_attributes(sr)
    return sr


def write_detections(volume: Volume, boxes: Sequence[DetectionBox], out: str | os.PathLike, *,
                     force: bool = False, **options) -> str:
    """Write boxes as JSON (``.json``) or a TID 1500 SR (``.dcm``), atomically."""
    out = os.fspath(out)
    check_target(out, force)
    if out.lower().endswith(".json"):
        keys = {k: v for k, v in options.items() if k in ("algorithm_name", "algorithm_version")}
        return write_text(out, json.dumps(detections_dict(volume, boxes, **keys), indent=2), force=force)
    if out.lower().endswith(".dcm"):
        return write_dataset(out, build_detection_sr(volume, boxes, **options), force=force)
    raise MedviewerError("detections are written as .json or .dcm (DICOM SR)", out)
