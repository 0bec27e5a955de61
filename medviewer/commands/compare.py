"""`medviewer compare PATH --seg MASK --reference MASK`: how far a segmentation agrees with a
reference (an expert's RTSTRUCT, say): Dice, Jaccard, volumes, Hausdorff, HD95 and mean surface
distance, per segment (as Slicer's Segment Comparison)."""

from __future__ import annotations

import math

from medviewer.core.errors import MedviewerError


def register(sub) -> None:
    p = sub.add_parser("compare", help="compare a segmentation with a reference (Dice, surface distances)")
    p.add_argument("path", help="the image series both lie on (DICOM folder or file, or an image file)")
    p.add_argument("--seg", required=True, metavar="MASK",
                   help="the segmentation: a label map (.nii.gz/.nrrd) or a DICOM SEG/RTSTRUCT")
    p.add_argument("--reference", required=True, metavar="MASK", help="the reference, likewise")
    p.add_argument("--segment", metavar="NAME|LABEL",
                   help="which segment of MASK (default: all of them together)")
    p.add_argument("--reference-segment", metavar="NAME|LABEL",
                   help="which segment of the reference (default: all of them together)")
    p.add_argument("--series", help="which image series in PATH (number, UID, position or folder)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=run)


def _pick(labels, segments, which: str | None, path: str):
    """(boolean mask, description) of segment ``which`` (a name or a label value; None: all)."""
    import numpy as np

    array = labels.array
    if which is None:
        return array > 0, "all segments"
    chosen = [s for s in segments if s.name == which or str(s.label) == which]
    if not chosen:
        names = ", ".join(f"{s.label}: {s.name}" for s in segments) or "none"
        raise MedviewerError(f"no segment {which!r} (it has {names})", path)
    s = chosen[0]
    mask = array == s.label
    if not np.any(mask):
        raise MedviewerError(f"segment {s.name!r} is empty", path)
    return mask, f"{s.label}: {s.name}"


def run(args) -> int:
    import json
    import warnings

    from medviewer.commands.export import load_segmentation
    from medviewer.core.compare import compare_masks
    from medviewer.io import load_volume

    volume = load_volume(args.path, series=args.series)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # pydicom on the files' own odd values
        labels, segments, notes = load_segmentation(args.seg, volume)
        ref_labels, ref_segments, ref_notes = load_segmentation(args.reference, volume)
    for note in notes + ref_notes:
        print(f"note: {note}")
    mask, what = _pick(labels, segments, args.segment, args.seg)
    reference, ref_what = _pick(ref_labels, ref_segments, args.reference_segment, args.reference)
    result = compare_masks(mask, reference, volume.spacing)
    if args.json:
        print(json.dumps({"segmentation": args.seg, "segment": what, "reference": args.reference,
                          "reference_segment": ref_what,
                          **{k: (None if isinstance(v, float) and math.isnan(v) else round(v, 4))
                             for k, v in result.to_dict().items()}}, indent=2))
        return 0

    def mm(v):
        return "n/a (an empty mask)" if math.isnan(v) else f"{v:.2f} mm"
    print(f"segmentation {args.seg} ({what}) against reference {args.reference} ({ref_what}):")
    print(f"  Dice {result.dice:.4f}   Jaccard {result.jaccard:.4f}")
    change = "" if math.isnan(result.volume_difference_pct) else f" ({result.volume_difference_pct:+.1f}%)"
    print(f"  volume {result.volume_ml:.2f} mL against {result.reference_volume_ml:.2f} mL{change}")
    print(f"  surface distance: mean {mm(result.mean_surface_mm)}, HD95 {mm(result.hd95_mm)}, "
          f"Hausdorff {mm(result.hausdorff_mm)}")
    return 0
