"""`medviewer demo [DIR]`: write the generated demo study and open it in the viewer.

With ``--no-open`` (or without a display) it only writes the study."""

from __future__ import annotations

import json
import os


def register(sub) -> None:
    p = sub.add_parser("demo", help="write the generated demo study (a CT phantom with lesions) and open it")
    p.add_argument("dir", nargs="?", default="demo-study", help="where to write it (default: ./demo-study)")
    p.add_argument("--force", action="store_true", help="write it again if it is already there")
    p.add_argument("--no-open", action="store_true",
                   help="only write the study, do not open it in the viewer window")
    p.set_defaults(func=run)


def run(args) -> int:
    from medviewer.io.demo_study import SERIES_FOLDER, write_demo_study

    series_dir = os.path.join(os.path.abspath(args.dir), SERIES_FOLDER)
    if os.path.isdir(series_dir) and not args.force:
        print(f"Demo study already in {series_dir} (use --force to write it again)")
    else:
        series_dir = write_demo_study(args.dir, force=args.force)
        print(f"Wrote the demo study to {series_dir}")
    with open(os.path.join(series_dir, "lesions.json")) as fh:
        for lesion in json.load(fh)["lesions"]:
            c = ", ".join(f"{v:g}" for v in lesion["center_mm"])
            print(f"  {lesion['name']} ({lesion['organ']}): centre {c} mm LPS, "
                  f"radius {lesion['radius_mm']:g} mm, {lesion['volume_ml']:.1f} mL")
    if args.no_open:
        return 0
    from medviewer.ui.app import display_available, run_app

    if not display_available():
        print(f"No display to open the viewer on; open it later with: medviewer open {series_dir}")
        return 0
    return run_app(series_dir)
