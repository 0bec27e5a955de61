"""The lesion report: measures per segment with provenance and study/series UIDs, as JSON or CSV."""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
from typing import Sequence

from medviewer import __version__
from medviewer.core.measures import measure_segments
from medviewer.core.errors import MedviewerError
from medviewer.core.segments import Segment
from medviewer.core.volume import Volume
from medviewer.core.atomic import write_text

CSV_COLUMNS = (
    "study_instance_uid", "series_instance_uid", "frame_of_reference_uid", "label", "name",
    "algorithm_type", "algorithm_name", "algorithm_version", "volume_ml", "voxel_count",
    "mean_hu", "std_hu", "min_hu", "max_hu", "long_axis_mm", "short_axis_mm", "long_axis_slice",
    "centroid_x_mm", "centroid_y_mm", "centroid_z_mm",
    "bbox_min_x_mm", "bbox_min_y_mm", "bbox_min_z_mm", "bbox_max_x_mm", "bbox_max_y_mm", "bbox_max_z_mm",
    "bbox_min_z", "bbox_min_y", "bbox_min_x", "bbox_max_z", "bbox_max_y", "bbox_max_x",
)


def build_report(image: Volume, labels: Volume, segments: Sequence[Segment], *,
                 provenance: dict | None = None, deidentifier=None) -> dict:
    """The report as a dict (JSON-ready)."""
    segments = [s for s in segments if (labels.array == s.label).any()]
    if not segments:
        raise MedviewerError("nothing to report: the label map is empty")
    measures = measure_segments(image, labels, [s.label for s in segments])
    unit = "HU" if image.modality == "CT" else "image value"
    source = {
        "patient_id": image.meta.get("patient_id"),
        "study_instance_uid": image.meta.get("study_instance_uid"),
        "series_instance_uid": image.meta.get("series_instance_uid"),
        "frame_of_reference_uid": image.frame_of_reference_uid,
        "study_date": image.meta.get("study_date"),
        "series_description": image.meta.get("series_description"),
        "modality": image.modality,
    }
    if deidentifier is not None:
        source = deidentifier.deidentify_meta(source)
    lesions = []
    for s, m in zip(segments, measures):
        d = m.to_dict()
        lesions.append({
            "label": s.label, "name": s.name, "color": list(s.color),
            "category": vars(s.category).copy(), "type": vars(s.type).copy(),
            "algorithm": {"type": s.algorithm.type, "name": s.algorithm.name, "version": s.algorithm.version},
            "volume_ml": round(m.volume_ml, 4), "voxel_count": m.voxel_count,
            "intensity": {"unit": unit, "mean": round(m.mean, 2), "std": round(m.std, 2),
                          "min": m.minimum, "max": m.maximum},
            "recist": {"long_axis_mm": round(m.long_axis_mm, 2), "short_axis_mm": round(m.short_axis_mm, 2),
                       "slice_index": m.long_axis_slice,
                       "long_axis_endpoints_mm": [list(map(lambda v: round(v, 2), p)) for p in m.long_axis_endpoints_mm]},
            "centroid_mm": [round(v, 2) for v in d["centroid_mm"]],
            "bounding_box": {"min_zyx": list(m.bbox_min_zyx), "max_zyx": list(m.bbox_max_zyx),
                             "min_mm": [round(v, 2) for v in m.bbox_min_mm],
                             "max_mm": [round(v, 2) for v in m.bbox_max_mm]},
        })
    return {
        "format": "medviewer lesion report", "version": 1,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "software": {"name": "medviewer", "version": __version__},
        "provenance": provenance or {},
        "source": source,
        "coordinates": "DICOM patient LPS mm; voxel indices (z, y, x) from 0",
        "diameters": "longest in-plane (axial) diameter over all slices between voxel outline corners, "
                     "and the extent perpendicular to it on that slice",
        "lesions": lesions,
    }


def report_rows(report: dict) -> list[dict]:
    rows = []
    src = report["source"]
    for les in report["lesions"]:
        rows.append({
            "study_instance_uid": src.get("study_instance_uid"), "series_instance_uid": src.get("series_instance_uid"),
            "frame_of_reference_uid": src.get("frame_of_reference_uid"),
            "label": les["label"], "name": les["name"], "algorithm_type": les["algorithm"]["type"],
            "algorithm_name": les["algorithm"]["name"] or "", "algorithm_version": les["algorithm"]["version"] or "",
            "volume_ml": les["volume_ml"], "voxel_count": les["voxel_count"],
            "mean_hu": les["intensity"]["mean"], "std_hu": les["intensity"]["std"],
            "min_hu": les["intensity"]["min"], "max_hu": les["intensity"]["max"],
            "long_axis_mm": les["recist"]["long_axis_mm"], "short_axis_mm": les["recist"]["short_axis_mm"],
            "long_axis_slice": les["recist"]["slice_index"],
            **dict(zip(("centroid_x_mm", "centroid_y_mm", "centroid_z_mm"), les["centroid_mm"])),
            **dict(zip(("bbox_min_x_mm", "bbox_min_y_mm", "bbox_min_z_mm"), les["bounding_box"]["min_mm"])),
            **dict(zip(("bbox_max_x_mm", "bbox_max_y_mm", "bbox_max_z_mm"), les["bounding_box"]["max_mm"])),
            **dict(zip(("bbox_min_z", "bbox_min_y", "bbox_min_x"), les["bounding_box"]["min_zyx"])),
            **dict(zip(("bbox_max_z", "bbox_max_y", "bbox_max_x"), les["bounding_box"]["max_zyx"])),
        })
    return rows


def report_csv(report: dict) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for row in report_rows(report):
        w.writerow(row)
    return buf.getvalue()


def write_report(report: dict, out: str | os.PathLike, *, force: bool = False) -> str:
    """Write the report as JSON (``.json``) or CSV (``.csv``), atomically."""
    out = os.fspath(out)
    if out.lower().endswith(".json"):
        return write_text(out, json.dumps(report, indent=2), force=force)
    if out.lower().endswith(".csv"):
        return write_text(out, report_csv(report), force=force)
    raise MedviewerError("a report must end with .json or .csv", out)
