"""DICOM SEG and RTSTRUCT objects in a study -> label layers on the image series they reference.

``find_annotations(index, series)`` lists the SEG and RTSTRUCT objects of an indexed folder that
reference an image series (by Referenced Series Instance UID, or else by Frame of Reference UID).
``read_seg(path, volume)`` and ``read_rtstruct(path, volume)`` read one as a label Volume on that
volume's grid, with the segment names and colours (``volume.meta["segments"]`` and
``LabelLayer.segments``).

SEG frames are placed by their source-instance references where these are slices of the volume,
else by their plane positions (a de-identified copy, a re-sliced series with the same grid).
RTSTRUCT contours are placed by their coordinates (never by the referenced SOP instances, which
cropped or re-exported series often do not keep) and filled with the even-odd rule, so that inner
contours cut holes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from medviewer.core.errors import MedviewerError
from medviewer.core.polygon import polygon_mask
from medviewer.core.segments import (
    DEFAULT_COLORS, LESION, MORPHOLOGICALLY_ALTERED_STRUCTURE, AlgorithmInfo, Code, Segment,
)
from medviewer.core.volume import Volume
from medviewer.io.guard import describe_exception, read_dataset, reads_file
from medviewer.io.pixel_checks import NATIVE_SYNTAXES, image_size_problem

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
LABELMAP_SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.7"   # DICOM 2024: one frame holds every segment
RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
_KINDS = {SEG_SOP_CLASS: "SEG", LABELMAP_SEG_SOP_CLASS: "SEG", RTSTRUCT_SOP_CLASS: "RTSTRUCT"}


@dataclass(frozen=True)
class AnnotationRef:
    """A SEG or RTSTRUCT file and what it references."""

    path: str
    kind: str  # "SEG" or "RTSTRUCT"
    sop_instance_uid: str
    series_description: str
    referenced_series_uids: tuple[str, ...]
    frame_of_reference_uid: str | None
    matched_by: str = ""  # "series" or "frame of reference"


@dataclass
class LabelLayer:
    """A label map read from a SEG/RTSTRUCT, on an image's grid."""

    labels: Volume
    segments: list[Segment]
    source: str
    kind: str
    warnings: list[str] = field(default_factory=list)


# ---- discovery -------------------------------------------------------------------------------

def describe_annotation(path: str) -> AnnotationRef | None:
    """What a SEG/RTSTRUCT file references; None for any other file (a damaged one included)."""
    try:
        return _describe(path)
    except MedviewerError:
        return None


@reads_file("DICOM file")
def _describe(path: str) -> AnnotationRef | None:
    ds = read_dataset(path, stop_before_pixels=True)
    kind = _KINDS.get(str(ds.get("SOPClassUID", "")))
    if kind is None:
        return None
    series: list[str] = []
    frame = None
    if kind == "SEG":
        for item in ds.get("ReferencedSeriesSequence", []):
            if item.get("SeriesInstanceUID"):
                series.append(str(item.SeriesInstanceUID))
        frame = str(ds.get("FrameOfReferenceUID", "")) or None
    else:
        for fr in ds.get("ReferencedFrameOfReferenceSequence", []):
            frame = frame or (str(fr.get("FrameOfReferenceUID", "")) or None)
            for study in fr.get("RTReferencedStudySequence", []):
                for s in study.get("RTReferencedSeriesSequence", []):
                    if s.get("SeriesInstanceUID"):
                        series.append(str(s.SeriesInstanceUID))
        if frame is None:
            for roi in ds.get("StructureSetROISequence", []):
                frame = frame or (str(roi.get("ReferencedFrameOfReferenceUID", "")) or None)
    return AnnotationRef(path, kind, str(ds.SOPInstanceUID), str(ds.get("SeriesDescription", "") or ""),
                         tuple(series), frame)


def find_annotations(index, series) -> list[AnnotationRef]:
    """SEG/RTSTRUCT objects in ``index`` (a DicomIndex) that reference image ``series``.

    ``series`` is a SeriesEntry or a loaded DICOM Volume. A reference by Series Instance UID
    wins; objects that name no series of the study but share the Frame of Reference are listed
    too (``matched_by`` says which).
    """
    if isinstance(series, Volume):
        series_uid = series.meta.get("series_instance_uid")
        frame = series.frame_of_reference_uid
    else:
        series_uid, frame = series.uid, series.frame_of_reference_uid
    found: list[AnnotationRef] = []
    for entry in index.all_series():
        for h in entry.instances:
            if h.sop_class_uid not in _KINDS:
                continue
            ref = describe_annotation(h.path)
            if ref is None:
                continue
            if series_uid and series_uid in ref.referenced_series_uids:
                found.append(_matched(ref, "series"))
            elif frame and ref.frame_of_reference_uid == frame and not ref.referenced_series_uids:
                found.append(_matched(ref, "frame of reference"))
            elif frame and ref.frame_of_reference_uid == frame and series_uid is None:
                found.append(_matched(ref, "frame of reference"))
    return found


