"""`medviewer open PATH`: open a DICOM folder/file or an image file in the viewer window."""

from __future__ import annotations

from medviewer.core.errors import MedviewerError


def register(sub) -> None:
    p = sub.add_parser("open", help="open a study (DICOM folder or file, NIfTI/NRRD/MHA) in the viewer")
    p.add_argument("path", help="folder or file to open")
    p.add_argument("--series", help="which image series (number, UID, position or folder) when there are several")
    p.add_argument("--seg", metavar="MASK",
                   help="also load a segmentation onto the series: a label map (.nii.gz/.nrrd/.mha) "
                        "or a DICOM SEG/RTSTRUCT (.dcm)")
    p.add_argument("--screenshot", metavar="FILE.png",
                   help="render the views (2x2: axial, coronal, sagittal, 3D), save a PNG (or, as FILE.dcm, "
                        "a DICOM key image in the study) and exit")
    p.add_argument("--size", default="1280x900", help="window size WxH (default 1280x900)")
    p.add_argument("--layout", choices=("2x2", "1x1"), default="2x2", help="view layout (default 2x2)")
    p.set_defaults(func=run)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise MedviewerError(f"--size must look like 1280x900, got {text!r}") from None
    if not (200 <= w <= 8000 and 200 <= h <= 8000):
        raise MedviewerError(f"--size {text} is out of range (200 to 8000 pixels a side)")
    return w, h


def run(args) -> int:
    # the GUI is imported only now, so that the other commands never load Qt or VTK
    from medviewer.ui.app import run_app

    return run_app(args.path, series=args.series, screenshot=args.screenshot, seg=args.seg,
                       size=parse_size(args.size), layout=args.layout)
