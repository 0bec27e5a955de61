"""Length measurements read back from a DICOM SR measurement report (TID 1500): ours
(:mod:`medviewer.export.lengths`) and those of OHIF's length tool, as rulers on an image.

A measurement group (DCM 125007) gives a ruler when it holds an open POLYLINE of two points: a
SCOORD on one of the image's slices (pixel column and row, the image's top-left corner at 0, 0),
or a SCOORD3D in the image's frame of reference (mm). The polyline may sit at the group's level
(TID 1410 "Image Region", as highdicom writes it) or under its Length measurement ("inferred
from", as OHIF's dcmjs writes it). The caption is the group's Length (SNOMED CT 410668003) in mm
where there is one, else the distance between the ends.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pydicom

from medviewer.core.document import Ruler
from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume

MEASUREMENT_GROUP = "125007"
LENGTH = "410668003"


@dataclass
class LengthsRead:
    rulers: list[Ruler]
    warnings: list[str] = field(default_factory=list)


def _concept(item) -> str:
    seq = item.get("ConceptNameCodeSequence")
    return str(seq[0].CodeValue) if seq else ""


def _walk(items):
    for item in items:
        yield item
        yield from _walk(item.get("ContentSequence", []))


def _referenced_image(scoord) -> tuple[str, int | None] | None:
    """The SOP Instance UID (and frame number, for a multi-frame image) of the image a SCOORD
    lies on: its 'selected from' IMAGE item."""
    for child in scoord.get("ContentSequence", []):
        refs = child.get("ReferencedSOPSequence")
        if child.get("ValueType") == "IMAGE" and refs:
            frames = refs[0].get("ReferencedFrameNumber")
            frame = int(frames[0] if isinstance(frames, (list, tuple, pydicom.multival.MultiValue)) else frames) \
                if frames not in (None, "") else None
            return str(refs[0].ReferencedSOPInstanceUID), frame
    return None


def read_lengths_sr(path: str | os.PathLike, volume: Volume) -> LengthsRead:
    """The two-point polylines of the SR's measurement groups that lie on ``volume`` (a DICOM
    series: its slices' SOP Instance UIDs, its frame of reference), as rulers in LPS mm."""
    path = os.fspath(path)
    try:
        ds = pydicom.dcmread(path)
    except Exception as exc:
        raise MedviewerError(f"not a readable DICOM file ({exc})", path) from None
    if str(ds.get("Modality", "")) != "SR" or "ContentSequence" not in ds:
        raise MedviewerError("not a DICOM SR document", path)
    multiframe = volume.source_frame_numbers is not None   # slices are frames of one image: keyed by frame
    frames = volume.source_frame_numbers if multiframe else (None,) * len(volume.source_sop_instance_uids)
    slices = {(uid, frame): k for k, (uid, frame) in enumerate(zip(volume.source_sop_instance_uids, frames))}
    rulers: list[Ruler] = []
    elsewhere = skipped = 0
    for group in _walk(ds.ContentSequence):
        if _concept(group) != MEASUREMENT_GROUP:
            continue
        items = list(_walk(group.get("ContentSequence", [])))
        lines = [i for i in items if i.get("ValueType") in ("SCOORD", "SCOORD3D")
                 and str(i.get("GraphicType", "")) == "POLYLINE"]
        if not lines:
            continue
        line = lines[0]
        values = [float(v) for v in line.GraphicData]
        if line.ValueType == "SCOORD" and len(values) == 4:
            uid, frame = _referenced_image(line) or ("", None)
            k = slices.get((uid, frame if multiframe else None))
            if k is None:
                elsewhere += 1
                continue
            (c0, r0), (c1, r1) = np.reshape(values, (2, 2)) - 0.5   # pixel corners -> index
            ends = volume.index_to_patient(np.array([[c0, r0, k], [c1, r1, k]], dtype=float))
        elif line.ValueType == "SCOORD3D" and len(values) == 6:
            if str(line.get("ReferencedFrameOfReferenceUID", "")) != (volume.frame_of_reference_uid or ""):
                elsewhere += 1
                continue
            ends = np.reshape(values, (2, 3))
        else:
            skipped += 1   # a polygon, a path of several points: not a length
            continue
        length = next((float(i.MeasuredValueSequence[0].NumericValue) for i in items
                       if i.get("ValueType") == "NUM" and _concept(i) == LENGTH and i.get("MeasuredValueSequence")),
                      float(np.linalg.norm(ends[1] - ends[0])))
        rulers.append(Ruler(ends[0], ends[1], f"{length:.1f} mm"))
    warnings = []
    if elsewhere:
        warnings.append(f"{elsewhere} measurement(s) lie on images of another series")
    if skipped:
        warnings.append(f"{skipped} region(s) other than lines were left out")
    if not rulers:
        raise MedviewerError("no length measurements on this series in this SR"
                             + (f" ({'; '.join(warnings)})" if warnings else ""), path)
    return LengthsRead(rulers, warnings)
