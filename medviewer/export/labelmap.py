"""NIfTI / NRRD label maps with a label table, and reading them back onto a source grid.

The label table travels twice: as a JSON sidecar ``<name>.labels.json`` (label, name, colour,
codes, algorithm; for any format) and, in NRRD files, as 3D Slicer segmentation header fields
(``Segment0_Name``, ``Segment0_Color``, ``Segment0_LabelValue``, ...), so Slicer shows names and
colours when the file is named ``*.seg.nrrd``.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np

from medviewer.core.errors import MedviewerError
from medviewer.core.segments import Segment, default_segments
from medviewer.core.volume import Volume
from medviewer.core.atomic import atomic_path, check_target, write_text

LABEL_SUFFIXES = (".nii.gz", ".nii", ".nrrd")


def sidecar_path(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    for suffix in (".seg.nrrd",) + LABEL_SUFFIXES:
        if path.lower().endswith(suffix):
            return path[: -len(suffix)] + ".labels.json"
    return path + ".labels.json"


def label_table(segments: Sequence[Segment]) -> dict:
    return {"format": "medviewer label table", "version": 1, "segments": [s.to_dict() for s in segments]}


def _slicer_fields(segments: Sequence[Segment], labels: np.ndarray) -> dict[str, str]:
    fields = {}
    for n, s in enumerate(segments):
        where = np.argwhere(labels == s.label)
        if where.size:
            lo, hi = where.min(axis=0), where.max(axis=0)  # z, y, x
            extent = f"{lo[2]} {hi[2]} {lo[1]} {hi[1]} {lo[0]} {hi[0]}"
        else:
            extent = "0 -1 0 -1 0 -1"
        fields.update({
            f"Segment{n}_ID": f"segment_{s.label}",
            f"Segment{n}_Name": s.name,
            f"Segment{n}_Color": " ".join(f"{c / 255:.6g}" for c in s.color),
            f"Segment{n}_LabelValue": str(s.label),
            f"Segment{n}_Layer": "0",
            f"Segment{n}_Extent": extent,
            f"Segment{n}_Tags": (f"TerminologyEntry:Segmentation category and type - DICOM master list~"
                                 f"{s.category.scheme}^{s.category.value}^{s.category.meaning}~"
                                 f"{s.type.scheme}^{s.type.value}^{s.type.meaning}~^^~"
                                 f"Anatomic codes - DICOM master list~^^~^^|"),
        })
    fields["Segmentation_MasterRepresentation"] = "Binary labelmap"
    fields["Segmentation_ContainedRepresentationNames"] = "Binary labelmap|"
    return fields


def write_labelmap(labels: Volume, segments: Sequence[Segment] | None, out: str | os.PathLike, *,
                   force: bool = False) -> str:
    """Write ``labels`` as a NIfTI/NRRD label map (and its label table beside). Atomic."""
    import SimpleITK as sitk

    out = os.fspath(out)
    suffix = next((s for s in LABEL_SUFFIXES if out.lower().endswith(s)), None)
    if suffix is None:
        raise MedviewerError(f"a label map must end with {', '.join(LABEL_SUFFIXES)}", out)
    lab = np.asarray(labels.array)
    if segments is None:
        segments = default_segments(v for v in np.unique(lab) if v != 0)
    segments = list(segments)
    sidecar = sidecar_path(out)
    check_target(out, force)
    check_target(sidecar, force)
    dtype = np.uint8 if max((s.label for s in segments), default=0) < 256 else np.uint16
    image = labels.with_array(lab.astype(dtype)).to_sitk()
    if suffix == ".nrrd":
        for key, value in _slicer_fields(segments, lab).items():
            image.SetMetaData(key, value)
    with atomic_path(out, force, suffix=suffix) as tmp:
        try:
            sitk.WriteImage(image, tmp, useCompression=True)
        except RuntimeError as exc:
            lines = [ln for ln in str(exc).splitlines() if ln.strip()]
            raise OSError(0, lines[-1] if lines else str(exc)) from None
    write_text(sidecar, json.dumps(label_table(segments), indent=2), force=True)
    return out


def _slicer_segment_fields(reader) -> list[dict]:
    """Each ``SegmentN_*`` field group of a NRRD's header (3D Slicer's segmentation): label
    value, layer, name and colour (0-255)."""
    keys = set(reader.GetMetaDataKeys())
    out, n = [], 0
    while f"Segment{n}_LabelValue" in keys:
        field = lambda name, default: reader.GetMetaData(f"Segment{n}_{name}") if f"Segment{n}_{name}" in keys \
            else default  # noqa: E731
        label = int(field("LabelValue", "1"))
        color = tuple(int(round(float(c) * 255)) for c in field("Color", "1 0 0").split()[:3])
        out.append({"label": label, "layer": int(field("Layer", "0") or 0),
                    "name": field("Name", f"segment {label}"), "color": color})
        n += 1
    return out


def _nrrd_reader(path: str):
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    return reader


def read_label_table(path: str | os.PathLike) -> list[Segment] | None:
    """Segments from a label map's JSON sidecar, else from Slicer NRRD fields; None without."""
    path = os.fspath(path)
    sidecar = sidecar_path(path)
    if os.path.isfile(sidecar):
        try:
            with open(sidecar, encoding="utf-8") as fh:
                data = json.load(fh)
            return [Segment.from_dict(d) for d in data["segments"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise MedviewerError(f"label table unreadable ({exc})", sidecar) from None
    reader = _nrrd_reader(path) if path.lower().endswith(".nrrd") else None
    if reader is None:
        return None
    return [Segment(f["label"], f["name"], f["color"]) for f in _slicer_segment_fields(reader)] or None


def _read_slicer_layers(path: str, reader) -> tuple[Volume, list[Segment], list[str]]:
    """A 3D Slicer segmentation whose segments overlap: one layer (a component of each voxel) per
    group of non-overlapping segments, each segment a label value in its layer. Each segment gets
    a label of its own here (1, 2, ...); where segments overlap the later one is kept, and a note
    says where."""
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(path)
    except RuntimeError as exc:
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        raise MedviewerError(f"cannot be read as an image ({lines[-1] if lines else exc})", path) from None
    layers = sitk.GetArrayFromImage(image)            # z, y, x, layer
    fields = _slicer_segment_fields(reader)
    if not fields:
        raise MedviewerError("a multi-layer image without 3D Slicer segment fields is not a label map", path)
    labels = np.zeros(layers.shape[:3], np.uint8 if len(fields) < 256 else np.uint16)
    covered = np.zeros(layers.shape[:3], np.int32)
    segments = []
    for n, f in enumerate(fields, start=1):
        if not 0 <= f["layer"] < layers.shape[3]:
            raise MedviewerError(f"segment {f['name']!r} names layer {f['layer']}, which the file lacks", path)
        mask = layers[..., f["layer"]] == f["label"]
        labels[mask] = n
        covered += mask
        segments.append(Segment(n, f["name"], f["color"]))
    notes = []
    if (covered > 1).any():
        notes.append(f"segments overlap in {int((covered > 1).sum())} voxels; the later segment is shown there")
    scalar = sitk.GetImageFromArray(labels)
    scalar.CopyInformation(sitk.VectorIndexSelectionCast(image, 0))
    return Volume.from_sitk(scalar, meta={"source_file": path}), segments, notes


def _on_lattice(image: Volume, source: Volume) -> bool:
    """Whether ``image``'s voxels are voxels of ``source`` (a box of it: the same spacing and
    axes, its corner on one of source's voxels), so that placing it needs no resampling."""
    if not (np.allclose(image.spacing, source.spacing, rtol=1e-5)
            and np.allclose(image.direction, source.direction, atol=1e-5)):
        return False
    corner = source.patient_to_index(np.asarray(image.origin))
    return bool(np.allclose(corner, np.rint(corner), atol=1e-3))


def read_labelmap(path: str | os.PathLike, source: Volume, *,
                  defaults: bool = True) -> tuple[Volume, list[Segment], list[str]]:
    """A label map file on ``source``'s grid: (labels, segments, notes). The segments are those
    its label table names, and (``defaults``) default ones for the other labels present.

    NIfTI, NRRD (3D Slicer's ``.seg.nrrd`` with its names and colours, one layer or several when
    its segments overlap) or MHA. A map covering a box of the source's voxels (as Slicer saves a
    segmentation cropped to its extent) is placed as it is; one on another grid of the same
    patient space is resampled (nearest neighbour) onto the source grid, and a note says so.
    """
    from medviewer.core.resample import labels_onto_grid
    from medviewer.io import read_image

    path = os.fspath(path)
    reader = _nrrd_reader(path) if path.lower().endswith(".nrrd") else None
    notes: list[str] = []
    table = None
    if reader is not None and reader.GetNumberOfComponents() > 1:
        image, table, notes = _read_slicer_layers(path, reader)
    else:
        image = read_image(path)
    array = np.asarray(image.array)
    if not np.allclose(array, np.rint(array)) or array.min() < 0:
        raise MedviewerError("not a label map (values must be whole numbers >= 0)", path)
    image = image.with_array(array.astype(np.uint16 if array.max() > 255 else np.uint8))
    try:
        labels = labels_onto_grid(image, source)
    except MedviewerError as exc:
        raise MedviewerError(exc.message, path) from None
    if not image.same_grid(source) and not _on_lattice(image, source):
        notes.append("the label map lies on another grid: resampled (nearest neighbour) onto the series")
    present = [int(v) for v in np.unique(labels.array) if v != 0]
    if not present:
        raise MedviewerError("the label map is empty on this series", path)
    if table is None:
        table = read_label_table(path)
    segments = [s for s in table or () if s.label in present]
    if defaults:
        known = {s.label for s in segments}
        segments += default_segments([v for v in present if v not in known])
    labels = labels.with_array(labels.array, meta={**dict(source.meta), "segments": tuple(segments),
                                                   "source_file": path})
    return labels, segments, notes
