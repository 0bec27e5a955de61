"""LIDC-IDRI nodules for benchmarks/click_accuracy.py (``--sets lidc``): the readers' outlines,
rasterised on the CT's grid and grouped into physical nodules.

A case folder (LIDC-IDRI-0001, as TCIA or drivendataorg/concept-to-clinic lay it out) holds one CT
series and the LIDC XML of its reads (``LidcReadMessage``, namespace http://www.nih.gov), in nested
folders or not. Each ``readingSession`` is one reader; each of its ``unblindedReadNodule`` holds
``roi`` elements, one per slice (``imageSOP_UID``, ``imageZposition``), each an ``edgeMap`` of
(xCoord, yCoord) = (column, row) pixels tracing the nodule's outer boundary.

Rasterising: each roi goes to the slice whose SOP Instance UID it names (else the slice at its z
position, within half a slice); the polygon's inside and the traced boundary pixels themselves make
the outline's mask (the boundary pixels are counted in). ``inclusion`` FALSE rois are holes: their
inside, less their traced pixels (the line between nodule and hole counts as nodule, as the outer
line does), is taken off that slice. Nodules under 3 mm carry no outline (one point per roi and no
``characteristics``): only reader nodules with a roi of more than one point are kept. The
``nonNodule`` marks are left out.

Readers' nodule ids do not match across readers: the outlines are grouped into physical nodules,
two outlines joining when they share a voxel or their centroids lie within the larger of 5 mm and
either's equivalent-sphere radius (outlines of one reader join only by sharing a voxel; a reader's
outlines in one group are merged). Masks are kept sparse: sorted flat voxel indices in the volume.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np

NS = "{http://www.nih.gov}"
JOIN_MM = 5.0


@dataclass
class Roi:
    z: float | None
    sop_uid: str
    inclusion: bool
    points: np.ndarray  # (n, 2) int: column, row


@dataclass
class ReaderNodule:
    """One reader's nodule as the XML gives it; ``voxels`` (sorted flat indices) once rasterised."""

    reader: str
    nodule_id: str
    rois: list[Roi]
    voxels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    unplaced: int = 0  # rois whose slice was not found in the volume


@dataclass
class PhysicalNodule:
    """One nodule, with the voxels of each reader who outlined it (reader -> sorted flat indices)."""

    readers: dict[str, np.ndarray]
    members: list[ReaderNodule]

    def consensus(self) -> np.ndarray:
        """Sorted flat indices of the voxels marked by at least half of the readers."""
        values, counts = np.unique(np.concatenate(list(self.readers.values())), return_counts=True)
        return values[2 * counts >= len(self.readers)]

    def mask(self, shape, voxels: np.ndarray | None = None) -> np.ndarray:
        """The consensus (or ``voxels``) as a boolean volume of ``shape``."""
        m = np.zeros(int(np.prod(shape)), bool)
        m[self.consensus() if voxels is None else voxels] = True
        return m.reshape(shape)


