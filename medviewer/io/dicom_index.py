"""Index a folder of DICOM files: patients -> studies -> series, from headers only.

Any file names, any depth, DICOMDIR optional (it is skipped, the files are found by walking).
Files that are not DICOM, truncated, or unreadable are listed in ``DicomIndex.skipped`` with the
reason; the good files still index.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Callable, Iterable

import pydicom
from pydicom.errors import InvalidDicomError

from medviewer.core.errors import MedviewerError
from medviewer.io.guard import guarded, open_regular
from medviewer.io.pixel_checks import check_pixel_data
from medviewer.io.structure import structure_problem

ProgressCallback = Callable[[int, int], None]

_HEADER_TAGS = [
    "SOPClassUID", "SOPInstanceUID", "PatientID", "PatientName", "StudyInstanceUID", "StudyDate",
    "StudyDescription", "AccessionNumber", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription",
    "Modality", "FrameOfReferenceUID", "InstanceNumber", "ImagePositionPatient",
    "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "Rows", "Columns", "NumberOfFrames",
    "BitsAllocated", "SamplesPerPixel", "ImageType", "AcquisitionNumber",
    "SharedFunctionalGroupsSequence",
]
# What groups a file into patient, study and series (read with the header, inside its guard).
_GROUPING_TAGS = ("PatientID", "PatientName", "StudyInstanceUID", "StudyDate", "StudyDescription",
                  "AccessionNumber", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription",
                  "Modality", "FrameOfReferenceUID")
_DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
# Storage SOP classes start so; those below under it carry no image of their own (waveforms,
# presentation states, raw data, registrations, segmentations' surfaces, SR, RT objects but
# RT Image, encapsulated documents).
_IMAGE_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1."
_NON_IMAGE_CLASSES = tuple("1.2.840.10008.5.1.4.1.1." + c for c in (
    "9", "11", "66", "67", "68", "79", "88", "90", "91", "104", "481.2", "481.3", "481.4", "481.5",
    "481.6", "481.7", "481.8", "481.9", "481.10", "481.11", "481.12", "481.13", "481.14", "481.15",
    "481.16", "481.17", "481.18", "481.19", "481.20", "481.21", "481.22", "481.23", "481.24",
    "481.25"))
_IMAGE_MODALITIES = {"CT", "MR", "PT", "NM", "US", "CR", "DX", "MG", "XA", "RF", "IO", "PX"}
# Objects that are not images to view (structure sets, segmentations, reports, ...): indexed, not
# loaded as volumes; SEG carries pixels but belongs on top of the series it references.
_NON_IMAGE_MODALITIES = {"RTSTRUCT", "SEG", "SR", "RTPLAN", "KO", "PR", "REG", "DOC"}


@dataclass(frozen=True)
class InstanceHeader:
    """What the index keeps of one DICOM file."""

    path: str
    sop_class_uid: str
    sop_instance_uid: str
    instance_number: int | None
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None
    rows: int
    columns: int
    number_of_frames: int
    has_pixels: bool
    acquisition_number: int | None
    transfer_syntax_uid: str


@dataclass
class SeriesEntry:
    series_instance_uid: str
    series_number: int | None
    series_description: str
    modality: str
    frame_of_reference_uid: str | None
    patient_id: str
    study_instance_uid: str
    instances: list[InstanceHeader] = field(default_factory=list)
    stack: int = 0  # > 0 when one Series Instance UID holds several image stacks
    # Files skipped in this series' folder(s): where a slice is missing, the likely culprits.
    damaged: list["SkippedFile"] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.series_instance_uid + (f"#{self.stack}" if self.stack else "")

    @property
    def uid(self) -> str | None:
        """The Series Instance UID, or None where the files carry none (blanked by an anonymiser)."""
        return None if self.series_instance_uid.startswith("no-series-uid|") else self.series_instance_uid

    @property
    def is_image(self) -> bool:
        return self.modality not in _NON_IMAGE_MODALITIES and any(i.has_pixels for i in self.instances)

    @property
    def slice_count(self) -> int:
        return sum(max(1, i.number_of_frames) for i in self.instances)

    @property
    def folder(self) -> str:
        return os.path.commonpath([os.path.dirname(i.path) for i in self.instances])


@dataclass
class StudyEntry:
    study_instance_uid: str
    study_date: str
    study_description: str
    accession_number: str
    series: list[SeriesEntry] = field(default_factory=list)


@dataclass
class PatientEntry:
    patient_id: str
    patient_name: str
    studies: list[StudyEntry] = field(default_factory=list)


@dataclass(frozen=True)
class SkippedFile:
    path: str
    reason: str


# Files with these suffixes are known not to be DICOM: they are counted, not reported as skipped.
NON_DICOM_SUFFIXES = (".json", ".xml", ".txt", ".csv", ".md", ".nii", ".nii.gz", ".nrrd", ".nhdr",
                      ".mha", ".mhd", ".raw", ".png", ".jpg", ".jpeg", ".pdf", ".py", ".stl", ".html")


@dataclass
class DicomIndex:
    root: str
    patients: list[PatientEntry] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # files of known non-DICOM types, hidden ones

    def all_series(self) -> list[SeriesEntry]:
        return [s for p in self.patients for st in p.studies for s in st.series]

    def image_series(self) -> list[SeriesEntry]:
        return [s for s in self.all_series() if s.is_image]

    def study_of(self, series: SeriesEntry) -> StudyEntry:
        for p in self.patients:
            for st in p.studies:
                if series in st.series:
                    return st
        raise KeyError(series.key)

    def find_series(self, key: str) -> SeriesEntry:
        for s in self.all_series():
            if key in (s.key, s.series_instance_uid):
                return s
        raise MedviewerError(f"no series {key!r} in the index", self.root)


def _walk(root: str, unreadable: list[SkippedFile] | None = None,
          hidden: list[str] | None = None) -> list[str]:
    """Every non-hidden entry below ``root`` that is not a folder (special files included: the
    reader refuses them by name rather than the walk hiding them). Folders that cannot be listed
    are added to ``unreadable``; hidden files and folders (not read) to ``hidden``."""
    if not os.path.isdir(root):
        return [root]
    files = []
    hidden = [] if hidden is None else hidden

    def on_error(exc: OSError) -> None:
        if unreadable is not None:
            unreadable.append(SkippedFile(exc.filename or root, f"folder not readable ({exc.strerror or exc})"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error):
        for d in dirnames:
            if unreadable is not None and not d.startswith(".") and os.path.islink(os.path.join(dirpath, d)):
                unreadable.append(SkippedFile(os.path.join(dirpath, d),
                                              "a link to a folder: not followed (it could loop)"))
        hidden.extend(os.path.join(dirpath, n) for n in sorted(dirnames + filenames) if n.startswith("."))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files.extend(os.path.join(dirpath, f) for f in sorted(filenames) if not f.startswith("."))
    return files


def list_files(root: str | os.PathLike) -> list[str]:
    """The files that :func:`index_folder` would read under ``root``, in the order it reads them
    (hidden ones left out): for a quick look at one of them before the index is built."""
    return _walk(os.fspath(root))


def _floats(value, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _force_decoding(ds: pydicom.Dataset) -> None:
    """Convert every element read (sequences' items included) now, inside the guard: pydicom
    otherwise decodes each value on first use, raising wherever that happens to be."""
    for _ in ds.file_meta.iterall() if hasattr(ds, "file_meta") else ():
        pass
    for _ in ds.iterall():
        pass


def _text(ds, keyword: str, default: str = "") -> str:
    value = ds.get(keyword, default)
    return str(value) if value not in (None, "") else default


def read_header(path: str) -> tuple[InstanceHeader, dict[str, str]]:
    """One file's header, and the patient/study/series fields that group it. Everything about the
    file -- stat, open, parse, the lazy decoding of each value used -- happens inside one guard:
    raises MedviewerError naming the file when it is not usable DICOM, never anything else."""
    with guarded(path):
        with open_regular(path) as fp:
            try:
                ds = pydicom.dcmread(fp, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
            except InvalidDicomError:
                raise MedviewerError("not a DICOM file", path) from None
            _force_decoding(ds)
            header, fields = _header_from(ds, path)
            pixels_at = fp.tell()
            has_pixels, problem = check_pixel_data(
                fp, header.transfer_syntax_uid, header.rows, header.columns, header.number_of_frames,
                _int_or_none(ds.get("SamplesPerPixel")) or 1, _int_or_none(ds.get("BitsAllocated")) or 16)
            if has_pixels and not problem:  # what GDCM will parse on its own must hold together
                fp.seek(0)
                problem = structure_problem(fp.read(pixels_at), header.transfer_syntax_uid)
    if problem:
        raise MedviewerError(problem, path)
    if not has_pixels and _is_image_object(header.sop_class_uid, fields["Modality"]):
        raise MedviewerError("DICOM image without pixel data", path)
    return dataclasses.replace(header, has_pixels=has_pixels), fields


def _is_image_object(sop_class: str, modality: str) -> bool:
    """Whether an object of this class and modality must carry pixels to be of any use: a CT/MR/...
    image that has none is damaged or cut short (before Rows, it reads as a pixel-less object)."""
    if modality in _NON_IMAGE_MODALITIES:
        return False
    if sop_class.startswith(_IMAGE_CLASS_PREFIX):
        return not any(sop_class == c or sop_class.startswith(c + ".") for c in _NON_IMAGE_CLASSES)
    return modality in _IMAGE_MODALITIES


def _header_from(ds: pydicom.Dataset, path: str) -> tuple[InstanceHeader, dict[str, str]]:
    meta = getattr(ds, "file_meta", None)
    sop_class = _text(ds, "SOPClassUID") or (_text(meta, "MediaStorageSOPClassUID") if meta else "")
    if sop_class == _DICOMDIR_SOP_CLASS:
        raise MedviewerError("DICOMDIR (directory file, indexed by walking the folder)", path)
    sop_uid = _text(ds, "SOPInstanceUID") or (_text(meta, "MediaStorageSOPInstanceUID") if meta else "")
    if not sop_uid:
        raise MedviewerError("DICOM file without a SOP Instance UID", path)
    pixel_spacing = _floats(ds.get("PixelSpacing"), 2)
    orientation = _floats(ds.get("ImageOrientationPatient"), 6)
    position = _floats(ds.get("ImagePositionPatient"), 3)
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and (pixel_spacing is None or orientation is None):
        item = shared[0]
        if "PixelMeasuresSequence" in item and item.PixelMeasuresSequence:
            pixel_spacing = pixel_spacing or _floats(item.PixelMeasuresSequence[0].get("PixelSpacing"), 2)
        if "PlaneOrientationSequence" in item and item.PlaneOrientationSequence:
            orientation = orientation or _floats(
                item.PlaneOrientationSequence[0].get("ImageOrientationPatient"), 6)
    thickness = _floats([ds.get("SliceThickness")], 1)
    header = InstanceHeader(
        path=path,
        sop_class_uid=sop_class,
        sop_instance_uid=sop_uid,
        instance_number=_int_or_none(ds.get("InstanceNumber")),
        position=position,  # type: ignore[arg-type]
        orientation=orientation,
        pixel_spacing=pixel_spacing,  # type: ignore[arg-type]
        slice_thickness=thickness[0] if thickness else None,
        rows=_int_or_none(ds.get("Rows")) or 0,
        columns=_int_or_none(ds.get("Columns")) or 0,
        number_of_frames=_int_or_none(ds.get("NumberOfFrames")) or 1,
        has_pixels=False,
        acquisition_number=_int_or_none(ds.get("AcquisitionNumber")),
        transfer_syntax_uid=_text(meta, "TransferSyntaxUID") if meta else "",
    )
    fields = {k: _text(ds, k) for k in _GROUPING_TAGS}
    fields["Modality"] = fields["Modality"] or "OT"
    return header, fields


def _stack_key(h: InstanceHeader) -> tuple:
    orient = tuple(round(v, 3) for v in h.orientation) if h.orientation else None
    return (orient, h.rows, h.columns)


def plausible_orientation(orientation: tuple[float, ...] | None, tolerance: float = 1e-2) -> bool:
    """Two finite, perpendicular unit vectors (Image Orientation (Patient))."""
    if orientation is None or len(orientation) != 6 or not all(math.isfinite(v) for v in orientation):
        return False
    row, col = orientation[:3], orientation[3:]
    dot = sum(a * b for a, b in zip(row, col))
    norms = (math.sqrt(sum(a * a for a in row)), math.sqrt(sum(a * a for a in col)))
    return abs(dot) < tolerance and all(abs(n - 1) < tolerance for n in norms)


def index_folder(path: str | os.PathLike, progress: ProgressCallback | None = None,
                 cancelled: Callable[[], bool] | None = None) -> DicomIndex:
    """Walk ``path`` (a folder or one file) and group its DICOM files by patient, study, series.

    ``progress(done, total)`` is called as files are read; ``cancelled()`` returning True stops
    the walk with a MedviewerError.
    """
    root = os.fspath(path)
    if not os.path.exists(root):
        raise MedviewerError("no such file or folder", root)
    if os.path.isdir(root) and not os.access(root, os.R_OK | os.X_OK):
        raise MedviewerError("folder is not readable (permission denied)", root)
    index = DicomIndex(root=root)
    files = _walk(root, index.skipped, index.ignored)
    patients: dict[str, PatientEntry] = {}
    studies: dict[str, StudyEntry] = {}
    series: dict[str, SeriesEntry] = {}
    for n, f in enumerate(files):
        if cancelled is not None and cancelled():
            raise MedviewerError("indexing cancelled", root)
        if progress is not None and n % 50 == 0:
            progress(n, len(files))
        if f != root and f.lower().endswith(NON_DICOM_SUFFIXES):
            index.ignored.append(f)
            continue
        try:
            header, fields = read_header(f)
        except MedviewerError as exc:
            index.skipped.append(SkippedFile(f, exc.message))
            continue
        pid = fields["PatientID"]
        patient = patients.get(pid)
        if patient is None:
            patient = patients[pid] = PatientEntry(pid, fields["PatientName"])
            index.patients.append(patient)
        study_uid = fields["StudyInstanceUID"]
        study = studies.get(study_uid)
        if study is None:
            study = studies[study_uid] = StudyEntry(
                study_uid, fields["StudyDate"], fields["StudyDescription"], fields["AccessionNumber"])
            patient.studies.append(study)
        uid = fields["SeriesInstanceUID"]
        if not uid:  # anonymisers sometimes blank it: group such files by folder and description
            uid = "|".join(["no-series-uid", os.path.dirname(f), fields["SeriesNumber"],
                            fields["SeriesDescription"], fields["Modality"]])
        entry = series.get(uid)
        if entry is None:
            entry = series[uid] = SeriesEntry(
                series_instance_uid=uid,
                series_number=_int_or_none(fields["SeriesNumber"]),
                series_description=fields["SeriesDescription"],
                modality=fields["Modality"],
                frame_of_reference_uid=fields["FrameOfReferenceUID"] or None,
                patient_id=pid,
                study_instance_uid=study_uid,
            )
            study.series.append(entry)
        entry.instances.append(header)
    if progress is not None:
        progress(len(files), len(files))
    for entry in series.values():
        index.skipped.extend(_drop_duplicates(entry))
        index.skipped.extend(_drop_pixel_less(entry))
    for study in studies.values():
        study.series = _split_stacks(study.series)
        study.series.sort(key=lambda s: (s.series_number if s.series_number is not None else 1 << 30, s.key))
    _attach_damaged(index)
    return index


def _same_bytes(a: str, b: str) -> bool:
    with guarded(a), open_regular(a) as fa, open_regular(b) as fb:
        if os.fstat(fa.fileno()).st_size != os.fstat(fb.fileno()).st_size:
            return False
        while True:
            chunk = fa.read(1 << 20)
            if chunk != fb.read(1 << 20):
                return False
            if not chunk:
                return True


def _drop_duplicates(entry: SeriesEntry) -> list[SkippedFile]:
    """Byte-identical copies of a file already in the series (same SOP Instance UID): kept once,
    the copies reported as duplicates. Different files that share a UID both stay (and the series
    analysis names them)."""
    kept: dict[str, InstanceHeader] = {}
    dropped: list[SkippedFile] = []
    instances = []
    for h in entry.instances:
        first = kept.get(h.sop_instance_uid)
        same = False
        if first is not None:
            try:
                same = _same_bytes(first.path, h.path)
            except MedviewerError:
                same = False
        if same:
            dropped.append(SkippedFile(h.path, f"duplicate of {os.path.basename(first.path)} "
                                               "(identical file, same SOP Instance UID)"))
            continue
        kept.setdefault(h.sop_instance_uid, h)
        instances.append(h)
    entry.instances = instances
    return dropped


def _drop_pixel_less(entry: SeriesEntry) -> list[SkippedFile]:
    """In a series of images, an instance without pixels (a file damaged before Rows reads as a
    pixel-less object) is reported as dropped, never silently left out of the volume."""
    if entry.modality in _NON_IMAGE_MODALITIES or not any(h.has_pixels for h in entry.instances):
        return []
    dropped = [SkippedFile(h.path, "no pixel data in a series of images (damaged or cut short?)")
               for h in entry.instances if not h.has_pixels]
    entry.instances = [h for h in entry.instances if h.has_pixels]
    return dropped


def _attach_damaged(index: DicomIndex) -> None:
    """Give each image series the skipped files of its folder: when a slice is missing, the file
    that held it is most likely among them, and the message can say so."""
    by_folder: dict[str, list[SkippedFile]] = {}
    for s in index.skipped:
        if not s.reason.startswith("DICOMDIR"):
            by_folder.setdefault(os.path.dirname(s.path), []).append(s)
    for entry in index.image_series():
        folders = {os.path.dirname(h.path) for h in entry.instances}
        entry.damaged = [s for folder in sorted(folders) for s in by_folder.get(folder, [])]


def _split_stacks(entries: Iterable[SeriesEntry]) -> list[SeriesEntry]:
    """One Series Instance UID holding images of several orientations or sizes -> one entry each."""
    out: list[SeriesEntry] = []
    for entry in entries:
        if not entry.is_image:
            out.append(entry)
            continue
        groups: dict[tuple, list[InstanceHeader]] = {}
        for h in entry.instances:
            if plausible_orientation(h.orientation):
                groups.setdefault(_stack_key(h), []).append(h)
        # A slice whose orientation is missing or damaged (zeros, NaN, parallel vectors) is no
        # stack of its own: it stays with the main stack, whose analysis then names it.
        misplaced = [h for h in entry.instances if not plausible_orientation(h.orientation)]
        if misplaced:
            main = max(groups.values(), key=len) if groups else groups.setdefault(("?",), [])
            main.extend(misplaced)
        if len(groups) == 1:
            out.append(entry)
            continue
        ordered = sorted(groups.values(), key=len, reverse=True)
        for n, instances in enumerate(ordered, start=1):
            out.append(SeriesEntry(
                entry.series_instance_uid, entry.series_number,
                f"{entry.series_description} [stack {n}]".strip(), entry.modality,
                entry.frame_of_reference_uid, entry.patient_id, entry.study_instance_uid,
                instances, stack=n))
    return out