def _matched(ref: AnnotationRef, how: str) -> AnnotationRef:
    from dataclasses import replace

    return replace(ref, matched_by=how)


def read_annotation(path: str | os.PathLike, volume: Volume) -> LabelLayer:
    """Read a SEG or RTSTRUCT file as a label layer on ``volume``'s grid."""
    path = os.fspath(path)
    ref = describe_annotation(path)
    if ref is None:
        raise MedviewerError("not a DICOM SEG or RTSTRUCT", path)
    return read_seg_layer(path, volume) if ref.kind == "SEG" else read_rtstruct_layer(path, volume)


# ---- SEG -------------------------------------------------------------------------------------

def _code(item) -> Code:
    return Code(str(item.CodeValue), str(item.CodingSchemeDesignator), str(item.CodeMeaning))


def _segment_from_item(item, label: int) -> Segment:
    import highdicom as hd

    color = DEFAULT_COLORS[(label - 1) % len(DEFAULT_COLORS)]
    if "RecommendedDisplayCIELabValue" in item:
        try:
            color = hd.color.CIELabColor.from_dicom_value(item.RecommendedDisplayCIELabValue).to_rgb(clip=True)
        except Exception:
            pass
    alg_type = str(item.get("SegmentAlgorithmType", "MANUAL") or "MANUAL")
    name = version = None
    family = AlgorithmInfo().family
    if "SegmentationAlgorithmIdentificationSequence" in item:
        a = item.SegmentationAlgorithmIdentificationSequence[0]
        name, version = str(a.get("AlgorithmName", "")) or None, str(a.get("AlgorithmVersion", "")) or None
        if "AlgorithmFamilyCodeSequence" in a:
            family = _code(a.AlgorithmFamilyCodeSequence[0])
    try:
        algorithm = AlgorithmInfo(alg_type, name, version, family)  # type: ignore[arg-type]
    except ValueError:
        algorithm = AlgorithmInfo()
    category = (_code(item.SegmentedPropertyCategoryCodeSequence[0])
                if "SegmentedPropertyCategoryCodeSequence" in item else MORPHOLOGICALLY_ALTERED_STRUCTURE)
    seg_type = (_code(item.SegmentedPropertyTypeCodeSequence[0])
                if "SegmentedPropertyTypeCodeSequence" in item else LESION)
    return Segment(label, str(item.get("SegmentLabel", "") or f"segment {label}"), tuple(color),
                   category, seg_type, algorithm, str(item.get("SegmentDescription", "") or ""))


