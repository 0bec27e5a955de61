"""Writing a segmentation in a chosen format: the one dispatch both front ends use (the CLI's
``medviewer export`` and the window's File > Export segmentation), so neither reaches into the
other. Also the default name and folder of an export (patient, series and segment names, made safe
for file systems).

Qt- and VTK-free: the smoothed STL surface is VTK's (the 3D view's mesh), so a caller that wants
it passes the surface function in (``smooth_surface``).
"""

from __future__ import annotations

import os
import re
from typing import Callable

from medviewer.core.errors import MedviewerError

FORMATS = ("seg", "rtstruct", "sr", "nifti", "nrrd", "csv", "json", "stl")
#: the file name suffix of each format (the first of a format's suffixes names its files)
SUFFIXES = ((".dcm", "seg"), (".seg.nrrd", "nrrd"), (".nrrd", "nrrd"), (".nii.gz", "nifti"), (".nii", "nifti"),
            (".csv", "csv"), (".json", "json"), (".stl", "stl"))
_SUFFIX_OF = {"seg": ".dcm", "rtstruct": ".dcm", "sr": ".dcm", "nifti": ".nii.gz", "nrrd": ".nrrd",
              "csv": ".csv", "json": ".json", "stl": ".stl"}
#: longest default file name stem: well under the 255 bytes of common file systems, readable in a dialog
MAX_STEM = 120


def format_of(path: str) -> str | None:
    """The format a file name's suffix asks for (``.dcm``: a SEG), None when it says none."""
    lower = os.fspath(path).lower()
    return next((fmt for suffix, fmt in SUFFIXES if lower.endswith(suffix)), None)


def suffix_of(fmt: str) -> str:
    return _SUFFIX_OF[fmt]


def safe_name(text: str) -> str:
    """``text`` as a portable file name part: letters, digits, '.', '-' and '_' only (DICOM's
    ``Doe^John`` becomes ``Doe_John``), runs of others as one '_', no leading dots or separators."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text).strip())
    return re.sub(r"_+", "_", text).strip("._-")


def default_export_name(meta, segment_names, fmt: str = "seg") -> str:
    """The file name an export of ``segment_names`` on an image with ``meta`` gets by default:
    patient (name, else ID), series (description, else number) and segment names, then the
    format's suffix, e.g. ``Doe_John_CT_chest_lesion_1.dcm``; ``segmentation`` when nothing is known."""
    patient = meta.get("patient_name") or meta.get("patient_id") or ""
    series = meta.get("series_description") or (f"series {meta['series_number']}"
                                                  if meta.get("series_number") is not None else "")
    names = list(dict.fromkeys(str(n) for n in segment_names))
    segments = ("+".join(n for n in map(safe_name, names) if n) if len(names) <= 3
                else safe_name(f"{len(names)} segments"))
    parts = [p for p in (safe_name(patient), safe_name(series), segments) if p]
    stem = "_".join(parts)[:MAX_STEM].rstrip("._-") or "segmentation"
    return stem + suffix_of(fmt)


def default_export_folder(meta, opened: str | None = None) -> str:
    """Where an export goes by default: the study folder the user opened (``opened``), else the
    image's series folder or file's folder, else the working folder."""
    for candidate in (opened, meta.get("source_folder"),
                      os.path.dirname(meta["source_file"]) if meta.get("source_file") else None):
        if candidate and os.path.isdir(candidate):
            return os.path.abspath(candidate)
    return os.getcwd()


def write_export(fmt: str, volume, labels, segments, out: str, *, force: bool = False,
                 deidentifier=None, provenance: dict | None = None, stl_surface: str = "smooth",
                 smooth_surface: Callable | None = None) -> list[str]:
    """Write ``labels`` (on ``volume``'s grid) with ``segments`` as ``fmt`` (one of FORMATS) to
    ``out``; the lines to show the user. ``stl_surface``: "smooth" (``smooth_surface(labels,
    label)``'s triangles: the 3D view's surface nets mesh, given by the caller) or "voxels" (the
    voxels' faces)."""
    if fmt not in FORMATS:
        raise MedviewerError(f"unknown export format {fmt!r} (one of {', '.join(FORMATS)})", out)
    provenance = provenance or {}
    if fmt in ("seg", "rtstruct", "sr"):
        return _write_dicom(fmt, volume, labels, segments, out, force, deidentifier)
    if fmt == "stl":
        return _write_stl(labels, segments, out, force, stl_surface, smooth_surface)
    if fmt in ("nifti", "nrrd"):
        from medviewer.export.labelmap import sidecar_path, write_labelmap

        write_labelmap(labels, segments, out, force=force)
        return [f"label table: {sidecar_path(out)}"]
    from medviewer.export.report import build_report, write_report

    report = build_report(volume, labels, segments, provenance=provenance, deidentifier=deidentifier)
    write_report(report, out, force=force)
    return [f"  {les['label']:>3} {les['name']:<24} {les['volume_ml']:>9.2f} mL  "
            f"mean {les['intensity']['mean']:>7.1f}  long {les['recist']['long_axis_mm']:.1f} mm  "
            f"short {les['recist']['short_axis_mm']:.1f} mm" for les in report["lesions"]]


