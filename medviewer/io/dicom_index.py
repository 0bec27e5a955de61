"""Index a folder of DICOM files: patients -> studies -> series, from headers only.

Any file names, any depth, DICOMDIR optional (it is skipped, the files are found by walking).
Files that are not DICOM, truncated, or unreadable are listed in ``DicomIndex.skipped`` with the
reason; the good files still index.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Callable, Iterable

import pydicom
from pydicom.errors import InvalidDicomError

from medviewer.core.errors import MedviewerError

ProgressCallback = Callable[[int, int], None]

_HEADER_TAGS = [
    "SOPClassUID", "SOPInstanceUID", "PatientID", "PatientName", "StudyInstanceUID", "StudyDate",
    "StudyDescription", "AccessionNumber", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription",
    "Modality", "FrameOfReferenceUID", "InstanceNumber", "ImagePositionPatient",
    "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "Rows", "Columns", "NumberOfFrames",
    "BitsAllocated", "SamplesPerPixel", "ImageType", "AcquisitionNumber",
    "SharedFunctionalGroupsSequence",
]
_DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"
_UNCOMPRESSED_SYNTAXES = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
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
    ignored: list[str] = field(default_factory=list)  # files of known non-DICOM types

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


def _walk(root: str) -> list[str]:
    if os.path.isfile(root):
        return [root]
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files.extend(os.path.join(dirpath, f) for f in sorted(filenames) if not f.startswith("."))
    return files


def _floats(value, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _pixel_data_check(fp, ds, path: str) -> tuple[bool, str | None]:
    """After a header read that stopped before the pixels: are they there, and complete?"""
    start = fp.tell()
    tag = fp.read(4)
    if len(tag) < 4 or tag != _PIXEL_DATA_TAG:
        return False, None
    syntax = str(getattr(ds.file_meta, "TransferSyntaxUID", ""))
    if syntax not in _UNCOMPRESSED_SYNTAXES:
        return True, None  # encapsulated: its fragments are checked when decoded
    if syntax == "1.2.840.10008.1.2":  # implicit VR: tag, 4-byte length
        (length,) = struct.unpack("<I", fp.read(4))
        header = 8
    else:  # explicit VR OB/OW: tag, VR, 2 reserved, 4-byte length
        fp.read(4)
        (length,) = struct.unpack("<I", fp.read(4))
        header = 12
    if length == 0xFFFFFFFF:
        return True, None
    available = os.fstat(fp.fileno()).st_size - start - header
    if available < length:
        return True, f"truncated: pixel data holds {available} of {length} bytes"
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    frames = _int_or_none(ds.get("NumberOfFrames")) or 1
    bits = int(ds.get("BitsAllocated", 16) or 16)
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    expected = rows * cols * frames * spp * bits // 8
    if length < expected:
        return True, f"pixel data too short: {length} bytes for {rows} x {cols} x {frames} frames"
    return True, None


def read_header(path: str) -> tuple[InstanceHeader, pydicom.Dataset]:
    """One file's header (and the dataset it was read from). Raises MedviewerError naming the file when it is not usable DICOM."""
    try:
        with open(path, "rb") as fp:
            try:
                ds = pydicom.dcmread(fp, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
            except InvalidDicomError:
                raise MedviewerError("not a DICOM file", path) from None
            has_pixels, problem = _pixel_data_check(fp, ds, path)
    except MedviewerError:
        raise
    except PermissionError:
        raise MedviewerError("permission denied", path) from None
    except OSError as exc:
        raise MedviewerError(f"unreadable ({exc.strerror or exc})", path) from None
    except Exception as exc:  # pydicom raises many kinds on damaged headers
        raise MedviewerError(f"damaged DICOM header ({type(exc).__name__}: {exc})", path) from None
    if problem:
        raise MedviewerError(problem, path)
    sop_class = str(ds.get("SOPClassUID", "") or getattr(ds.file_meta, "MediaStorageSOPClassUID", "") or "")
    if sop_class == _DICOMDIR_SOP_CLASS:
        raise MedviewerError("DICOMDIR (directory file, indexed by walking the folder)", path)
    sop_uid = str(ds.get("SOPInstanceUID", "") or "") or str(
        getattr(ds.file_meta, "MediaStorageSOPInstanceUID", "") or "")
    if not sop_uid:
        raise MedviewerError("DICOM file without a SOP Instance UID", path)
    modality = str(ds.get("Modality", "OT") or "OT")
    pixel_spacing = _floats(ds.get("PixelSpacing"), 2)
    orientation = _floats(ds.get("ImageOrientationPatient"), 6)
    position = _floats(ds.get("ImagePositionPatient"), 3)
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and (pixel_spacing is None or orientation is None):
        item = shared[0]
        if "PixelMeasuresSequence" in item:
            pixel_spacing = pixel_spacing or _floats(item.PixelMeasuresSequence[0].get("PixelSpacing"), 2)
        if "PlaneOrientationSequence" in item:
            orientation = orientation or _floats(
                item.PlaneOrientationSequence[0].get("ImageOrientationPatient"), 6)
    if not has_pixels and modality not in _NON_IMAGE_MODALITIES and sop_class.startswith(
            "1.2.840.10008.5.1.4.1.1.") and ds.get("Rows"):
        raise MedviewerError("DICOM image without pixel data", path)
    return InstanceHeader(
        path=path,
        sop_class_uid=sop_class,
        sop_instance_uid=sop_uid,
        instance_number=_int_or_none(ds.get("InstanceNumber")),
        position=position,  # type: ignore[arg-type]
        orientation=orientation,
        pixel_spacing=pixel_spacing,  # type: ignore[arg-type]
        slice_thickness=_floats([ds.get("SliceThickness")], 1)[0] if _floats([ds.get("SliceThickness")], 1) else None,
        rows=int(ds.get("Rows", 0) or 0),
        columns=int(ds.get("Columns", 0) or 0),
        number_of_frames=_int_or_none(ds.get("NumberOfFrames")) or 1,
        has_pixels=has_pixels,
        acquisition_number=_int_or_none(ds.get("AcquisitionNumber")),
        transfer_syntax_uid=str(getattr(ds.file_meta, "TransferSyntaxUID", "")),
    ), ds


def _stack_key(h: InstanceHeader) -> tuple:
    orient = tuple(round(v, 3) for v in h.orientation) if h.orientation else None
    return (orient, h.rows, h.columns)


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
    files = _walk(root)
    index = DicomIndex(root=root)
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
            header, ds = read_header(f)
        except MedviewerError as exc:
            index.skipped.append(SkippedFile(f, exc.message))
            continue
        pid = str(ds.get("PatientID", "") or "")
        patient = patients.get(pid)
        if patient is None:
            patient = patients[pid] = PatientEntry(pid, str(ds.get("PatientName", "") or ""))
            index.patients.append(patient)
        study_uid = str(ds.get("StudyInstanceUID", "") or "")
        study = studies.get(study_uid)
        if study is None:
            study = studies[study_uid] = StudyEntry(
                study_uid, str(ds.get("StudyDate", "") or ""), str(ds.get("StudyDescription", "") or ""),
                str(ds.get("AccessionNumber", "") or ""))
            patient.studies.append(study)
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        if not uid:  # anonymisers sometimes blank it: group such files by folder and description
            uid = "|".join(["no-series-uid", os.path.dirname(f), str(ds.get("SeriesNumber", "")),
                            str(ds.get("SeriesDescription", "")), str(ds.get("Modality", ""))])
        entry = series.get(uid)
        if entry is None:
            entry = series[uid] = SeriesEntry(
                series_instance_uid=uid,
                series_number=_int_or_none(ds.get("SeriesNumber")),
                series_description=str(ds.get("SeriesDescription", "") or ""),
                modality=str(ds.get("Modality", "OT") or "OT"),
                frame_of_reference_uid=str(ds.get("FrameOfReferenceUID")) if ds.get("FrameOfReferenceUID") else None,
                patient_id=pid,
                study_instance_uid=study_uid,
            )
            study.series.append(entry)
        entry.instances.append(header)
    if progress is not None:
        progress(len(files), len(files))
    for study in studies.values():
        study.series = _split_stacks(study.series)
        study.series.sort(key=lambda s: (s.series_number if s.series_number is not None else 1 << 30, s.key))
    return index


def _split_stacks(entries: Iterable[SeriesEntry]) -> list[SeriesEntry]:
    """One Series Instance UID holding images of several orientations or sizes -> one entry each."""
    out: list[SeriesEntry] = []
    for entry in entries:
        if not entry.is_image:
            out.append(entry)
            continue
        groups: dict[tuple, list[InstanceHeader]] = {}
        for h in entry.instances:
            groups.setdefault(_stack_key(h), []).append(h)
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
