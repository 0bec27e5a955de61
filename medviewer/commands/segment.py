"""`medviewer segment PATH --point X,Y,Z ... --out OUT`: click-to-segment from the command line.

Points are DICOM patient LPS millimetres (the frame of Image Position Patient); a negative X may
follow the option after a space (``--point -21,-78,-157``: the command line joins it).
"""

from __future__ import annotations

import os
import sys
import time

from medviewer.commands.points import parse_point
from medviewer.core.errors import MedviewerError
from medviewer.segmentation.engine_choice import DEFAULT_ENGINE, ENGINES


def _point(text: str) -> tuple[float, float, float]:
    import argparse

    try:
        return parse_point(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _engine(text: str) -> str:
    """An engine name, or the folder of the bundle named (by folder or by name)."""
    import argparse

    if text in ENGINES:
        return text
    from medviewer.plugins.model_store import find_bundle

    try:
        return find_bundle(text)
    except MedviewerError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; or one of {', '.join(ENGINES)}") from None


def _bundle_engine(args) -> dict:
    """The plugin's parameters for a bundle given as --engine (trusted now if --trust), or {}."""
    if args.engine in ENGINES:
        return {}
    from medviewer.plugins import trust
    from medviewer.plugins.model_store import bundle_kind

    kind = bundle_kind(args.engine)
    if kind == "click":  # our own learned engine's layout (the shipped bundle, or a retrained one)
        return {"engine": "learned", "bundle": args.engine}
    if kind not in ("deepedit", "vista3d"):
        what = kind or "folder without a MONAI bundle config"
        raise MedviewerError(f"not a click engine: a {what} (click engines: DeepEdit, VISTA3D; "
                             "`medviewer run monai-bundle` runs others)", args.engine)
    if args.trust:
        print(f"Trusting {trust.set_trusted(args.engine)} (remembered in {trust.settings_path()})")
    elif not trust.is_trusted(args.engine):
        raise MedviewerError(trust.untrusted_message(args.engine))
    from medviewer.plugins.model_store import click_params

    return click_params(args.engine)


def register(sub) -> None:
    p = sub.add_parser("segment", help="segment a lesion from clicks (points in patient LPS mm)")
    p.add_argument("path", help="the image: a DICOM series folder/file or a NIfTI/NRRD/MHA volume")
    p.add_argument("--point", type=_point, action="append", default=[], metavar="X,Y,Z",
                   help="a positive click inside the lesion (repeatable; X,Y,Z may be negative)")
    p.add_argument("--negative", type=_point, action="append", default=[], metavar="X,Y,Z",
                   help="a negative click outside the lesion (repeatable)")
    p.add_argument("--out", required=True,
                   help="the mask to write: .nii.gz, .nrrd, or .dcm (DICOM SEG); replaced if it exists")
    p.add_argument("--engine", type=_engine, default=DEFAULT_ENGINE, metavar="|".join(ENGINES) + "|BUNDLE",
                   help=f"segmentation engine (default: {DEFAULT_ENGINE}: classical for a lesion that region "
                        "growing closes off near the first point, learned otherwise); or a DeepEdit or "
                        "VISTA3D bundle, by folder or by name (`medviewer models`), which runs that bundle")
    p.add_argument("--trust", action="store_true", help="trust the --engine bundle folder (remembered): "
                   "a bundle runs the code in its configs")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where the learned engine runs (default: CUDA when present, else CPU)")
    p.add_argument("--series", help="which image series in PATH (number, UID, position or folder)")
    p.add_argument("--name", default="lesion 1", help="the segment's name (SEG)")
    p.add_argument("--fresh", action="store_true",
                   help="outline the lesion afresh from all the clicks; without it, a mask already in OUT "
                        "(on the same grid, holding a --point), or else the last run's on this image when "
                        "these clicks extend its clicks, is the result the latest clicks correct, "
                        "and they change it only near themselves")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.engine in ("learned", "auto"):
        # MONAI imports torchvision when it is installed (for its detection networks), and
        # torchvision imports torch._dynamo: 1.4 s of the 4 s this one-off process spends loading
        # the engine. The click network is a plain UNet that needs neither; this process runs
        # nothing else, so it goes without (MONAI takes torchvision as absent, as it is optional).
        sys.modules.setdefault("torchvision", None)  # type: ignore[arg-type]
        # Likewise matplotlib's pyplot, which MONAI imports for its notebook helpers: 0.3-0.5 s.
        sys.modules.setdefault("matplotlib.pyplot", None)  # type: ignore[arg-type]

    from medviewer import __version__
    from medviewer.commands import segment_memory
    from medviewer.io import dropped_note, image_suffix, load_volume, write_image

    requested = args.engine   # what the run is remembered under (segment_memory)

    if not args.point:
        raise MedviewerError("give at least one --point=X,Y,Z inside the lesion")
    out = args.out
    is_seg = out.lower().endswith(".dcm")
    if not is_seg and image_suffix(out) is None:
        raise MedviewerError("OUT must end in .nii.gz, .nii, .nrrd, .mha or .dcm (DICOM SEG)", out)
    # Unlike export and run, segment replaces OUT: refining a lesion click by click rewrites the
    # same mask (as the reference robot user of tools/click_eval.py does). It says so.
    replacing = os.path.exists(out)
    if os.path.isdir(out):
        raise MedviewerError("is a folder; give a file name", out)
    volume = load_volume(args.path, series=args.series)
    if dropped_note(volume):
        print(f"note: {dropped_note(volume)}", file=sys.stderr)
    if is_seg:  # a series a SEG cannot reference fails now, not after the segmentation
        from medviewer.export.sources import source_datasets

        sources = source_datasets(volume)   # read once: the SEG below references them
    for p in args.point + args.negative:
        if not volume.contains_point(p):
            raise MedviewerError(f"point {','.join(f'{v:g}' for v in p)} mm lies outside the image "
                                 f"(which spans {_extent(volume)})", args.path)
    from medviewer.plugins.api import Prompts, Request
    from medviewer.plugins.registry import get_manifest
    from medviewer.segmentation.engine_choice import choose_engine, learned_engine_asked_too, lung_near
    from medviewer.segmentation.guidance import too_thin_for_learned

    # The plugin would decide the same; deciding here spares loading the network.
    params = _bundle_engine(args)
    if params:  # a DeepEdit or VISTA3D bundle: its network, named by its folder
        args.engine = f"{os.path.basename(params['bundle'])} bundle"
    chosen = args.engine
    thin = too_thin_for_learned(volume) if args.engine in ("learned", "auto") else ""
    if thin:
        chosen = "auto" if args.engine == "auto" else "classical"
        args.engine = "classical"
        print(f"note: {thin}: the classical engine outlines this lesion")
    elif args.engine == "auto":
        args.engine, why = choose_engine(volume, args.point)
        chosen = f"auto: {why}" if why else "auto"
        if args.engine == "classical" and learned_engine_asked_too(volume, args.point[0]):
            args.engine, chosen = "auto", "auto"  # the plugin asks the learned engine too, and says which outlined it
        elif args.engine == "learned" and lung_near(volume, args.point[0]):
            args.engine, chosen = "auto", "auto"  # the plugin asks region growing too (a lung mass outlined whole?)
    from medviewer.plugins.runner import Runner

    manifest = get_manifest("click-segment")
    params = params or {"engine": args.engine}
    memory_key = (args.path, args.series, f"{requested} {params.get('bundle', '')}".strip())
    if not args.fresh and len(args.point) + len(args.negative) > 1:
        previous, why = previous_mask(out, volume) if replacing else (None, "")
        if previous is None:   # OUT is new (or unusable): the last run on this image, if these clicks extend its
            previous, clicks = segment_memory.recall(*memory_key, volume, args.point, args.negative)
            if previous is not None:
                why = ""
                print(f"note: the latest clicks correct the mask of the last run on this image ({clicks} "
                      "click(s), remembered); --fresh outlines the lesion afresh")
        if previous is not None:
            params["previous"] = previous
        elif why:
            print(f"note: {why}: the lesion is outlined afresh from all the clicks")
    request = Request(volume, Prompts(tuple(args.point), tuple(args.negative)), params, device=args.device)
    runner = Runner()
    # Loading the engine (torch, MONAI, the network: seconds in a fresh process) is timed apart
    # from the segmentation itself, which is what a click costs in the window.
    loading = runner.warm(manifest, params, device=args.device)
    try:
        loaded_in = loading.result() if loading is not None else 0.0
    except Exception:  # noqa: BLE001  (the run below fails with the same error, reported properly)
        loaded_in = 0.0
    started = time.perf_counter()
    result = runner.run(manifest, request)
    elapsed = time.perf_counter() - started
    labels = result.label_map
    mask = labels.array > 0
    if is_seg:
        from medviewer.core.segments import AlgorithmInfo, Segment
        from medviewer.export.seg import write_seg

        algorithm = AlgorithmInfo("SEMIAUTOMATIC", result.algorithm or f"medviewer click-to-segment ({args.engine})",
                                  __version__)
        write_seg(volume, labels, [Segment(1, args.name, (255, 80, 80), algorithm=algorithm)], out,
                  force=True, source_images=sources)
    else:
        write_image(labels, out, force=True)
    segment_memory.remember(*memory_key, volume, args.point, args.negative, mask)
    ml = float(mask.sum()) * volume.voxel_volume_ml
    loaded = f", after {loaded_in:.1f} s loading it" if loaded_in >= 0.05 else ""
    used = args.engine
    if used == "auto" and result.algorithm.endswith(")"):  # "medviewer click-to-segment (learned)"
        used = result.algorithm.rsplit("(", 1)[-1][:-1]
    print(f"{args.name}: {ml:.2f} mL ({int(mask.sum())} voxels), segmented in {elapsed:.2f} s "
          f"by the {used} engine{'' if chosen == used else f' ({chosen})'}{loaded}; "
          f"{'replaced' if replacing else 'wrote'} {out}")
    if not mask.any():
        print("warning: the mask is empty")
    note = result.note
    if note.startswith(f"the {used} engine outlined it: "):  # auto's reason (it holds no "; "): not a warning
        reason, _, note = note.partition("; ")
        print(f"note: {reason}")
    if note:
        print(f"warning: {note}")
    return 0


def previous_mask(path: str, volume):
    """The mask in ``path`` (the OUT that this run replaces) as the previous result of the clicks
    (a boolean array on ``volume``'s grid) and "", or None and why it cannot be: `segment` rewrites
    OUT click by click, so OUT holds what the latest click corrects."""
    import numpy as np

    from medviewer.io import read_image
    from medviewer.io.annotations import read_seg

    try:
        mask = read_seg(path, volume) if path.lower().endswith(".dcm") else read_image(path)
    except MedviewerError as exc:
        return None, f"the mask in {path} cannot be read ({exc})"
    same = (mask.shape == volume.shape and np.allclose(mask.spacing, volume.spacing, atol=1e-3)
            and np.allclose(mask.origin, volume.origin, atol=1e-2)
            and np.allclose(np.asarray(mask.direction), np.asarray(volume.direction), atol=1e-4))
    if not same:
        return None, f"the mask in {path} lies on another grid than the image"
    return mask.array > 0, ""


def _extent(volume) -> str:
    import numpy as np

    corners = volume.index_to_patient(np.array([[0, 0, 0], np.asarray(volume.size_xyz) - 1]))
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    return ", ".join(f"{a:.0f}..{b:.0f}" for a, b in zip(lo, hi)) + " mm"
