"""`medviewer export PATH --seg MASK --format ... --out OUT`: a segmentation as DICOM SEG,
RTSTRUCT, a DICOM SR of its lesion measures (with the SEG it refers to), NIfTI/NRRD label map,
lesion report (CSV/JSON) or STL surfaces."""

from __future__ import annotations

import os

from medviewer.core.errors import MedviewerError

from medviewer.export.dispatch import FORMATS, format_of, write_export


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
    fmt = format_of(args.out)
    if fmt is not None:
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
    smooth_surface = None
    if fmt == "stl" and args.stl_surface == "smooth":
        from medviewer.render.surface import smooth_surface  # VTK (no window, no rendering)
    for line in write_export(fmt, volume, labels, segments, args.out, force=args.force,
                             deidentifier=deidentifier, provenance=provenance, stl_surface=args.stl_surface,
                             smooth_surface=smooth_surface):
        print(line)
    n = len([s for s in segments if np.any(labels.array == s.label)])
    print(f"wrote {args.out} ({fmt}, {n} segment{'s' if n != 1 else ''})")
    return 0