def sparse_dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two sets of sorted unique flat indices."""
    total = len(a) + len(b)
    return 1.0 if total == 0 else 2.0 * len(np.intersect1d(a, b, assume_unique=True)) / total


def pairwise_dice(readers: dict[str, np.ndarray]) -> list[float]:
    masks = list(readers.values())
    return [sparse_dice(masks[i], masks[j]) for i in range(len(masks)) for j in range(i + 1, len(masks))]


def parse_xml(path: str | os.PathLike) -> tuple[str | None, list[ReaderNodule]]:
    """(Series Instance UID of the header, the reader nodules that carry an outline).

    Raises ValueError for a file that is not an LIDC CT read (a chest radiograph's
    ``IdriReadMessage``, say)."""
    root = ET.parse(path).getroot()
    if root.tag != NS + "LidcReadMessage":
        raise ValueError(f"{os.fspath(path)}: not an LIDC CT read (root element {root.tag})")
    series_uid = root.findtext(f"{NS}ResponseHeader/{NS}SeriesInstanceUid")
    tag = os.path.basename(os.fspath(path))
    nodules = []
    for n, session in enumerate(root.iter(NS + "readingSession"), 1):
        # readers are told apart by their session: radiologist ids may be blank or repeated
        reader = f"{tag}#{n}"
        for nodule in session.iter(NS + "unblindedReadNodule"):
            rois = []
            for roi in nodule.iter(NS + "roi"):
                points = np.array([[int(float(e.findtext(NS + "xCoord"))), int(float(e.findtext(NS + "yCoord")))]
                                   for e in roi.iter(NS + "edgeMap")], dtype=int).reshape(-1, 2)
                z = roi.findtext(NS + "imageZposition")
                uid = (roi.findtext(NS + "imageSOP_UID") or "").strip()
                inclusion = (roi.findtext(NS + "inclusion") or "TRUE").strip().upper() != "FALSE"
                rois.append(Roi(float(z) if z and z.strip() else None, uid, inclusion, points))
            if any(len(r.points) > 1 for r in rois):  # under 3 mm: a centroid only
                nodules.append(ReaderNodule(reader, (nodule.findtext(NS + "noduleID") or "").strip(), rois))
    return (series_uid.strip() if series_uid else None), nodules


class _Slices:
    """Finds a roi's slice: by SOP Instance UID, else by z position (within half a slice)."""

    def __init__(self, volume):
        self.by_uid = {u: k for k, u in enumerate(volume.source_sop_instance_uids)}
        k = np.arange(volume.shape[0])
        self.z = volume.voxel_to_patient(np.stack([k, 0 * k, 0 * k], axis=1))[:, 2]
        self.half = volume.spacing[2] / 2 + 1e-3

    def find(self, roi: Roi) -> int | None:
        if roi.sop_uid in self.by_uid:
            return self.by_uid[roi.sop_uid]
        if roi.z is None or not len(self.z):
            return None
        k = int(np.argmin(np.abs(self.z - roi.z)))
        return k if abs(self.z[k] - roi.z) <= self.half else None


def _traced(points: np.ndarray, shape) -> np.ndarray:
    m = np.zeros(shape, bool)
    ok = (points[:, 0] >= 0) & (points[:, 0] < shape[1]) & (points[:, 1] >= 0) & (points[:, 1] < shape[0])
    m[points[ok, 1], points[ok, 0]] = True
    return m


def rasterize(nodule: ReaderNodule, volume, slices: _Slices | None = None) -> ReaderNodule:
    """Fill ``nodule.voxels`` (and ``unplaced``) on ``volume``'s grid."""
    from medviewer.core.polygon import polygon_mask

    slices = slices or _Slices(volume)
    plane = volume.shape[1:]
    keep: dict[int, np.ndarray] = {}
    holes: dict[int, np.ndarray] = {}
    nodule.unplaced = 0
    for roi in nodule.rois:
        k = slices.find(roi)
        if k is None:
            nodule.unplaced += 1
            continue
        if not len(roi.points):
            continue
        inside, edge = polygon_mask(roi.points.astype(float), plane)
        traced = _traced(roi.points, plane)
        if roi.inclusion:
            keep[k] = keep.get(k, np.zeros(plane, bool)) | inside | edge | traced
        else:
            holes[k] = holes.get(k, np.zeros(plane, bool)) | (inside & ~edge & ~traced)
    size = plane[0] * plane[1]
    parts = [np.flatnonzero(m & ~holes[k] if k in holes else m) + k * size for k, m in sorted(keep.items())]
    nodule.voxels = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)
    return nodule


