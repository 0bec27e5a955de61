"""Measurements read back from a DICOM SR measurement report (TID 1500): ours
(:mod:`medviewer.export.measurements`) and those of OHIF's length, bidirectional and elliptical
ROI tools, as rulers, bidirectionals and ellipses on an image.

A measurement group (DCM 125007) gives a ruler when it holds an open POLYLINE of two points: a
SCOORD on one of the image's slices (pixel column and row, the image's top-left corner at 0, 0),
or a SCOORD3D in the image's frame of reference (mm). The polyline may sit at the group's level
(a TID 1410 "Image Region", as medviewer wrote it until December 2026) or under its Length
measurement ("inferred from", as OHIF and medviewer now write it). The caption is the group's
Length (SNOMED CT 410668003) in mm where there is one, else the distance between the ends. A group whose region is an ELLIPSE of
four points (the ends of its axes, the major first, as DICOM defines it) gives an ellipse; its
caption is left to the reader, who measures it on the image (:mod:`medviewer.core.roi_stats`).
A group with a "Long axis" (SNOMED CT 103339001) and a "Short axis" (103340004), each inferred
from a two-point POLYLINE, gives a bidirectional measurement. A group's comment (DCM 121106, a
TEXT item) is the measurement's label, as OHIF writes its label.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pydicom

from medviewer.core.document import Bidirectional, Ellipse, Ruler
from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume
from medviewer.io.guard import describe_exception, read_dataset, reads_file

MEASUREMENT_GROUP = "125007"
COMMENT = "121106"   # a group's comment (TID 1501): the measurement's label, as OHIF and medviewer write it
LENGTH = "410668003"
LONG_AXIS, SHORT_AXIS = "103339001", "103340004"


@dataclass
class MeasurementsRead:
    rulers: list[Ruler]
    ellipses: list[Ellipse] = field(default_factory=list)
    bidirectionals: list[Bidirectional] = field(default_factory=list)
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


class _Elsewhere(Exception):
    """A SCOORD on an image of another series, or a SCOORD3D in another frame of reference."""


@reads_file("DICOM SR")
def read_measurements_sr(path: str | os.PathLike, volume: Volume) -> MeasurementsRead:
    """The two-point polylines, bidirectionals and four-point ellipses of the SR's measurement
    groups that lie on ``volume`` (a DICOM series: its slices' SOP Instance UIDs, its frame of
    reference), in LPS mm."""
    path = os.fspath(path)
    try:
        ds = read_dataset(path)
    except (MedviewerError, MemoryError):
        raise  # the guard around this reader words them
    except Exception as exc:
        raise MedviewerError(f"not a readable DICOM file ({describe_exception(exc)})", path) from None
    if str(ds.get("Modality", "")) != "SR" or "ContentSequence" not in ds:
        raise MedviewerError("not a DICOM SR document", path)
    multiframe = volume.source_frame_numbers is not None   # slices are frames of one image: keyed by frame
    frames = volume.source_frame_numbers if multiframe else (None,) * len(volume.source_sop_instance_uids)
    slices = {(uid, frame): k for k, (uid, frame) in enumerate(zip(volume.source_sop_instance_uids, frames))}

    def points_of(scoord, count: int) -> np.ndarray | None:
        """The SCOORD's points in LPS mm, None unless it holds ``count`` points."""
        values = [float(v) for v in scoord.GraphicData]
        if scoord.ValueType == "SCOORD":
            if len(values) != 2 * count:
                return None
            uid, frame = _referenced_image(scoord) or ("", None)
            k = slices.get((uid, frame if multiframe else None))
            if k is None:
                raise _Elsewhere
            pixels = np.reshape(values, (count, 2)) - 0.5   # pixel corners -> index
            return volume.index_to_patient(np.c_[pixels, np.full(count, k)])
        if len(values) != 3 * count:
            return None
        if str(scoord.get("ReferencedFrameOfReferenceUID", "")) != (volume.frame_of_reference_uid or ""):
            raise _Elsewhere
        return np.reshape(values, (count, 3))

    def scoords(items) -> list:
        return [i for i in items if i.get("ValueType") in ("SCOORD", "SCOORD3D")]

    read = MeasurementsRead([])
    elsewhere = skipped = 0
    for group in _walk(ds.ContentSequence):
        if _concept(group) != MEASUREMENT_GROUP:
            continue
        items = list(_walk(group.get("ContentSequence", [])))
        nums = {_concept(i): i for i in items if i.get("ValueType") == "NUM"}
        label = next((str(i.TextValue).strip() for i in group.get("ContentSequence", [])
                      if i.get("ValueType") == "TEXT" and _concept(i) == COMMENT and i.get("TextValue")), "")
        try:
            if LONG_AXIS in nums and SHORT_AXIS in nums:   # each axis inferred from its own line
                axes = [scoords(nums[c].get("ContentSequence", [])) for c in (LONG_AXIS, SHORT_AXIS)]
                lines = [points_of(a[0], 2) if a else None for a in axes]
                if all(line is not None for line in lines):
                    read.bidirectionals.append(Bidirectional(*lines[0], *lines[1], label=label))
                    continue
            regions = scoords(items)
            if not regions:
                continue
            region = regions[0]
            kind = str(region.get("GraphicType", ""))
            count = {"POLYLINE": 2, "ELLIPSE": 4}.get(kind)
            points = points_of(region, count) if count else None
        except _Elsewhere:
            elsewhere += 1
            continue
        if points is None:
            skipped += 1   # a polygon, a path of several points, a point: not a length or an ellipse
            continue
        if kind == "ELLIPSE":
            read.ellipses.append(Ellipse(points.mean(0), (points[0] - points[1]) / 2, (points[2] - points[3]) / 2,
                                         label=label))
            continue
        length = next((float(i.MeasuredValueSequence[0].NumericValue) for i in items
                       if i.get("ValueType") == "NUM" and _concept(i) == LENGTH and i.get("MeasuredValueSequence")),
                      float(np.linalg.norm(points[1] - points[0])))
        read.rulers.append(Ruler(points[0], points[1], f"{length:.1f} mm", label))
    if elsewhere:
        read.warnings.append(f"{elsewhere} measurement(s) lie on images of another series")
    if skipped:
        read.warnings.append(f"{skipped} region(s) other than lines and ellipses were left out")
    if not read.rulers and not read.ellipses and not read.bidirectionals:
        raise MedviewerError("no lengths, bidirectionals or ellipses on this series in this SR"
                             + (f" ({'; '.join(read.warnings)})" if read.warnings else ""), path)
    return read
