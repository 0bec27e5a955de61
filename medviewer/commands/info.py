"""`medviewer info PATH`: what is in a folder or file, series by series, with any problem found."""

from __future__ import annotations

import os
from collections import Counter

from medviewer.core.errors import MedviewerError, printable


def register(sub) -> None:
    p = sub.add_parser("info", help="list the patients, studies and series under PATH")
    p.add_argument("path", help="a DICOM folder or file, or a NIfTI/NRRD/MHA image")
    p.add_argument("--skipped", action="store_true", help="list every skipped file with its reason")
    p.set_defaults(func=run)


def _fmt_spacing(spacing) -> str:
    return " x ".join(f"{s:.3f}".rstrip("0").rstrip(".") for s in spacing) + " mm"


def _orientation(direction) -> str:
    from medviewer.core.volume import Volume
    import numpy as np

    code = Volume(np.zeros((1, 1, 1)), direction=direction).orientation_code()
    plane = {"S": "axial", "I": "axial", "A": "coronal", "P": "coronal", "L": "sagittal",
             "R": "sagittal"}[code[2]]
    return f"{code} ({plane})"


def run(args) -> int:
    from medviewer.io import image_suffix, read_image
    from medviewer.io.dicom_index import index_folder
    from medviewer.io.dicom_series import analyze_series

    path = args.path
    if image_suffix(path) is not None:
        v = read_image(path)
        z, y, x = v.shape
        print(f"{path}\n  image file  {x} x {y} x {z}  {v.array.dtype}  spacing {_fmt_spacing(v.spacing)}  "
              f"orientation {_orientation(v.direction)}  origin {tuple(round(o, 2) for o in v.origin)} mm")
        return 0
    index = index_folder(path)
    if not index.all_series():
        from medviewer.io import nothing_found_message

        raise MedviewerError(nothing_found_message(index), path)
    print(path)
    loadable = 0
    for patient in index.patients:
        print(printable(f"Patient {patient.patient_id or '(no ID)'}  {patient.patient_name}"))
        for study in patient.studies:
            print(printable(f"  Study {study.study_date or '(no date)'}  "
                            f"{study.study_description or '(no description)'}  UID {study.study_instance_uid or '(none)'}"))
            for s in study.series:
                number = s.series_number if s.series_number is not None else "-"
                head = (f"    Series {number}  {s.series_description or '(no description)'}  {s.modality}  "
                        f"{s.slice_count} slice{'s' if s.slice_count != 1 else ''}")
                head = printable(head)  # names from the files: no terminal escapes, no line breaks
                if not s.is_image:
                    print(printable(f"{head}  (no image: {s.modality} object)"))
                    continue
                g = analyze_series(s)
                h = g.instances[0] if g.instances else s.instances[0]
                head += f"  {h.columns} x {h.rows} x {s.slice_count}"
                if g.instances and not g.multiframe:
                    head += f"  spacing {_fmt_spacing(g.spacing)}  orientation {_orientation(g.direction)}"
                print(head)
                for problem in g.problems:
                    print(printable(f"      problem: {problem}"))
                loadable += not g.problems
                if s.damaged and not g.problems:
                    print(f"      note: loads leaving out {len(s.damaged)} file(s) of its folder "
                          "(skipped, listed below)")
                if s.uid is None:
                    print("      note: the files carry no Series Instance UID (grouped by folder)")
    if index.ignored:
        kinds = sorted({os.path.splitext(f)[1].lower() or os.path.basename(f) for f in index.ignored})
        print(f"Ignored {len(index.ignored)} non-DICOM file(s) ({', '.join(kinds)})")
    if index.skipped:
        reasons = Counter(s.reason for s in index.skipped)
        summary = "; ".join(f"{n} {r}" for r, n in reasons.most_common())
        print(f"Skipped {len(index.skipped)} file(s): {summary}")
        shown = index.skipped if args.skipped else index.skipped[:3]
        for s in shown:
            print(f"  {printable(os.path.relpath(s.path, path) if os.path.isdir(path) else s.path)}: {s.reason}")
        if len(shown) < len(index.skipped):
            print(f"  ... and {len(index.skipped) - len(shown)} more (--skipped lists them all)")
    if not loadable:
        # The listing above says why; the exit status tells a script that nothing here loads.
        raise MedviewerError("nothing loadable found (no image series without a problem)", path)
    return 0
