"""Running one plugin on one input without a window: what `medviewer run` does for its input and
`medviewer batch` does for each study.

:func:`check_output` refuses an output that does not fit the plugin before anything is loaded;
:func:`run_on_path` loads the input, runs the plugin (through :class:`~medviewer.plugins.runner.Runner`,
so the result is checked the same way everywhere) and writes the result atomically with
:func:`write_result`. Imports no Qt, VTK or torch.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Mapping, Sequence

from medviewer.core.errors import MedviewerError

IMAGE_KINDS = {"segmentation", "interactive", "image-to-image"}
JSON_KINDS = {"detection", "classification"}


def parse_params(items: Sequence[str]) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` from the command line as a dict (values still strings)."""
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise MedviewerError(f"--param expects KEY=VALUE, got {item!r}")
        params[key.strip()] = value
    return params


def resolve_params(manifest, given: Mapping[str, Any]) -> dict[str, Any]:
    """The plugin's parameters with defaults, types checked, path parameters made absolute."""
    params = manifest.resolve_params(given)
    for p in manifest.params:
        if p.type == "path" and params.get(p.name):
            params[p.name] = os.path.abspath(os.path.expanduser(params[p.name]))
    return params


def gives_image(manifest) -> bool:
    """Whether the plugin's results are images/label maps (else boxes or scores, written as JSON)."""
    return bool({manifest.kind, *manifest.also_kinds} & IMAGE_KINDS)


def result_suffix(manifest) -> str:
    """The default output suffix for the plugin's results: .nii.gz or .json."""
    return ".nii.gz" if gives_image(manifest) else ".json"


def check_output(manifest, out: str, force: bool = False, *, seg: bool = False) -> None:
    """MedviewerError unless ``out`` is a file type the plugin's results can be written as."""
    from medviewer.io import image_suffix

    if os.path.exists(out) and not force:
        raise MedviewerError("already exists (use --force to replace it)", out)
    low = out.lower()
    kinds = {manifest.kind, *manifest.also_kinds}
    if seg:
        if not kinds & {"segmentation", "interactive", "detection"}:
            raise MedviewerError(f"plugin {manifest.id} gives {manifest.kind} results, not a label map or "
                                 "boxes: it cannot be written as a DICOM SEG or SR", out)
        return
    if not low.endswith(".json") and image_suffix(out) is None:
        raise MedviewerError("unknown output type (use .nii.gz, .nrrd, .mha or .json)", out)
    if low.endswith(".json") and not kinds & JSON_KINDS:
        raise MedviewerError(f"plugin {manifest.id} gives an image ({manifest.kind}): write it as .nii.gz, "
                             ".nrrd or .mha", out)
    if not low.endswith(".json") and not kinds & IMAGE_KINDS:
        raise MedviewerError(f"plugin {manifest.id} gives {manifest.kind} results: write them as .json", out)


def _write_json(path: str, data, force: bool) -> None:
    from medviewer.core.atomic import write_text

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_text(path, json.dumps(data, indent=2), force)


def _source_info(volume, path: str) -> dict:
    return {"path": os.path.abspath(path), "shape_xyz": list(volume.size_xyz),
            "spacing_mm": list(volume.spacing), "origin_mm": list(volume.origin),
            "frame_of_reference_uid": volume.frame_of_reference_uid,
            "series_instance_uid": volume.meta.get("series_instance_uid")}


def segments_for(result, manifest) -> list:
    """Segments (names, colours, codes, the plugin as their algorithm) of a label map result."""
    import numpy as np

    from medviewer.core.segments import LESION, AlgorithmInfo, Code, Segment

    # A person's clicks guide an interactive plugin: semiautomatic (DICOM's term); else automatic.
    kind = "SEMIAUTOMATIC" if manifest.kind == "interactive" else "AUTOMATIC"
    name = getattr(result, "algorithm", "") or f"medviewer plugin {manifest.id}"
    algorithm = AlgorithmInfo(kind, name[:64], str(manifest.version))
    labels = {l.value: l for l in result.labels}
    segments = []
    for value in (int(v) for v in np.unique(result.label_map.array) if v):
        label = labels.get(value)
        code = Code(label.code[1], label.code[0], label.code[2]) if label and label.code else LESION
        segments.append(Segment(value, label.name if label else f"label {value}",
                                tuple(label.color) if label else (255, 0, 0), type=code, algorithm=algorithm))
    return segments


def write_result(result, manifest, volume, source_path: str, out: str, force: bool, *, seg: bool = False) -> str:
    """Write ``result`` to ``out`` (kind by suffix, or a DICOM SEG with ``seg``); a one-line summary,
    and a second line, "warning: ...", when a label map comes with a note (it has probably leaked)."""
    from medviewer.plugins.api import LabelMapResult

    summary = _write_result(result, manifest, volume, source_path, out, force, seg=seg)
    if isinstance(result, LabelMapResult) and result.note:
        summary += f"\nwarning: {result.note}"
    return summary


