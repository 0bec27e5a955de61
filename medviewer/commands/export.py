"""`medviewer export PATH --seg MASK --format ... --out OUT`: a segmentation as DICOM SEG,
RTSTRUCT, a DICOM SR of its lesion measures (with the SEG it refers to), NIfTI/NRRD label map,
lesion report (CSV/JSON) or STL surfaces."""

from __future__ import annotations

import os

from medviewer.core.errors import MedviewerError

FORMATS = ("seg", "rtstruct", "sr", "nifti", "nrrd", "csv", "json", "stl")
_BY_SUFFIX = ((".dcm", "seg"), (".seg.nrrd", "nrrd"), (".nrrd", "nrrd"), (".nii.gz", "nifti"), (".nii", "nifti"),
              (".csv", "csv"), (".json", "json"), (".stl", "stl"))


def register(sub) -> None:
    p = sub.add_parser("export", help="export a segmentation of a series (SEG, RTSTRUCT, measures SR, NIfTI/NRRD, "
                                      "report, STL)")
    p.add_argument("path", help="the source image series (DICOM folder or file)")
    p.add_argument("--seg", required=True, metavar="MASK",
                   help="the segmentation: a label map (.nii.gz/.nrrd) on the series, or a DICOM SEG/RTSTRUCT (.dcm)")
    p.add_argument("--format", choices=FORMATS,
                   help="what to write (default: from --out's suffix; .dcm writes a SEG); sr: the lesion "
                        "measures as a DICOM SR (TID 1500) at OUT, and the SEG it refers to at OUT-seg.dcm")
    p.add_argument("--out", required=True,
                   help="the file to write (stl: one file per segment, OUT-<label>.stl when several)")
    p.add_argument("--series", help="which image series in PATH (number, UID, position or folder)")
    p.add_argument("--stl-surface", choices=("smooth", "voxels"), default="smooth",
                   help="stl: a smoothed surface (default; as the 3D view shows it) or the exact outline "
                        "of the voxels (blocky, enclosing exactly the segment's volume)")
    p.add_argument("--deidentify", action="store_true",
                   help="remove names, IDs and dates (PS3.15 basic profile subset); DICOM outputs come with "
                        "a de-identified copy of the source series in OUT's folder")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.add_argument("--algorithm", choices=("manual", "semiautomatic", "automatic"),
                   help="how the segments were made (default: as stored, else manual)")
    p.add_argument("--algorithm-name", help="the plugin or tool that made them (needed unless manual)")
    p.add_argument("--algorithm-version", help="its version")
    p.set_defaults(func=run)


def _format(args) -> str:
    if args.format:
        return args.format
    out = args.out.lower()
    for suffix, fmt in _BY_SUFFIX:
        if out.endswith(suffix):
            return fmt
    raise MedviewerError("say what to write with --format (seg, rtstruct, sr, nifti, nrrd, csv, json, stl)",
                         args.out)


def _segments_with_algorithm(segments, args):
    from dataclasses import replace

    from medviewer.core.segments import AlgorithmInfo

    if not args.algorithm:
        return segments
    try:
        algorithm = AlgorithmInfo(args.algorithm.upper(), args.algorithm_name, args.algorithm_version)
    except ValueError as exc:
        raise MedviewerError(f"{exc} (--algorithm-name, --algorithm-version)") from None
    return [replace(s, algorithm=algorithm) for s in segments]


def load_segmentation(mask_path: str, volume):
    """(label Volume on ``volume``'s grid, segments, notes) from a label map file or SEG/RTSTRUCT."""
    from medviewer.export.labelmap import read_labelmap
    from medviewer.io import image_suffix
    from medviewer.io.annotations import read_annotation

    if not os.path.exists(mask_path):
        raise MedviewerError("no such file", mask_path)
    if image_suffix(mask_path) is not None:
        return read_labelmap(mask_path, volume)
    layer = read_annotation(mask_path, volume)
    return layer.labels, layer.segments, layer.warnings


