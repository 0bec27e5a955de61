"""`medviewer run PLUGIN PATH --out OUT`: run any plugin headless, with a progress bar."""

from __future__ import annotations

import sys

from medviewer.commands.points import parse_point
from medviewer.core.errors import MedviewerError


def register(sub) -> None:
    p = sub.add_parser("run", help="run an AI plugin on a series and write its result")
    p.add_argument("plugin", help="plugin id (see `medviewer plugins`)")
    p.add_argument("path", help="a DICOM folder or file, or a NIfTI/NRRD/MHA image")
    p.add_argument("--out", required=True,
                   help="output: a mask or image (.nii.gz, .nrrd, .mha), a mask as DICOM SEG or boxes as "
                        "DICOM SR (.dcm), or boxes/scores (.json)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="a plugin parameter")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where to run (default: CUDA when present, else CPU)")
    p.add_argument("--series", help="which series, when PATH holds several")
    p.add_argument("--point", action="append", default=[], metavar="X,Y,Z",
                   help="a positive prompt point in LPS mm (interactive and per-lesion plugins)")
    p.add_argument("--negative-point", action="append", default=[], metavar="X,Y,Z",
                   help="a negative prompt point in LPS mm")
    p.add_argument("--trust", action="store_true",
                   help="trust the bundle folder given as --param bundle=DIR (remembered)")
    p.add_argument("--timeout", type=float, default=None, help="stop the plugin after this many seconds")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _point(text: str) -> tuple[float, float, float]:
    try:
        return parse_point(text)
    except ValueError as exc:
        raise MedviewerError(str(exc)) from None


def run(args) -> int:
    from medviewer.plugins import trust
    from medviewer.plugins.api import Prompts
    from medviewer.plugins.headless import check_output, parse_params, resolve_params, run_on_path
    from medviewer.plugins.registry import get_manifest, static_availability

    manifest = get_manifest(args.plugin)
    avail = static_availability(manifest)
    if not avail:
        raise MedviewerError(f"plugin {manifest.id} cannot run here: {avail.describe()}")
    params = resolve_params(manifest, parse_params(args.param))
    out = args.out
    seg = out.lower().endswith(".dcm")  # a label map as a DICOM SEG (boxes as an SR) on the source series
    check_output(manifest, out, args.force, seg=seg)
    told = trust.require_trusted(manifest, params, trust_now=args.trust)
    if told:
        print(told)
    prompts = Prompts(tuple(_point(p) for p in args.point), tuple(_point(p) for p in args.negative_point))

    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=100, desc="starting", unit="%", file=sys.stderr, leave=False, disable=None,
                   bar_format="{desc:<28} {percentage:3.0f}%|{bar}| {elapsed}")

    def on_event(event) -> None:
        if bar is None or event.kind != "progress":
            return
        bar.set_description_str(event.stage)
        if event.fraction is not None:
            bar.n = int(round(event.fraction * 100))
        bar.refresh()

    try:
        summary = run_on_path(manifest, args.path, out, params, series=args.series, prompts=prompts,
                              device=args.device, force=args.force, seg=seg, timeout_s=args.timeout,
                              on_event=on_event)
    finally:
        if bar is not None:
            bar.close()
    print(summary)
    return 0