def _write_result(result, manifest, volume, source_path: str, out: str, force: bool, *, seg: bool = False) -> str:
    import numpy as np

    from medviewer.export.labelmap import LABEL_SUFFIXES, write_labelmap
    from medviewer.io import image_suffix, write_image
    from medviewer.plugins.api import BoxesResult, ImageResult, LabelMapResult, ScoresResult

    is_json = out.lower().endswith(".json")
    if seg and isinstance(result, BoxesResult):
        return _write_boxes_sr(result, manifest, volume, out, force)
    if seg:
        if not isinstance(result, LabelMapResult):
            raise MedviewerError(f"plugin {manifest.id} gave a {type(result).__name__}, not a label map: "
                                 "no DICOM SEG", out)
        if not np.any(result.label_map.array):
            raise MedviewerError("the label map is empty: no DICOM SEG written", out)
        from medviewer.export.seg import write_seg

        write_seg(volume, result.label_map, segments_for(result, manifest), out, force=force,
                  series_description=f"medviewer {manifest.id}")
        return f"Wrote a DICOM SEG to {out}"
    if isinstance(result, (LabelMapResult, ImageResult)):
        if image_suffix(out) is None:
            raise MedviewerError("a mask or image is written as .nii.gz, .nii, .nrrd or .mha", out)
        image = result.label_map if isinstance(result, LabelMapResult) else result.image
        if isinstance(result, LabelMapResult) and out.lower().endswith(LABEL_SUFFIXES):
            # With its label table: a .labels.json beside it (our loader reads it back) and, in a
            # NRRD, 3D Slicer's segment fields, so the names travel with the mask.
            write_labelmap(image, segments_for(result, manifest), out, force=force)
        else:
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


def slice_boxes(volume, boxes) -> list:
    """3D boxes (LPS mm) as the per-slice boxes a detection SR holds: each on the slice nearest
    its centre, its in-plane extent in pixels there; named and scored as the plugin named them."""
    import numpy as np

    from medviewer.core.segments import DetectionBox

    out = []
    top = np.asarray(volume.size_xyz, dtype=float) - 1
    for b in boxes:
        corners = volume.patient_to_index(np.array([b.lower_mm, b.upper_mm]))
        lo, hi = np.clip(corners.min(axis=0), 0, top), np.clip(corners.max(axis=0), 0, top)
        k = int(np.clip(np.rint(volume.patient_to_index(np.asarray(b.center_mm))[2]), 0, top[2]))
        out.append(DetectionBox(k, float(np.floor(lo[0])), float(np.floor(lo[1])), float(np.ceil(hi[0])),
                                float(np.ceil(hi[1])), label=b.name or f"class {b.label}", score=b.score))
    return out


def _write_boxes_sr(result, manifest, volume, out: str, force: bool) -> str:
    from medviewer.export.sr import write_detections

    if not result.boxes:
        raise MedviewerError("no boxes: no DICOM SR written", out)
    write_detections(volume, slice_boxes(volume, result.boxes), out, force=force,
                     algorithm_name=f"medviewer plugin {manifest.id}", algorithm_version=str(manifest.version))
    return f"Wrote {len(result.boxes)} box(es) as a DICOM SR (each on its centre slice) to {out}"


def run_on_path(manifest, path: str, out: str, params: Mapping[str, Any], *, series: str | None = None,
                prompts=None, device: str = "auto", force: bool = False, seg: bool = False,
                isolation: str | None = None, timeout_s: float | None = None,
                on_event: Callable | None = None, on_loaded: Callable | None = None,
                runner=None) -> str:
    """Load ``path`` (``series`` picks one of several), run ``manifest``'s plugin with ``params``,
    write the result to ``out`` atomically; returns the one-line summary, or raises
    MedviewerError (the plugin's one-line message when it failed).

    ``isolation`` overrides the manifest's ('thread' runs it in this process: what a batch
    worker wants, never a child process inside a worker process). ``on_loaded(volume)`` is
    called after loading. ``runner``: a Runner to reuse (default: a new one).
    """
    from medviewer.io import load_volume
    from medviewer.plugins.api import Prompts, Request
    from medviewer.plugins.runner import Runner

    volume = load_volume(path, series=series)
    if on_loaded is not None:
        on_loaded(volume)
    request = Request(volume, prompts or Prompts(), dict(params), device)
    runner = runner or Runner(force_cpu=device == "cpu")
    job = runner.submit(manifest, request, on_event=on_event, isolation=isolation, timeout_s=timeout_s)
    try:
        while not job.done:
            job.wait(0.2)
    except KeyboardInterrupt:
        job.cancel()
        job.wait(5)
        raise
    if job.state != "returned":
        raise MedviewerError(job.error or f"plugin {manifest.id} was cancelled")
    return write_result(job.result, manifest, volume, path, out, force, seg=seg)
