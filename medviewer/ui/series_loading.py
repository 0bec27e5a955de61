"""Progressive loading of a DICOM series for the window: the slice the first view shows comes
first, the others follow in the background, so that a 300-slice CT shows within a second.

:class:`ProgressiveSeries` reads in a worker thread (no Qt, no VTK): :meth:`~ProgressiveSeries.read`
first reads the middle slice (where the views open: the Document's cursor starts at the volume's
centre) into a full-size Volume whose other slices hold the lowest value of that slice (black in
the views), publishes it as ``partial``, then reads the rest in chunks, nearest the middle first,
into the same array, in place. The window polls ``partial`` and ``filled`` and redraws.

Before that, while the folder is being indexed (reading 300 headers takes longer than a second),
:class:`IndexWithPreview` shows one slice at once: the middle file of the folder by name (where
a series written slice by slice keeps its middle slice) as a one-slice Volume at its own place in
space, replaced by the series' partial volume as soon as there is one.

The voxels equal :func:`medviewer.io.load_series`'s: the same reader (``read_slice``: SimpleITK with GDCM inside
the file's guard), the same order of slices (:func:`~medviewer.io.analyze_series`),
the pixel type of the series' first file, as its series reader takes it. Multi-frame series are
read whole by ``load_series``.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume
from medviewer.io.dicom_index import SeriesEntry, StudyEntry

#: slices read at a time after the first (a progress step and a chance to cancel each)
CHUNK = 16


class ProgressiveSeries:
    """One series read slice(s) first, the rest after; see the module's docstring."""

    def __init__(self, entry: SeriesEntry, study: StudyEntry | None = None) -> None:
        self.entry = entry
        self.study = study
        self.partial: Volume | None = None   # set (once) by the worker when the first slice is in
        self.filled = 0                      # slices read so far

    def read(self, progress: Callable[[float], None], cancelled: Callable[[], bool]) -> Volume:
        """Read the whole series (in a worker thread); returns the Volume ``partial`` became."""
        from medviewer.io.dicom_series import _volume_fields, analyze_series, check_series_size, load_series

        geometry = analyze_series(self.entry)
        if geometry.problems or geometry.multiframe or len(geometry.instances) < 2 * CHUNK:
            return load_series(self.entry, self.study, progress=progress, cancelled=cancelled)
        instances = geometry.instances
        check_series_size(instances, self.entry.folder)
        first = self._read(instances[:1], instances[0], None)
        # the slice(s) nearest the centre, where the views open (two for an even count)
        lo, hi = (len(instances) - 1) // 2, len(instances) // 2 + 1
        plane = self._read(instances[lo:hi], instances[0], first.dtype)
        array = np.full((len(instances),) + first.shape[1:], plane.min(), dtype=first.dtype)
        array[0], array[lo:hi] = first[0], plane
        fields = _volume_fields(self.entry, self.study)
        fields["meta"]["dropped_files"] = tuple((s.path, s.reason) for s in self.entry.damaged)
        self.partial = Volume(
            array=array, spacing=geometry.spacing, origin=geometry.origin, direction=geometry.direction,
            source_sop_instance_uids=tuple(i.sop_instance_uid for i in instances), **fields)
        progress(0.0)   # the window polls: the partial volume is there to show
        for start in _chunks_from(lo, len(instances)):
            if cancelled():
                raise MedviewerError("loading cancelled", self.entry.folder)
            stop = min(start + CHUNK, len(instances))
            array[start:stop] = self._read(instances[start:stop], instances[0], first.dtype)
            self.filled += stop - start
            progress(self.filled / len(instances))
        return self.partial

    @staticmethod
    def _read(instances, first, dtype) -> np.ndarray:
        """``instances`` (consecutive slices) as an array (slices, rows, columns) of ``dtype``
        (None: as the reader gives it), each slice decoded inside its file's guard
        (:func:`medviewer.io.dicom_series.read_slice`: a bad file is named)."""
        from medviewer.io.dicom_series import read_slice

        array = np.stack([read_slice(h, first) for h in instances])
        return array if dtype is None else array.astype(dtype, copy=False)


def _chunks_from(middle: int, count: int) -> list[int]:
    """The first slice of each chunk of :data:`CHUNK` slices (the first and middle slices are
    read already, and read again in their chunks), nearest ``middle`` first."""
    starts = list(range(0, count, CHUNK))
    return sorted(starts, key=lambda s: abs(s + CHUNK // 2 - middle))


#: folders with fewer files are indexed quickly enough that a preview would only flicker
PREVIEW_MIN_FILES = 64


class IndexWithPreview:
    """Index a folder (:func:`medviewer.io.index_folder`) in a worker thread, publishing first a
    one-slice ``preview`` Volume of its middle file (see the module's docstring); the window polls
    ``preview`` on the first progress report."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.preview: Volume | None = None

    def read(self, progress: Callable[[float], None], cancelled: Callable[[], bool]):
        from medviewer.io import index_folder
        from medviewer.io.dicom_index import list_files

        if os.path.isdir(self.path):
            files = list_files(self.path)
            if len(files) >= PREVIEW_MIN_FILES:
                self.preview = preview_slice(files[len(files) // 2])
                if self.preview is not None:
                    progress(0.0)
        return index_folder(self.path, progress=lambda done, total: progress(done / max(total, 1)),
                            cancelled=cancelled)


def preview_slice(path: str) -> Volume | None:
    """One DICOM file's image as a one-slice Volume placed in space by its own header, or None
    where it is not a single-frame image with position, orientation and pixel spacing (or cannot
    be read: the index names the file and the problem)."""
    from medviewer.io.dicom_index import plausible_orientation, read_header
    from medviewer.io.dicom_series import read_slice

    try:
        header, fields = read_header(path)
        if (not header.has_pixels or header.number_of_frames != 1 or header.position is None
                or header.orientation is None or header.pixel_spacing is None):
            return None
        plane = read_slice(header, header)
    except MedviewerError:
        return None
    if not plausible_orientation(header.orientation):   # a damaged header: the index names it
        return None
    row = np.asarray(header.orientation[:3], float)
    col = np.asarray(header.orientation[3:], float)
    row = row / np.linalg.norm(row)
    col = col - (col @ row) * row
    col = col / np.linalg.norm(col)
    thickness = header.slice_thickness if header.slice_thickness and header.slice_thickness > 0 else 1.0
    meta = {"series_description": fields.get("SeriesDescription", ""), "patient_id": fields.get("PatientID", ""),
            "series_instance_uid": fields.get("SeriesInstanceUID", ""), "preview": True}
    try:
        return Volume(array=plane[None], spacing=(float(header.pixel_spacing[1]), float(header.pixel_spacing[0]),
                                                  float(thickness)),
                      origin=tuple(float(v) for v in header.position),
                      direction=np.column_stack([row, col, np.cross(row, col)]),
                      frame_of_reference_uid=fields.get("FrameOfReferenceUID") or None,
                      modality=fields.get("Modality") or "OT", meta=meta)
    except (ValueError, TypeError):
        return None