def _write_dicom(fmt, volume, labels, segments, out, force, deidentifier) -> list[str]:
    from medviewer.export.sources import source_datasets

    lines: list[str] = []
    images = None
    if deidentifier is not None:
        images = [deidentifier.apply(ds) for ds in source_datasets(volume, pixels=True)]
    if fmt == "seg":
        from medviewer.export.seg import write_seg

        write_seg(volume, labels, segments, out, force=force, source_images=images)
    elif fmt == "sr":
        from medviewer.export.measures_sr import write_measures_sr

        _, seg_out = write_measures_sr(volume, labels, segments, out, force=force, source_images=images)
        lines.append(f"the SEG it refers to: {seg_out}")
    else:
        from medviewer.export.rtstruct import write_rtstruct

        write_rtstruct(volume, labels, segments, out, force=force, source_images=images)
    if images is not None:
        folder = _write_series_copy(images, out, force)
        lines.append(f"de-identified source series: {folder} (patient {deidentifier.pseudonym}, "
                     f"dates shifted {deidentifier.date_shift.days} days)")
    return lines


def _write_stl(labels, segments, out, force, stl_surface, smooth_surface) -> list[str]:
    import numpy as np

    from medviewer.core.atomic import check_target
    from medviewer.export.mesh import enclosed_volume_ml, voxel_surface, write_stl

    if stl_surface == "smooth" and smooth_surface is None:
        raise MedviewerError("a smoothed STL surface needs the render layer's surface function "
                             "(or ask for the voxels' surface)", out)
    present = [s for s in segments if np.any(labels.array == s.label)]
    stem = out[:-4] if out.lower().endswith(".stl") else out
    paths = [out if len(present) == 1 else f"{stem}-{s.label}.stl" for s in present]
    for path in paths:  # every file checked before any is written
        check_target(path, force)
    lines = []
    for s, path in zip(present, paths):
        triangles = (smooth_surface(labels, s.label) if stl_surface == "smooth"
                     else voxel_surface(labels.array == s.label, labels))
        write_stl(labels, s.label, path, force=force, name=s.name, triangles=triangles)
        lines.append(f"  {s.label:>3} {s.name:<24} -> {path} ({stl_surface} surface, "
                     f"{len(triangles):,} triangles, {enclosed_volume_ml(triangles):.2f} mL enclosed)")
    return lines


def _write_series_copy(images, out: str, force: bool) -> str:
    """Save de-identified source images into ``<out stem>-images/`` (all or nothing)."""
    import shutil
    import tempfile

    from medviewer.core.atomic import current_umask, os_error_message

    stem = os.path.basename(out)
    stem = stem[:-4] if stem.lower().endswith(".dcm") else stem
    parent = os.path.dirname(os.path.abspath(out))
    folder = os.path.join(parent, f"{stem}-images")
    if os.path.exists(folder) and not force:
        raise MedviewerError("already exists (use --force to replace it)", folder)
    try:
        staging = tempfile.mkdtemp(prefix=".medviewer-", dir=parent)
    except OSError as exc:
        raise MedviewerError(f"cannot write here ({os_error_message(exc)})", parent) from None
    try:
        for n, ds in enumerate(images, start=1):
            ds.save_as(os.path.join(staging, f"IM{n:04d}.dcm"), enforce_file_format=True)
        if os.path.exists(folder):
            shutil.rmtree(folder)
        os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp makes 0700
        os.replace(staging, folder)
    except OSError as exc:
        raise MedviewerError(f"could not be written ({os_error_message(exc)})", folder) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