def run(args) -> int:
    import warnings

    with warnings.catch_warnings():
        # pydicom/highdicom warn about values of the source files (long IDs, one-part names);
        # dciodvfy-level checks belong to the tests, not to the user's terminal
        warnings.simplefilter("ignore", UserWarning)
        return _run(args)


def _run(args) -> int:
    import numpy as np

    from medviewer.core.atomic import check_target
    from medviewer.io import load_volume

    fmt = _format(args)
    check_target(args.out, args.force)
    volume = load_volume(args.path, series=args.series)
    labels, segments, notes = load_segmentation(args.seg, volume)
    segments = _segments_with_algorithm(segments, args)
    for note in notes:
        print(f"note: {note}")
    deidentifier = None
    if args.deidentify:
        from medviewer.export.deidentify import Deidentifier

        deidentifier = Deidentifier()
    provenance = {"segmentation_file": os.path.basename(args.seg), "notes": notes}
    for line in write_export(fmt, volume, labels, segments, args.out, force=args.force,
                             deidentifier=deidentifier, provenance=provenance, stl_surface=args.stl_surface):
        print(line)
    n = len([s for s in segments if np.any(labels.array == s.label)])
    print(f"wrote {args.out} ({fmt}, {n} segment{'s' if n != 1 else ''})")
    return 0


def write_export(fmt: str, volume, labels, segments, out: str, *, force: bool = False,
                 deidentifier=None, provenance: dict | None = None, stl_surface: str = "smooth") -> list[str]:
    """Write ``labels`` (on ``volume``'s grid) with ``segments`` as ``fmt`` (one of FORMATS) to
    ``out``; the lines to show the user. Used by this command and by the window's export.
    ``stl_surface``: "smooth" (the 3D view's surface nets mesh) or "voxels" (the voxels' faces)."""
    import numpy as np

    provenance = provenance or {}
    lines: list[str] = []
    if fmt in ("seg", "rtstruct", "sr"):
        from medviewer.export.sources import source_datasets

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
    elif fmt == "stl":
        from medviewer.core.atomic import check_target
        from medviewer.export.mesh import enclosed_volume_ml, voxel_surface, write_stl

        if stl_surface == "smooth":
            from medviewer.render.surface import smooth_surface  # VTK (no window, no rendering)
        present = [s for s in segments if np.any(labels.array == s.label)]
        stem = out[:-4] if out.lower().endswith(".stl") else out
        paths = [out if len(present) == 1 else f"{stem}-{s.label}.stl" for s in present]
        for path in paths:  # every file checked before any is written
            check_target(path, force)
        for s, path in zip(present, paths):
            triangles = (smooth_surface(labels, s.label) if stl_surface == "smooth"
                         else voxel_surface(labels.array == s.label, labels))
            write_stl(labels, s.label, path, force=force, name=s.name, triangles=triangles)
            lines.append(f"  {s.label:>3} {s.name:<24} -> {path} ({stl_surface} surface, "
                         f"{len(triangles):,} triangles, {enclosed_volume_ml(triangles):.2f} mL enclosed)")
    elif fmt in ("nifti", "nrrd"):
        from medviewer.export.labelmap import sidecar_path, write_labelmap

        write_labelmap(labels, segments, out, force=force)
        lines.append(f"label table: {sidecar_path(out)}")
    else:
        from medviewer.export.report import build_report, write_report

        report = build_report(volume, labels, segments, provenance=provenance, deidentifier=deidentifier)
        write_report(report, out, force=force)
        for les in report["lesions"]:
            lines.append(f"  {les['label']:>3} {les['name']:<24} {les['volume_ml']:>9.2f} mL  "
                         f"mean {les['intensity']['mean']:>7.1f}  long {les['recist']['long_axis_mm']:.1f} mm  "
                         f"short {les['recist']['short_axis_mm']:.1f} mm")
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
