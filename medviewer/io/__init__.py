"""Reading studies from disk: DICOM folders, NIfTI/NRRD/MHA files."""

from __future__ import annotations

import os

from medviewer.core.errors import MedviewerError, printable
from medviewer.core.volume import Volume
from medviewer.io.dicom_index import DicomIndex, SeriesEntry, index_folder
from medviewer.io.dicom_series import analyze_series, load_series
from medviewer.io.image_files import image_suffix, read_image, write_image

__all__ = [
    "DicomIndex", "SeriesEntry", "index_folder", "analyze_series", "load_series",
    "read_image", "write_image", "image_suffix", "load_volume", "dropped_note",
]


def dropped_note(volume: Volume, limit: int = 3) -> str | None:
    """One line saying which files of the series' folder a load left out and why (None when it
    left out none): what the CLI prints and the window shows after a partial load."""
    dropped = volume.meta.get("dropped_files") or ()
    if not dropped:
        return None
    shown = "; ".join(f"{printable(os.path.basename(path))}: {reason}" for path, reason in dropped[:limit])
    more = f"; and {len(dropped) - limit} more (medviewer info --skipped lists them)" if len(dropped) > limit else ""
    return f"left out {len(dropped)} file(s) of its folder ({shown}{more})"


def describe_series(entry: SeriesEntry) -> str:
    number = entry.series_number if entry.series_number is not None else "?"
    files = ""
    if len(entry.instances) <= 3:  # a stray stack of a slice or two: name its files
        files = ": " + ", ".join(printable(os.path.basename(h.path)) for h in entry.instances)
    return f"series {number} {entry.series_description!r} ({entry.modality}, {entry.slice_count} slices{files})"


def load_volume(path: str | os.PathLike, series: str | int | None = None, **kwargs) -> Volume:
    """Open ``path`` as one volume: an image file, or a DICOM folder/file holding one image series.

    With several image series, ``series`` picks one by series number, Series Instance UID,
    position in the listing (1-based, as `medviewer info` numbers them) or folder (relative to
    ``path``, as the listing names it).
    """
    path = os.fspath(path)
    if image_suffix(path) is not None:
        return read_image(path)
    index = index_folder(path)
    candidates = index.image_series()
    if not candidates:
        raise MedviewerError(nothing_found_message(index), path)
    if series is not None:
        chosen = _pick(candidates, series, path)
    elif len(candidates) == 1:
        chosen = candidates[0]
    else:
        listing = "; ".join(f"{n}: {describe_series(s)}{_where(s, path)}" for n, s in enumerate(candidates, 1))
        raise MedviewerError(f"holds {len(candidates)} image series, choose one with --series "
                             f"({listing})", path)
    return load_series(chosen, index.study_of(chosen), **kwargs)


def _where(entry: SeriesEntry, root: str) -> str:
    """`` in FOLDER`` (relative to the folder opened) where the series lies below it, so that series
    with the same number and description can be told apart."""
    if not os.path.isdir(root):
        return ""
    rel = os.path.relpath(entry.folder, root)
    return "" if rel == "." else f" in {printable(rel)}"


def _pick(candidates: list[SeriesEntry], series: str | int, path: str) -> SeriesEntry:
    text = str(series)
    for s in candidates:
        if text in (s.series_instance_uid, s.key):
            return s
    if os.path.isdir(path):
        in_folder = [s for s in candidates if os.path.normpath(os.path.relpath(s.folder, path)) == os.path.normpath(text)]
        if len(in_folder) == 1:
            return in_folder[0]
    if text.isdigit():
        n = int(text)
        by_number = [s for s in candidates if s.series_number == n]
        if len(by_number) == 1:
            return by_number[0]
        if 1 <= n <= len(candidates):
            return candidates[n - 1]
    raise MedviewerError(f"no image series {text!r} here", path)


def nothing_found_message(index: DicomIndex) -> str:
    if not index.skipped and not index.all_series():
        if index.ignored:
            return f"no DICOM files found ({len(index.ignored)} other file(s) ignored)"
        return "no files found" if os.path.isdir(index.root) else "not a DICOM file"
    msg = "no loadable DICOM image series found"
    if index.skipped:
        examples = "; ".join(f"{printable(os.path.basename(s.path))}: {s.reason}" for s in index.skipped[:3])
        more = f" and {len(index.skipped) - 3} more" if len(index.skipped) > 3 else ""
        msg += f" ({len(index.skipped)} file(s) skipped: {examples}{more})"
    return msg
