"""Progressive loading of a DICOM series for the window: the slice the first view shows comes
first, the others follow in the background, so that a 300-slice CT shows within a second.

:class:`ProgressiveSeries` reads in a worker thread (no Qt, no VTK): :meth:`~ProgressiveSeries.read`
first reads the middle slice (where the views open: the Document's cursor starts at the volume's
centre) into a full-size Volume whose other slices hold the lowest value of that slice (black in
the views), publishes it as ``partial``, then reads the rest in chunks, nearest the middle first,
into the same array, in place. The window polls ``partial`` and ``filled`` and redraws.

The voxels equal :func:`medviewer.io.load_series`'s: the same reader (SimpleITK with GDCM, so
every transfer syntax it decodes), the same order of slices (:func:`~medviewer.io.analyze_series`),
the pixel type of the series' first file, as its series reader takes it. Multi-frame series are
read whole by ``load_series``.
"""

from __future__ import annotations

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
        from medviewer.io.dicom_series import _find_bad_file, _volume_fields, analyze_series, load_series

        geometry = analyze_series(self.entry)
        if geometry.problems or geometry.multiframe or len(geometry.instances) < 2 * CHUNK:
            return load_series(self.entry, self.study, progress=progress, cancelled=cancelled)
        files = [i.path for i in geometry.instances]
        first = self._read(files[:1], None, _find_bad_file)
        # the slice(s) nearest the centre, where the views open (two for an even count)
        lo, hi = (len(files) - 1) // 2, len(files) // 2 + 1
        plane = self._read(files[lo:hi], first.dtype, _find_bad_file)
        if plane.shape[1:] != first.shape[1:]:
            raise MedviewerError(f"slices of different sizes ({first.shape[1:]} and {plane.shape[1:]})",
                                 files[lo])
        array = np.full((len(files),) + first.shape[1:], plane.min(), dtype=first.dtype)
        array[0], array[lo:hi] = first[0], plane
        middle = lo
        self.partial = Volume(
            array=array, spacing=geometry.spacing, origin=geometry.origin, direction=geometry.direction,
            source_sop_instance_uids=tuple(i.sop_instance_uid for i in geometry.instances),
            **_volume_fields(self.entry, self.study))
        progress(0.0)   # the window polls: the partial volume is there to show
        for start in _chunks_from(middle, len(files)):
            if cancelled():
                raise MedviewerError("loading cancelled", self.entry.folder)
            stop = min(start + CHUNK, len(files))
            array[start:stop] = self._read(files[start:stop], first.dtype, _find_bad_file)
            self.filled += stop - start
            progress(self.filled / len(files))
        return self.partial

    @staticmethod
    def _read(files: list[str], dtype, find_bad_file) -> np.ndarray:
        """``files`` (consecutive slices) as an array (slices, rows, columns) of ``dtype`` (None:
        as the reader gives it)."""
        import SimpleITK as sitk

        reader = sitk.ImageSeriesReader()
        reader.SetImageIO("GDCMImageIO")
        reader.SetFileNames(files)
        reader.MetaDataDictionaryArrayUpdateOff()
        reader.LoadPrivateTagsOff()
        try:
            array = sitk.GetArrayFromImage(reader.Execute())
        except RuntimeError as exc:
            raise find_bad_file(files, exc) from None
        if array.shape[0] != len(files):
            raise MedviewerError(f"decoded {array.shape[0]} slices from {len(files)} files", files[0])
        return array if dtype is None else array.astype(dtype, copy=False)


def _chunks_from(middle: int, count: int) -> list[int]:
    """The first slice of each chunk of :data:`CHUNK` slices (the first and middle slices are
    read already, and read again in their chunks), nearest ``middle`` first."""
    starts = list(range(0, count, CHUNK))
    return sorted(starts, key=lambda s: abs(s + CHUNK // 2 - middle))
