"""DICOM SEG (highdicom): one segment per lesion, referencing the source series.

Frames and source images: highdicom pairs the pixel array's planes with ``source_images`` in
the order given, so both are passed in the Volume's slice order (highdicom issues #117/#330:
the caller must keep them aligned); each frame then references its own source instance and
plane position. highdicom itself writes the frames of each segment sorted along the slice
normal (superior to inferior for axial CT, which is also the acquisition/InstanceNumber order of
most CT series, e.g. Lung-PET-CT-Dx). Empty frames are omitted. Overlapping
segments are written as a BINARY SEG with one frame set per segment (pass one mask per segment).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from medviewer import __version__
from medviewer.core.errors import MedviewerError
from medviewer.core.segments import Code, Segment, default_segments
from medviewer.core.volume import Volume
from medviewer.core.atomic import write_dataset
from medviewer.export.common import tidy_copied_attributes

MANUFACTURER = "medviewer"


def _code(c: Code):
    import highdicom as hd

    return hd.sr.CodedConcept(c.value, c.scheme, c.meaning)


def segment_description(segment: Segment, number: int):
    """A highdicom SegmentDescription for ``segment`` as segment ``number``."""
    import highdicom as hd

    alg = segment.algorithm
    identification = None
    if alg.type != "MANUAL":
        identification = hd.AlgorithmIdentificationSequence(
            name=alg.name, family=_code(alg.family), version=alg.version)
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=segment.name[:64],
        segmented_property_category=_code(segment.category),
        segmented_property_type=_code(segment.type),
        algorithm_type=alg.type,
        algorithm_identification=identification,
        tracking_uid=hd.UID(),
        tracking_id=segment.name[:64],
        display_color=hd.color.CIELabColor.from_rgb(*segment.color),
    )


def _masks(source: Volume, labels: Volume | Sequence[Volume], segments: Sequence[Segment]) -> np.ndarray:
    """(slices, rows, cols, segments) boolean stack on the source grid."""
    if isinstance(labels, Volume):
        if not source.same_grid(labels):
            raise MedviewerError("the label map is not on the source series' grid")
        lab = np.asarray(labels.array)
        return np.stack([lab == s.label for s in segments], axis=-1)
    if len(labels) != len(segments):
        raise MedviewerError(f"{len(labels)} masks for {len(segments)} segments")
    for m in labels:
        if not source.same_grid(m):
            raise MedviewerError("a segment mask is not on the source series' grid")
    return np.stack([np.asarray(m.array) != 0 for m in labels], axis=-1)


def build_seg(source: Volume, labels: Volume | Sequence[Volume], segments: Sequence[Segment] | None = None,
              *, source_images: Sequence | None = None, series_description: str = "medviewer segmentation",
              series_number: int = 300, content_label: str = "LESIONS", deidentifier=None):
    """The highdicom Segmentation dataset (not written).

    ``labels``: one label Volume (values = ``segments[i].label``), or one binary Volume per segment
    when segments overlap. ``source_images``: the source datasets in slice order (read from the
    series folder when omitted). With ``deidentifier`` the sources are de-identified first, so the
    SEG references the de-identified UIDs.
    """
    import highdicom as hd

    from medviewer.export.sources import source_datasets

    if segments is None:
        if not isinstance(labels, Volume):
            raise MedviewerError("give the segments' descriptions for a list of masks")
        segments = default_segments(v for v in np.unique(labels.array) if v != 0)
    segments = list(segments)
    if not segments:
        raise MedviewerError("nothing to export: the label map is empty")
    masks = _masks(source, labels, segments)
    empty = [s.name for s, n in zip(segments, masks.reshape(-1, len(segments)).sum(axis=0)) if n == 0]
    if len(empty) == len(segments):
        raise MedviewerError("nothing to export: every segment is empty")
    images = list(source_images) if source_images is not None else source_datasets(source)
    if deidentifier is not None:
        images = [deidentifier.apply(ds) for ds in images]
    if source.source_frame_numbers is not None:  # one multi-frame source: frames in its order
        if len(images) != 1:
            raise MedviewerError("a multi-frame source must be one image")
        frames = int(images[0].NumberOfFrames)
        pixel_array = np.zeros((frames,) + masks.shape[1:], dtype=bool)
        for k, f in enumerate(source.source_frame_numbers):
            pixel_array[f - 1] = masks[k]
    else:
        if len(images) != source.shape[0]:
            raise MedviewerError(f"{len(images)} source images for {source.shape[0]} slices")
        pixel_array = masks
    try:
        seg = hd.seg.Segmentation(
            source_images=images,
            pixel_array=pixel_array.astype(np.uint8),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[segment_description(s, n) for n, s in enumerate(segments, start=1)],
            series_instance_uid=hd.UID(),
            series_number=series_number,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer=MANUFACTURER,
            manufacturer_model_name="medviewer",
            software_versions=__version__,
            device_serial_number="0",
            content_description=series_description[:64],
            content_label=content_label,
            omit_empty_frames=True,
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise MedviewerError(f"DICOM SEG cannot be built ({exc})") from None
    seg.SeriesDescription = series_description[:64]
    tidy_copied_attributes(seg)
    return seg


def write_seg(source: Volume, labels: Volume | Sequence[Volume], segments: Sequence[Segment] | None,
              out: str | os.PathLike, *, force: bool = False, **options) -> str:
    """Write a DICOM SEG of ``labels`` over ``source`` to ``out`` (atomic; ``force`` replaces)."""
    from medviewer.core.atomic import check_target

    check_target(out, force)
    seg = build_seg(source, labels, segments, **options)
    return write_dataset(out, seg, force=force)