def group(nodules: list[ReaderNodule], volume, join_mm: float = JOIN_MM) -> list[PhysicalNodule]:
    """The physical nodules, largest consensus first (see the module's docstring)."""
    nodules = [n for n in nodules if len(n.voxels)]
    spacing_zyx = np.asarray(volume.spacing[::-1])
    centroids = [np.stack(np.unravel_index(n.voxels, volume.shape), axis=1).mean(axis=0) * spacing_zyx
                 for n in nodules]
    radii = [(3 * len(n.voxels) * volume.voxel_volume_ml * 1000 / (4 * np.pi)) ** (1 / 3) for n in nodules]
    parent = list(range(len(nodules)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(nodules)):
        for j in range(i + 1, len(nodules)):
            touch = len(np.intersect1d(nodules[i].voxels, nodules[j].voxels, assume_unique=True)) > 0
            near = np.linalg.norm(centroids[i] - centroids[j]) <= max(join_mm, radii[i], radii[j])
            if touch or (near and nodules[i].reader != nodules[j].reader):
                parent[root(i)] = root(j)
    groups: dict[int, list[ReaderNodule]] = {}
    for i, n in enumerate(nodules):
        groups.setdefault(root(i), []).append(n)
    out = []
    for members in groups.values():
        readers: dict[str, np.ndarray] = {}
        for n in members:
            readers[n.reader] = np.union1d(readers[n.reader], n.voxels) if n.reader in readers else n.voxels
        out.append(PhysicalNodule(readers, members))
    return sorted(out, key=lambda p: -len(p.consensus()))


def find_cases(root: str | os.PathLike) -> list[str]:
    """The case folders under ``root`` (those holding an .xml somewhere below), or ``root`` itself
    (a case folder given directly: named LIDC-IDRI-*, or without such subfolders)."""
    root = os.fspath(root).rstrip(os.sep) or os.sep

    def has_xml(folder: str) -> bool:
        return any(f.lower().endswith(".xml") for _d, _s, files in os.walk(folder) for f in files)

    if not os.path.isdir(root):
        return []
    if os.path.basename(root).upper().startswith("LIDC-IDRI-"):
        return [root] if has_xml(root) else []
    subs = sorted(os.path.join(root, d) for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    cases = [d for d in subs if has_xml(d)]
    return cases or ([root] if has_xml(root) else [])


def load_case(folder: str | os.PathLike):
    """(volume, physical nodules, notes) of one case folder. Raises ValueError (or MedviewerError)
    naming the file for a folder that cannot be read."""
    from medviewer.io import index_folder, load_series

    folder = os.fspath(folder)
    xmls = sorted(os.path.join(d, f) for d, _s, files in os.walk(folder) for f in files if f.lower().endswith(".xml"))
    reads, notes = [], []
    for path in xmls:
        try:
            reads.append(parse_xml(path))
        except ET.ParseError as e:
            notes.append(f"{path}: unreadable XML ({e})")
        except ValueError as e:
            notes.append(str(e))
    if not reads:
        raise ValueError(f"{folder}: no LIDC CT read (LidcReadMessage XML) found"
                         + (f" ({'; '.join(notes)})" if notes else ""))
    index = index_folder(folder)
    series = [s for s in index.image_series() if s.modality == "CT"] or index.image_series()
    wanted = {uid for uid, _n in reads if uid}
    chosen = [s for s in series if s.series_instance_uid in wanted] or series
    if not chosen:
        raise ValueError(f"{folder}: no readable DICOM image series beside the XML")
    if len(chosen) > 1:
        raise ValueError(f"{folder}: {len(chosen)} CT series and none named by the XML's SeriesInstanceUid")
    volume = load_series(chosen[0], index.study_of(chosen[0]))
    slices = _Slices(volume)
    mine = [nodules for uid, nodules in reads if uid in (None, chosen[0].series_instance_uid) or len(reads) == 1]
    if len(mine) < len(reads):
        notes.append(f"{folder}: {len(reads) - len(mine)} XML read(s) of another series left out")
    readers = [rasterize(n, volume, slices) for nodules in mine for n in nodules]
    unplaced = sum(n.unplaced for n in readers)
    if unplaced:
        notes.append(f"{folder}: {unplaced} outline(s) on no slice of the series (SOP UID and z unmatched)")
    return volume, group(readers, volume), notes