def _check_frames_size(ds, path: str) -> None:
    """Rows x Columns x Number of Frames, as the header says, must be a size to decode and (for
    native pixel data) what the file holds: a damaged Number of Frames made the frames' decoding
    allocate a gigabyte for a SEG of a few kilobytes."""
    if "PixelData" not in ds:
        raise MedviewerError("the SEG holds no pixel data", path)
    rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    frames, bits = int(ds.get("NumberOfFrames", 1) or 0), int(ds.get("BitsAllocated", 1) or 0)
    problem = image_size_problem(rows, columns, frames, 1, bits)
    if problem:
        raise MedviewerError(problem, path)
    syntax = str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2.1"))
    needed = -(-rows * columns * frames * bits // 8)
    if syntax in NATIVE_SYNTAXES and len(ds.PixelData) < needed:
        raise MedviewerError(f"pixel data of {len(ds.PixelData)} bytes is too short for {frames} frame(s) of "
                             f"{rows} x {columns}", path)


def _repack_frames_padded_to_bytes(ds) -> bool:
    """Pack a BINARY SEG's frames into one run of bits, as DICOM has them, where each frame was
    padded to whole bytes instead: OHIF's export (@cornerstonejs/adapters 5.14) writes them so
    when a frame's pixels are not a multiple of 8 (an image of odd width and height), and read as
    DICOM says, every frame after the first would slide by the padding. Told apart by the pixel
    data's length; where both readings give the same length (a few frames, the padding then
    hiding the difference), it is read as DICOM says. True when repacked."""
    if (str(ds.get("SegmentationType", "")) != "BINARY" or int(ds.get("BitsAllocated", 0)) != 1
            or "PixelData" not in ds or ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2.1")
            not in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")):
        return False
    n, pixels = int(ds.get("NumberOfFrames", 1)), int(ds.Rows) * int(ds.Columns)
    per_frame = -(-pixels // 8)
    even = lambda size: size + size % 2  # noqa: E731  (DICOM pads to an even length)
    if pixels % 8 == 0 or len(ds.PixelData) not in (n * per_frame, even(n * per_frame)) \
            or len(ds.PixelData) in (-(-n * pixels // 8), even(-(-n * pixels // 8))):
        return False
    frames = np.frombuffer(ds.PixelData, np.uint8)[:n * per_frame].reshape(n, per_frame)
    bits = np.unpackbits(frames, axis=1, bitorder="little")[:, :pixels]
    packed = np.packbits(bits.reshape(-1), bitorder="little").tobytes()
    ds.PixelData = packed + b"\0" * (len(packed) % 2)
    return True


@reads_file("DICOM SEG")
def read_seg_masks(path: str | os.PathLike, volume: Volume,
                   notes: list[str] | None = None) -> tuple[np.ndarray, list[Segment]]:
    """A SEG as a (slices, rows, cols, segments) boolean stack on ``volume``'s grid; what was
    worth saying about reading it is appended to ``notes``."""
    import highdicom as hd

    path = os.fspath(path)
    try:
        ds = read_dataset(path)
        _check_frames_size(ds, path)
        if _repack_frames_padded_to_bytes(ds) and notes is not None:
            notes.append("its frames were each padded to whole bytes (as OHIF writes a SEG of an image of odd "
                         "size), not packed as DICOM asks; read frame by frame")
        seg = hd.seg.Segmentation.from_dataset(ds, copy=False)
    except (MedviewerError, MemoryError):
        raise  # the guard around this reader words them
    except Exception as exc:
        raise MedviewerError(f"not a readable DICOM SEG ({describe_exception(exc)})", path) from None
    if str(seg.SegmentationType) not in ("BINARY", "FRACTIONAL", "LABELMAP"):
        raise MedviewerError(f"unsupported segmentation type {seg.SegmentationType}", path)
    # a LABELMAP SEG may describe its background as segment 0 (dcmqi, so Slicer, does): not a segment here
    items = [item for item in seg.SegmentSequence if int(item.SegmentNumber) != 0]
    numbers = [int(item.SegmentNumber) for item in items]
    if not numbers:
        raise MedviewerError("the SEG describes no segment", path)
    segments = [_segment_from_item(item, n) for item, n in zip(items, numbers)]
    if (volume.frame_of_reference_uid and seg.get("FrameOfReferenceUID")
            and str(seg.FrameOfReferenceUID) != volume.frame_of_reference_uid):
        raise MedviewerError("this SEG belongs to another frame of reference than the image", path)
    referenced = {str(i.ReferencedSOPInstanceUID) for s in seg.get("ReferencedSeriesSequence", [])
                  for i in s.get("ReferencedInstanceSequence", [])}
    uids = list(dict.fromkeys(volume.source_sop_instance_uids))
    if (referenced and uids and referenced <= set(uids) and volume.source_frame_numbers is None
            and len(uids) == volume.shape[0]):
        try:
            pixels = seg.get_pixels_by_source_instance(
                source_sop_instance_uids=uids, segment_numbers=numbers, combine_segments=False,
                assert_missing_frames_are_empty=True, skip_overlap_checks=True, dtype=np.uint8,
                ignore_spatial_locations=_frames_lie_on_their_sources(seg, volume))
        except (RuntimeError, ValueError, KeyError, IndexError) as exc:
            raise MedviewerError(f"the SEG's frames cannot be placed on the image's slices ({exc})", path) from None
        masks = pixels > 0
    else:
        masks = _place_frames_by_position(seg, volume, numbers, path)
    if masks.shape[:3] != volume.shape:
        raise MedviewerError(f"SEG frames {masks.shape[1:3]} do not fit the image {volume.shape[1:]}", path)
    return masks, segments


def _frames_lie_on_their_sources(seg, volume: Volume) -> bool:
    """Whether each frame of the SEG lies on the slice of the source image it names, by its
    position: what highdicom asks a SEG to state (Spatial Locations Preserved), and what some
    writers leave out (dcmqi, so 3D Slicer), checked here instead."""
    slice_of = {uid: k for k, uid in enumerate(volume.source_sop_instance_uids)}
    try:
        for item in seg.PerFrameFunctionalGroupsSequence:
            source = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
            ijk = volume.patient_to_index([float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient])
            if not np.allclose(ijk, [0.0, 0.0, slice_of[str(source)]], atol=0.05):
                return False
    except (AttributeError, IndexError, KeyError, ValueError):
        return False
    return True


def _place_frames_by_position(seg, volume: Volume, numbers: list[int], path: str) -> np.ndarray:
    out = np.zeros(volume.shape + (len(numbers),), dtype=bool)
    try:
        frames = seg.pixel_array
        per_frame = seg.PerFrameFunctionalGroupsSequence
    except AttributeError:
        raise MedviewerError("SEG frames carry no positions to place them on the image", path) from None
    if frames.ndim == 2:
        frames = frames[None]
    column_of = {n: c for c, n in enumerate(numbers)}
    labelmap = str(seg.SegmentationType) == "LABELMAP"   # a frame holds every segment, by its number
    for f, item in enumerate(per_frame):
        try:
            position = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        except (AttributeError, IndexError):
            raise MedviewerError(f"SEG frame {f + 1} carries no position to place it on the image", path) from None
        ijk = volume.patient_to_index(position)
        k = int(np.rint(ijk[2]))
        if not np.allclose(ijk[:2], 0, atol=0.05) or abs(ijk[2] - k) > 0.05 or not 0 <= k < volume.shape[0]:
            raise MedviewerError("SEG frames do not lie on the image's slices (another grid)", path)
        if labelmap:
            for number, c in column_of.items():
                out[k, :, :, c] |= frames[f] == number
            continue
        number = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        out[k, :, :, column_of[number]] |= frames[f] > 0
    return out


def read_seg_layer(path: str | os.PathLike, volume: Volume) -> LabelLayer:
    notes: list[str] = []
    masks, segments = read_seg_masks(path, volume, notes)
    layer = _layer_from_masks(masks, segments, volume, os.fspath(path), "SEG")
    layer.warnings[:0] = notes
    return layer


def read_seg(path: str | os.PathLike, volume: Volume) -> Volume:
    """A SEG as a label Volume on ``volume``'s grid (label = segment number)."""
    layer = read_seg_layer(path, volume)
    return layer.labels


def _layer_from_masks(masks: np.ndarray, segments: list[Segment], volume: Volume, path: str,
                      kind: str) -> LabelLayer:
    dtype = np.uint8 if max((s.label for s in segments), default=0) < 256 else np.uint16
    labels = np.zeros(volume.shape, dtype=dtype)
    warnings = []
    overlap = masks.sum(axis=-1) > 1 if masks.size else np.zeros(volume.shape, bool)
    if overlap.any():
        warnings.append(f"segments overlap in {int(overlap.sum())} voxels; the later segment is shown there")
    for c, s in enumerate(segments):
        labels[masks[..., c]] = s.label
    meta = {**dict(volume.meta), "segments": tuple(segments), "source_file": path, "annotation_kind": kind}
    label_volume = volume.with_array(labels, modality="SEG" if kind == "SEG" else "RTSTRUCT", meta=meta)
    return LabelLayer(label_volume, segments, path, kind, warnings)


# ---- RTSTRUCT --------------------------------------------------------------------------------

def _rtstruct_rois(ds) -> list[tuple[int, str, tuple[int, int, int] | None, list]]:
    names = {int(r.ROINumber): str(r.get("ROIName", "") or f"ROI {r.ROINumber}")
             for r in ds.get("StructureSetROISequence", [])}
    out = []
    for roi in ds.get("ROIContourSequence", []):
        number = int(roi.ReferencedROINumber)
        color = tuple(int(c) for c in roi.ROIDisplayColor) if roi.get("ROIDisplayColor") else None
        contours = []
        for c in roi.get("ContourSequence", []):
            kind = str(c.get("ContourGeometricType", "CLOSED_PLANAR"))
            data = np.asarray([float(v) for v in c.ContourData]).reshape(-1, 3)
            contours.append((kind, data))
        out.append((number, names.get(number, f"ROI {number}"), color, contours))
    return out


def rasterize_contours(contours, volume: Volume) -> tuple[np.ndarray, int]:
    """Fill closed planar contours (LPS mm, each (n, 3)) on ``volume``'s slices.

    A voxel belongs to the region when its centre lies inside an odd number of the slice's
    contours (even-odd rule: inner contours cut holes) or exactly on a contour line (contours
    traced through voxel centres, as mask-to-contour exporters write them, keep their outline
    voxels). Returns the mask and how many contours lay off the slices (more than a quarter of
    the slice spacing away).
    """
    mask = np.zeros(volume.shape, dtype=bool)
    outline = np.zeros(volume.shape, dtype=bool)
    off = 0
    for kind, points in contours:
        if len(points) == 0 or str(kind).upper() not in ("CLOSED_PLANAR", "CLOSEDPLANAR", "CLOSED_PLANAR_XOR"):
            continue
        ijk = volume.patient_to_index(points)
        z = float(np.median(ijk[:, 2]))
        k = int(np.rint(z))
        if abs(z - k) > 0.25 or not 0 <= k < volume.shape[0]:
            off += 1
            continue
        inside, edge = polygon_mask(ijk[:, :2], volume.shape[1:])
        mask[k] ^= inside
        outline[k] |= edge
    return mask | outline, off


@reads_file("DICOM RTSTRUCT")
def read_rtstruct_layer(path: str | os.PathLike, volume: Volume, roi_names=None) -> LabelLayer:
    path = os.fspath(path)
    try:
        ds = read_dataset(path)
    except (MedviewerError, MemoryError):
        raise
    except Exception as exc:
        raise MedviewerError(f"not a readable DICOM file ({describe_exception(exc)})", path) from None
    if str(ds.get("SOPClassUID", "")) != RTSTRUCT_SOP_CLASS:
        raise MedviewerError("not an RTSTRUCT", path)
    ref = describe_annotation(path)
    if ref and ref.frame_of_reference_uid and volume.frame_of_reference_uid and \
            ref.frame_of_reference_uid != volume.frame_of_reference_uid:
        raise MedviewerError("this RTSTRUCT belongs to another frame of reference than the image", path)
    rois = _rtstruct_rois(ds)
    if roi_names is not None:
        wanted = {roi_names} if isinstance(roi_names, str) else set(roi_names)
        rois = [r for r in rois if r[1] in wanted]
        if not rois:
            raise MedviewerError(f"no ROI named {', '.join(sorted(wanted))}", path)
    masks, segments, warnings = [], [], []
    for label, (number, name, color, contours) in enumerate(rois, start=1):
        mask, off = rasterize_contours(contours, volume)
        if off:
            warnings.append(f"ROI {name!r}: {off} contour(s) lie between or outside the image's slices")
        if not mask.any():
            warnings.append(f"ROI {name!r} has no contour on this image")
            continue
        masks.append(mask)
        segments.append(Segment(len(segments) + 1, name, color or DEFAULT_COLORS[(label - 1) % len(DEFAULT_COLORS)]))
    if not masks:
        raise MedviewerError("no ROI of this RTSTRUCT lies on the image" + (f" ({'; '.join(warnings)})" if warnings else ""), path)
    layer = _layer_from_masks(np.stack(masks, axis=-1), segments, volume, path, "RTSTRUCT")
    layer.warnings[:0] = warnings
    return layer


def read_rtstruct(path: str | os.PathLike, volume: Volume, roi_names=None) -> Volume:
    """An RTSTRUCT as a label Volume on ``volume``'s grid (label n = n-th ROI kept, in file order;
    names and colours in ``meta["segments"]``). ``roi_names`` keeps only the named ROI(s)."""
    return read_rtstruct_layer(path, volume, roi_names).labels


# ---- detection boxes (Pascal VOC) ------------------------------------------------------------

def read_voc_boxes(folder: str | os.PathLike, volume: Volume) -> list:
    """Pascal VOC XML boxes named ``<SOPInstanceUID>.xml`` that fall on ``volume``'s slices.

    Files naming other instances (another series of the study) are left out.
    """
    import xml.etree.ElementTree as ET

    from medviewer.core.segments import DetectionBox

    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise MedviewerError("no such folder", folder)
    slice_of = {uid: k for k, uid in enumerate(volume.source_sop_instance_uids)}
    boxes = []
    for name in sorted(os.listdir(folder)):
        if not name.lower().endswith(".xml") or name[:-4] not in slice_of:
            continue
        path = os.path.join(folder, name)
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as exc:
            raise MedviewerError(f"not a readable Pascal VOC file ({exc})", path) from None
        for obj in root.iter("object"):
            bb = obj.find("bndbox")
            if bb is None:
                continue
            values = [float(bb.findtext(t, "nan")) for t in ("xmin", "ymin", "xmax", "ymax")]
            if any(np.isnan(values)):
                raise MedviewerError("a box lacks xmin/ymin/xmax/ymax", path)
            boxes.append(DetectionBox(slice_of[name[:-4]], *values, label=obj.findtext("name", "lesion"),
                                      sop_instance_uid=name[:-4]))
    boxes.sort(key=lambda b: (b.slice_index, b.xmin, b.ymin))
    return boxes
