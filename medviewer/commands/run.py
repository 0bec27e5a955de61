"""`medviewer run PLUGIN PATH --out OUT`: run any plugin headless, with a progress bar."""

from __future__ import annotations

import json
import os
import sys
import tempfile

from medviewer.core.errors import MedviewerError


def register(sub) -> None:
    p = sub.add_parser("run", help="run an AI plugin on a series and write its result")
    p.add_argument("plugin", help="plugin id (see `medviewer plugins`)")
    p.add_argument("path", help="a DICOM folder or file, or a NIfTI/NRRD/MHA image")
    p.add_argument("--out", required=True,
                   help="output: a mask or image (.nii.gz, .nrrd, .mha) or boxes/scores (.json)")
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
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise MedviewerError(f"a point is three numbers X,Y,Z in mm, got {text!r}")
    return values  # type: ignore[return-value]


def _params(items: list[str]) -> dict[str, str]:
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise MedviewerError(f"--param expects KEY=VALUE, got {item!r}")
        params[key.strip()] = value
    return params


def _write_json(path: str, data, force: bool) -> None:
    if os.path.exists(path) and not force:
        raise MedviewerError("already exists (use --force to replace it)", path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _source_info(volume, path: str) -> dict:
    return {"path": os.path.abspath(path), "shape_xyz": list(volume.size_xyz),
            "spacing_mm": list(volume.spacing), "origin_mm": list(volume.origin),
            "frame_of_reference_uid": volume.frame_of_reference_uid,
            "series_instance_uid": volume.meta.get("series_instance_uid")}


def write_result(result, manifest, volume, source_path: str, out: str, force: bool) -> str:
    """Write ``result`` to ``out`` (kind by suffix); returns a one-line summary."""
    import numpy as np

    from medviewer.io import image_suffix, write_image
    from medviewer.plugins.api import BoxesResult, ImageResult, LabelMapResult, ScoresResult

    is_json = out.lower().endswith(".json")
    if isinstance(result, (LabelMapResult, ImageResult)):
        if image_suffix(out) is None:
            raise MedviewerError("a mask or image is written as .nii.gz, .nii, .nrrd or .mha", out)
        image = result.label_map if isinstance(result, LabelMapResult) else result.image
        write_image(image, out, force=force)
        if isinstance(result, LabelMapResult):
            counts = {int(v): int(n) for v, n in zip(*np.unique(image.array, return_counts=True)) if v}
            names = {l.value: l.name for l in result.labels}
            parts = [f"{names.get(v, f'label {v}')}: {n} voxels, {n * image.voxel_volume_ml:.1f} mL"
                     for v, n in counts.items()]
            return f"Wrote a label map on the source grid to {out} ({'; '.join(parts) or 'empty'})"
        return f"Wrote the {result.description or 'image'} to {out}"
    if not is_json:
        raise MedviewerError("boxes and scores are written as .json", out)
    head = {"plugin": manifest.id, "plugin_title": manifest.title, "source": _source_info(volume, source_path)}
    if isinstance(result, BoxesResult):
        data = {**head, "coordinates": "DICOM patient LPS millimetres (lower/upper corners)",
                "labels": [{"value": l.value, "name": l.name} for l in result.labels],
                "boxes": [b.to_json() for b in result.boxes]}
        _write_json(out, data, force)
        return f"Wrote {len(result.boxes)} box(es) in patient mm to {out}"
    if isinstance(result, ScoresResult):
        data = {**head, "scores": dict(result.scores), "note": result.note,
                "region": result.region.to_json() if result.region else None}
        _write_json(out, data, force)
        best = max(result.scores.items(), key=lambda kv: kv[1]) if result.scores else ("-", 0)
        return f"Wrote scores to {out} (highest: {best[0]} {best[1]:.2f})"
    raise MedviewerError(f"cannot write a {type(result).__name__}", out)


def run(args) -> int:
    from medviewer.io import image_suffix, load_volume
    from medviewer.plugins import trust
    from medviewer.plugins.api import Prompts, Request
    from medviewer.plugins.registry import get_manifest, static_availability
    from medviewer.plugins.runner import Runner

    manifest = get_manifest(args.plugin)
    avail = static_availability(manifest)
    if not avail:
        raise MedviewerError(f"plugin {manifest.id} cannot run here: {avail.describe()}")
    params = manifest.resolve_params(_params(args.param))
    for p in manifest.params:
        if p.type == "path" and params.get(p.name):
            params[p.name] = os.path.abspath(os.path.expanduser(params[p.name]))
    out = args.out
    if os.path.exists(out) and not args.force:
        raise MedviewerError("already exists (use --force to replace it)", out)
    if not out.lower().endswith(".json") and image_suffix(out) is None:
        raise MedviewerError("unknown output type (use .nii.gz, .nrrd, .mha or .json)", out)
    kinds = {manifest.kind, *manifest.also_kinds}
    wants_image = bool(kinds & {"segmentation", "interactive", "image-to-image"})
    wants_json = bool(kinds & {"detection", "classification"})
    if out.lower().endswith(".json") and not wants_json:
        raise MedviewerError(f"plugin {manifest.id} gives an image ({manifest.kind}): write it as .nii.gz, "
                             ".nrrd or .mha", out)
    if not out.lower().endswith(".json") and not wants_image:
        raise MedviewerError(f"plugin {manifest.id} gives {manifest.kind} results: write them as .json", out)
    if manifest.executes_untrusted_code:
        folder = params.get("bundle")
        if folder and args.trust:
            print(f"Trusting {trust.set_trusted(folder, True)} (remembered in {trust.settings_path()})")
        elif folder and os.path.isdir(folder) and not trust.is_trusted(folder):
            raise MedviewerError(trust.untrusted_message(folder))
    prompts = Prompts(tuple(_point(p) for p in args.point), tuple(_point(p) for p in args.negative_point))
    volume = load_volume(args.path, series=args.series)
    request = Request(volume, prompts, params, args.device)

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

    runner = Runner(force_cpu=args.device == "cpu")
    job = runner.submit(manifest, request, on_event=on_event, timeout_s=args.timeout)
    try:
        while not job.done:
            job.wait(0.2)
    except KeyboardInterrupt:
        job.cancel()
        job.wait(5)
        raise
    finally:
        if bar is not None:
            bar.close()
    if job.state != "returned":
        raise MedviewerError(job.error or f"plugin {manifest.id} was cancelled")
    print(write_result(job.result, manifest, volume, args.path, out, args.force))
    return 0
