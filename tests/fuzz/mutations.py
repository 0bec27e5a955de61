"""Seeded, reproducible mutations of real series: the cases of the loader fuzz.

``prepare_sources(workdir)`` copies a few slices of three real series from the shared data (a
small sts case, A0001's soft-kernel series, the JPEG 2000 series of compressed-ct) and makes, on
the sts slices' grid, a DICOM SEG, a measurements SR, the case's own RTSTRUCT and NIfTI/NRRD/MHA
files. ``make_case(sources, seed, number, workdir)`` then builds case ``number`` of run ``seed``:
a folder of DICOM files (or one image, SEG, RTSTRUCT or SR file) with one to three damages drawn
from the families below. The same (seed, number) always gives the same case, on any machine.

Imported by tests/io/test_fuzz.py (a fast subset) and benchmarks/fuzz_loader.py (the full run).
"""

from __future__ import annotations

import glob
import gzip
import io
import os
import random
import shutil
import socket
import struct
from dataclasses import dataclass, field

import numpy as np
import pydicom
from pydicom.config import IGNORE, settings

DATA = os.environ.get("MEDVIEWER_DATA") or os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")
STS_CASE = "STS_019"  # the smallest sts case (47 slices)
SLICES = {"sts": 10, "a0001": 5, "j2k": 6}


@dataclass
class Sources:
    """Clean copies that every case starts from (never changed by a case)."""

    root: str
    series: dict[str, list[str]] = field(default_factory=dict)  # name -> slice files
    files: dict[str, str] = field(default_factory=dict)  # seg, sr, rtstruct, nii, niigz, nrrd, nhdr, mha


@dataclass
class Case:
    seed: int
    number: int
    kind: str  # dicom | image | seg | rtstruct | sr
    target: str  # the folder (dicom) or file given to the reader
    description: str
    series_folder: str | None = None  # for seg/rtstruct/sr: the clean series they lie on

    @property
    def name(self) -> str:
        return f"seed {self.seed} case {self.number}"


def data_available() -> bool:
    return all(os.path.isdir(p) for p in _source_folders().values())


def _source_folders() -> dict[str, str]:
    return {"sts": os.path.join(DATA, "sts", STS_CASE, "image"),
            "a0001": os.path.join(DATA, "lung-pet-ct-dx", "A0001", "series-2-5mm-L"),
            "j2k": os.path.join(DATA, "compressed-ct", "example_ct_dicom")}


def _slices_in_order(folder: str) -> list[str]:
    files = [f for f in glob.glob(os.path.join(folder, "*")) if os.path.isfile(f)]
    return sorted(files, key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]))


def prepare_sources(workdir: str) -> Sources:
    """The clean copies (made once per run; a few MB)."""
    root = os.path.join(workdir, "sources")
    if os.path.isdir(root):
        shutil.rmtree(root)
    sources = Sources(root)
    for name, folder in _source_folders().items():
        files = _slices_in_order(folder)
        start = max(0, len(files) // 2 - SLICES[name] // 2)
        out = os.path.join(root, name)
        os.makedirs(out)
        sources.series[name] = []
        for k, f in enumerate(files[start:start + SLICES[name]]):
            target = os.path.join(out, f"IM{k + 1:04d}.dcm")
            shutil.copy(f, target)
            sources.series[name].append(target)
    _derived_files(sources)
    return sources


def _derived_files(sources: Sources) -> None:
    """SEG, SR, RTSTRUCT and image files on the sts slices' grid, written by medviewer itself."""
    from medviewer.core.document import Ruler
    from medviewer.core.segments import Segment
    from medviewer.export.measurements import write_measurements
    from medviewer.export.rtstruct import write_rtstruct
    from medviewer.export.seg import write_seg
    from medviewer.io import load_volume, write_image

    volume = load_volume(os.path.join(sources.root, "sts"))
    labels = np.zeros(volume.shape, dtype=np.uint8)
    z, y, x = volume.shape
    labels[2:z - 2, y // 3:y // 2, x // 3:x // 2] = 1
    label_volume = volume.with_array(labels)
    segment = Segment(1, "lesion")
    out = os.path.join(sources.root, "objects")
    os.makedirs(out)
    files = sources.files
    files["seg"] = write_seg(volume, label_volume, [segment], os.path.join(out, "seg.dcm"))
    files["rtstruct"] = write_rtstruct(volume, label_volume, [segment], os.path.join(out, "rtstruct.dcm"))
    middle = volume.voxel_to_patient((z // 2, y // 2, x // 2))
    rulers = [Ruler(tuple(middle), tuple(middle + [20.0, 5.0, 0.0]), label="target lesion 1")]
    files["sr"] = write_measurements(volume, rulers, os.path.join(out, "sr.dcm"))
    small = volume.crop((0, 0, 0), (z, 48, 40))
    for key, name in (("nii", "image.nii"), ("niigz", "image.nii.gz"), ("nrrd", "image.nrrd"),
                      ("nhdr", "image.nhdr"), ("mha", "image.mha"), ("mhd", "image.mhd")):
        files[key] = write_image(small, os.path.join(out, name), compress=key not in ("nii", "nhdr", "mhd"))


# ---- the case ----------------------------------------------------------------------------------

def make_case(sources: Sources, seed: int, number: int, workdir: str) -> Case:
    """Case ``number`` of run ``seed``: built under ``workdir/case-NNNNN`` (replaced if there)."""
    rng = random.Random(f"{seed}:{number}")
    folder = os.path.join(workdir, f"case-{number:05d}")
    if os.path.lexists(folder):
        _remove(folder)
    os.makedirs(folder)
    kind = rng.choices(["dicom", "image", "seg", "rtstruct", "sr"], weights=[70, 12, 6, 6, 6])[0]
    if kind == "dicom":
        return _dicom_case(sources, rng, seed, number, folder)
    return _object_case(sources, rng, seed, number, folder, kind)


def _remove(path: str) -> None:
    for dirpath, dirnames, filenames in os.walk(path):
        for d in dirnames:
            try:
                os.chmod(os.path.join(dirpath, d), 0o755)
            except OSError:
                pass
    shutil.rmtree(path, ignore_errors=True)
    if os.path.lexists(path):
        os.unlink(path)


def _dicom_case(sources: Sources, rng: random.Random, seed: int, number: int, folder: str) -> Case:
    name = rng.choices(["sts", "a0001", "j2k"], weights=[5, 2, 3])[0]
    files = []
    for f in sources.series[name]:
        target = os.path.join(folder, os.path.basename(f))
        shutil.copy(f, target)
        files.append(target)
    steps = []
    for _ in range(rng.choices([1, 2, 3], weights=[6, 3, 1])[0]):
        steps.append(_apply(rng.choice(DICOM_FAMILIES), rng, folder, files))
    return Case(seed, number, "dicom", folder, f"{name}: " + "; ".join(steps))


def _object_case(sources: Sources, rng: random.Random, seed: int, number: int, folder: str, kind: str) -> Case:
    if kind == "image":
        key = rng.choice(["nii", "niigz", "nrrd", "nhdr", "mha", "mhd"])
        source = sources.files[key]
        target = os.path.join(folder, os.path.basename(source))
        shutil.copy(source, target)
        for extra in (".raw", ".zraw"):  # detached data of .nhdr / .mhd
            data = os.path.splitext(source)[0] + extra
            if os.path.exists(data):
                shutil.copy(data, os.path.join(folder, os.path.basename(data)))
        step = rng.choice(IMAGE_FAMILIES)(rng, target)
        return Case(seed, number, "image", target, f"{key}: {step}")
    source = sources.files[kind]
    target = os.path.join(folder, os.path.basename(source))
    shutil.copy(source, target)
    steps = [_apply(rng.choice(OBJECT_FAMILIES), rng, target) for _ in range(rng.choice([1, 1, 2]))]
    return Case(seed, number, kind, target, f"{kind}: " + "; ".join(steps),
                series_folder=os.path.join(sources.root, "sts"))


def _apply(family, rng, *where) -> str:
    """Run one damage; one that needs pydicom to parse a file an earlier damage broke gives way
    to byte flips (the same ones for the same seed)."""
    try:
        return family(rng, *where)
    except Exception as exc:  # noqa: BLE001
        files = where[1] if len(where) > 1 else [where[0]]
        return f"{family.__name__} impossible ({type(exc).__name__}): " + flip_bytes(rng, None, files)


# ---- byte-level helpers -------------------------------------------------------------------------

def _read(path: str) -> bytearray:
    with open(path, "rb") as f:
        return bytearray(f.read())


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _elements(data: bytes) -> list[tuple[int, int, int, int, int]]:
    """Top-level elements after the file meta: (offset, tag, vr_offset or -1, length offset,
    length size). A tiny walker that stops at the first thing it cannot follow."""
    if data[128:132] != b"DICM":
        return []
    offset = 132
    out = []
    explicit_dataset = _is_explicit(data)
    while offset + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, offset)
        explicit = group == 2 or explicit_dataset
        vr = bytes(data[offset + 4:offset + 6])
        tag = (group << 16) | element
        if explicit and vr.isalpha() and vr.isupper():
            if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"OD", b"OL", b"OV", b"UC", b"UR", b"SV", b"UV"):
                length_at, size = offset + 8, 4
            else:
                length_at, size = offset + 6, 2
            vr_at = offset + 4
        else:
            length_at, size, vr_at = offset + 4, 4, -1
        if length_at + size > len(data):
            break
        length = struct.unpack_from("<I" if size == 4 else "<H", data, length_at)[0]
        out.append((offset, tag, vr_at, length_at, size))
        if length == 0xFFFFFFFF:  # a sequence or encapsulated data of undefined length: stop here
            break
        offset = length_at + size + length
    return out


def _is_explicit(data: bytes) -> bool:
    at = data.find(b"\x02\x00\x10\x00UI")
    if at < 0:
        return True
    length = struct.unpack_from("<H", data, at + 6)[0]
    return data[at + 8:at + 8 + length].rstrip(b"\x00 ") != b"1.2.840.10008.1.2"


def _dataset_elements(data: bytes) -> list[tuple[int, int, int, int, int]]:
    return [e for e in _elements(data) if e[1] >> 16 != 2]


def _edit(path: str, **values) -> None:
    """Set header values with pydicom, validation off (so that nonsense can be written)."""
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            tag = pydicom.datadict.tag_for_keyword(keyword)
            vr = pydicom.datadict.dictionary_VR(tag)
            ds[tag] = pydicom.DataElement(tag, vr, value)
    _save(ds, path)


def _save(ds, path: str) -> None:
    """Write ``ds`` over ``path`` only if pydicom can write it whole."""
    buffer = io.BytesIO()
    ds.save_as(buffer)
    _write(path, buffer.getvalue())


settings.reading_validation_mode = IGNORE
settings.writing_validation_mode = IGNORE


# ---- DICOM families: each damages the folder's files and returns what it did --------------------

def truncate(rng, folder, files):
    f = rng.choice(files)
    data = _read(f)
    where = rng.choice(["700", "random", "before Rows", "in pixels", "header"])
    if where == "700":
        cut = 700
    elif where == "before Rows":
        at = data.find(b"\x28\x00\x10\x00")
        cut = max(at - rng.randint(0, 40), 132) if at > 0 else len(data) // 3
    elif where == "in pixels":
        at = data.rfind(b"\xe0\x7f\x10\x00")
        cut = rng.randint(at + 1, len(data) - 1) if at > 0 else len(data) - 10
    elif where == "header":
        cut = rng.randint(0, 1200)
    else:
        cut = rng.randint(0, len(data) - 1)
    _write(f, data[:cut])
    return f"truncated {os.path.basename(f)} at {cut} bytes ({where})"


def flip_bytes(rng, folder, files):
    f = rng.choice(files)
    data = _read(f)
    header = rng.random() < 0.7
    end = min(len(data), 3000) if header else len(data)
    if end <= 128:  # cut short by an earlier step: there is only the preamble to damage
        data += bytes(129 - end)
        end = len(data)
    n = rng.randint(1, 24)
    for _ in range(n):
        at = rng.randrange(128, end)
        data[at] ^= 1 << rng.randrange(8) if rng.random() < 0.5 else rng.randrange(1, 256)
    _write(f, data)
    return f"{n} byte(s) flipped in {os.path.basename(f)} ({'header' if header else 'anywhere'})"


_VRS = [b"ZZ", b"\x00\x00", b"OB", b"SQ", b"UN", b"US", b"FD", b"DS", b"xx", b"UT", b"AT", b"SS", b"IS"]
_TAGS = [0x00280010, 0x00280011, 0x00280030, 0x00200032, 0x00200037, 0x00080018, 0x0020000E,
         0x00280100, 0x00281053, 0x00180050, 0x7FE00010, 0x00080016, 0x00280002]


def wrong_vr(rng, folder, files):
    f = rng.choice(files)
    data = _read(f)
    elements = _dataset_elements(data)
    if not elements:
        return truncate(rng, folder, files)
    offset, tag, vr_at, _, _ = rng.choice(elements)
    if vr_at >= 0:
        vr = rng.choice(_VRS)
        data[vr_at:vr_at + 2] = vr
        what = f"VR of ({tag >> 16:04X},{tag & 0xFFFF:04X}) set to {vr!r}"
    else:  # implicit VR: the dictionary gives the VR, so give the value another tag's
        new = rng.choice(_TAGS)
        struct.pack_into("<HH", data, offset, new >> 16, new & 0xFFFF)
        what = f"({tag >> 16:04X},{tag & 0xFFFF:04X}) retagged ({new >> 16:04X},{new & 0xFFFF:04X})"
    _write(f, data)
    return f"{what} in {os.path.basename(f)}"


def wrong_length(rng, folder, files):
    f = rng.choice(files)
    data = _read(f)
    elements = _dataset_elements(data)
    if not elements:
        return flip_bytes(rng, folder, files)
    offset, tag, _, length_at, size = rng.choice(elements)
    old = struct.unpack_from("<I" if size == 4 else "<H", data, length_at)[0]
    top = 0xFFFFFFFF if size == 4 else 0xFFFF
    new = min(top, rng.choice([0, 1, old + 1, max(old - 1, 0), old * 2, top, top // 2, len(data), 3]))
    struct.pack_into("<I" if size == 4 else "<H", data, length_at, new)
    _write(f, data)
    return f"length of ({tag >> 16:04X},{tag & 0xFFFF:04X}) {old} -> {new} in {os.path.basename(f)}"


_DELETABLE = ["ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns",
              "BitsAllocated", "BitsStored", "SOPInstanceUID", "SeriesInstanceUID", "PixelData",
              "SOPClassUID", "Modality", "RescaleSlope", "RescaleIntercept", "PhotometricInterpretation",
              "SamplesPerPixel", "PixelRepresentation", "StudyInstanceUID", "FrameOfReferenceUID",
              "SliceThickness", "HighBit"]


def delete_tag(rng, folder, files):
    keyword = rng.choice(_DELETABLE)
    chosen = files if rng.random() < 0.25 else [rng.choice(files)]
    for f in chosen:
        _edit(f, **{keyword: None})
    return f"{keyword} deleted from {len(chosen)} file(s)"


_ABSURD = {
    "Rows": [0, 1, 65535, 7], "Columns": [0, 3, 65535], "BitsAllocated": [0, 7, 64, 1, 32],
    "BitsStored": [0, 40], "HighBit": [63], "SamplesPerPixel": [0, 3, 9],
    "NumberOfFrames": ["1000000000", "0", "-5", "2", "x"],
    "PixelSpacing": [["0", "0"], ["nan", "nan"], ["inf", "1"], ["-1", "-1"], ["1e308", "1e308"], ["1"]],
    "ImageOrientationPatient": [["0"] * 6, ["nan"] * 6, ["1", "0", "0", "1", "0", "0"],
                                ["2", "0", "0", "0", "2", "0"], ["inf", "0", "0", "0", "1", "0"], ["1", "0"]],
    "ImagePositionPatient": [["nan", "0", "0"], ["inf", "-inf", "0"], ["1e308", "0", "0"], ["0", "0"]],
    "SliceThickness": ["nan", "0", "-3", "inf"], "RescaleSlope": ["nan", "0", "inf", "1e300"],
    "RescaleIntercept": ["nan", "-1e300"], "InstanceNumber": ["99999999999999999999", "-1", "nan"],
    "PixelRepresentation": [7], "WindowCenter": ["nan", "abc"], "SeriesNumber": ["1e400", "x"],
    "PhotometricInterpretation": ["RGB", "PALETTE COLOR", "", "YBR_FULL"],
    "SpecificCharacterSet": ["ISO_IR 999", "ISO 2022 IR 87\\ISO 2022 IR 999"],
}


def absurd_value(rng, folder, files):
    keyword = rng.choice(sorted(_ABSURD))
    value = rng.choice(_ABSURD[keyword])
    if isinstance(value, list):
        value = "\\".join(value)
    chosen = files if rng.random() < 0.3 else [rng.choice(files)]
    for f in chosen:
        _edit(f, **{keyword: value})
    return f"{keyword} = {value!r} in {len(chosen)} file(s)"


_SYNTAXES = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99",
             "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.70",
             "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.80", "1.2.3.4.5.6.7", ""]


def wrong_transfer_syntax(rng, folder, files):
    syntax = rng.choice(_SYNTAXES)
    chosen = files if rng.random() < 0.3 else [rng.choice(files)]
    for f in chosen:
        _set_syntax(f, syntax)
    return f"transfer syntax {syntax or '(empty)'} in {len(chosen)} file(s)"


def _set_syntax(path: str, syntax: str) -> None:
    data = _read(path)
    at = data.find(b"\x02\x00\x10\x00UI")
    if at < 0:
        return
    old = struct.unpack_from("<H", data, at + 6)[0]
    value = syntax.encode() + (b"\x00" if len(syntax) % 2 else b"")
    data[at + 6:at + 8 + old] = struct.pack("<H", len(value)) + value
    if data[132:136] == b"\x02\x00\x00\x00":
        group = struct.unpack_from("<I", data, 140)[0]
        struct.pack_into("<I", data, 140, group + len(value) - old)
    _write(path, data)


def pixel_data_size(rng, folder, files):
    f = rng.choice(files)
    data = _read(f)
    at = data.rfind(b"\xe0\x7f\x10\x00")
    if at < 0:
        return flip_bytes(rng, folder, files)
    explicit = data[at + 4:at + 6] in (b"OB", b"OW")
    length_at = at + 8 if explicit else at + 4
    length = struct.unpack_from("<I", data, length_at)[0]
    value_at = length_at + 4
    if length == 0xFFFFFFFF:
        return _damage_fragments(rng, f, data, value_at)
    k = rng.choice([2, 100, 1000, length // 2, length - 2])
    if rng.random() < 0.5:
        del data[value_at + length - k:value_at + length]
        struct.pack_into("<I", data, length_at, length - k)
        what = f"{k} bytes short"
    else:
        data[value_at + length:value_at + length] = bytes(rng.randrange(256) for _ in range(min(k, 4096)))
        struct.pack_into("<I", data, length_at, length + min(k, 4096))
        what = f"{min(k, 4096)} bytes long"
    _write(f, data)
    return f"pixel data {what} in {os.path.basename(f)}"


def _damage_fragments(rng, path, data, at) -> str:
    """Encapsulated: cut, lengthen or scribble on a fragment (lengths kept consistent or not)."""
    items = []
    offset = at
    while offset + 8 <= len(data):
        group, element, length = struct.unpack_from("<HHI", data, offset)
        if (group, element) != (0xFFFE, 0xE000):
            break
        items.append((offset, length))
        offset += 8 + length
    if len(items) < 2:
        _write(path, data[:len(data) - 20])
        return f"encapsulated pixel data cut in {os.path.basename(path)}"
    offset, length = items[1]
    how = rng.choice(["cut consistent", "length too big", "scribble codestream", "SIZ damaged",
                      "drop delimiter", "zero fragment"])
    if how == "cut consistent":
        keep = rng.randint(0, length)
        del data[offset + 8 + keep:offset + 8 + length]
        struct.pack_into("<I", data, offset + 4, keep)
    elif how == "length too big":
        struct.pack_into("<I", data, offset + 4, rng.choice([length * 4, 0x7FFFFFF0, length + 2]))
    elif how == "scribble codestream":
        for _ in range(rng.randint(1, 50)):
            k = offset + 8 + rng.randrange(length)
            data[k] = rng.randrange(256)
    elif how == "SIZ damaged":
        for k in range(offset + 8 + 8, offset + 8 + 8 + rng.choice([4, 8, 16, 32])):
            data[k] = rng.randrange(256)
    elif how == "drop delimiter":
        data = data[:len(data) - 8]
    else:
        data[offset + 8:offset + 8 + length] = bytes(length)
    _write(path, data)
    return f"JPEG 2000 fragment: {how} in {os.path.basename(path)}"


def duplicate(rng, folder, files):
    f = rng.choice(files)
    how = rng.choice(["exact copy", "copy in subfolder", "new UID, same position", "same UID, other bytes"])
    if how == "exact copy":
        target = os.path.join(folder, "copy_of_" + os.path.basename(f))
        shutil.copy(f, target)
    elif how == "copy in subfolder":
        os.makedirs(os.path.join(folder, "again"), exist_ok=True)
        target = os.path.join(folder, "again", os.path.basename(f))
        shutil.copy(f, target)
    else:
        target = os.path.join(folder, "twin_" + os.path.basename(f))
        shutil.copy(f, target)
        try:
            if how.startswith("new UID"):
                _edit(target, SOPInstanceUID=pydicom.uid.generate_uid(entropy_srcs=[target]))
            else:
                _edit(target, InstitutionName="another copy")
        except Exception:  # noqa: BLE001  (the file was damaged by an earlier step: keep the copy)
            pass
    return f"{how} of {os.path.basename(f)}"


_HOSTILE = ["\x1b[31mred\x1b[0m", "line one\nline two\r\n", "%s%n{0}{}", "A" * 70000, "../../../etc/passwd",
            "\x00\x00\x00", "Ünïcødé ☃ \u202eevil", "\ud800", "=cmd|' /C calc'!A0", "NUL\x00inside"]


def hostile_strings(rng, folder, files):
    keyword = rng.choice(["PatientName", "PatientID", "SeriesDescription", "StudyDescription",
                          "InstitutionName", "SeriesInstanceUID", "SOPInstanceUID", "Modality",
                          "AccessionNumber", "StudyDate"])
    value = rng.choice(_HOSTILE)
    chosen = files if rng.random() < 0.5 else [rng.choice(files)]
    for f in chosen:
        ds = pydicom.dcmread(f)
        tag = pydicom.datadict.tag_for_keyword(keyword)
        raw = value.encode("utf-8", "surrogateescape") if rng.random() < 0.5 else value.encode("latin-1", "replace")
        ds[tag] = pydicom.DataElement(tag, pydicom.datadict.dictionary_VR(tag), raw)
        if rng.random() < 0.3:
            ds.SpecificCharacterSet = rng.choice(["ISO_IR 192", "ISO_IR 100", "GB18030", "bogus"])
        _save(ds, f)
    return f"{keyword} = {value[:20]!r} in {len(chosen)} file(s)"


def dicomdir_nowhere(rng, folder, files):
    from pydicom.fileset import FileSet

    how = rng.choice(["files removed", "only the DICOMDIR", "damaged DICOMDIR"])
    fs = FileSet()
    for f in files:
        try:
            fs.add(f)
        except Exception:  # noqa: BLE001  (a file damaged by an earlier step)
            pass
    media = os.path.join(folder, "media")
    try:
        fs.write(media)
    except Exception:  # noqa: BLE001
        _write(os.path.join(folder, "DICOMDIR"), _read(files[0])[:400])
        return "a DICOMDIR that pydicom could not write: a stub"
    written = sorted(p for p in glob.glob(os.path.join(media, "**", "*"), recursive=True)
                     if os.path.isfile(p) and os.path.basename(p) != "DICOMDIR")
    if how == "files removed":
        for p in rng.sample(written, k=max(1, len(written) // 2)):
            os.unlink(p)
    elif how == "only the DICOMDIR":
        for p in written:
            os.unlink(p)
    else:
        d = os.path.join(media, "DICOMDIR")
        data = _read(d)
        for _ in range(20):
            k = rng.randrange(132, len(data))
            data[k] = rng.randrange(256)
        _write(d, data)
    return f"DICOMDIR: {how}"


def special_file(rng, folder, files):
    how = rng.choice(["fifo", "symlink loop", "two-link loop", "folder named .dcm", "unreadable",
                      "socket", "link to /dev/zero", "link to /dev/null", "dangling link", "empty file",
                      "folder link loop", "garbage", "hostile file name", "hidden file"])
    here = lambda name: os.path.join(folder, name)  # noqa: E731
    if how == "fifo":
        os.mkfifo(here("IM_FIFO.dcm"))
    elif how == "symlink loop":
        os.symlink("loop.dcm", here("loop.dcm"))
    elif how == "two-link loop":
        os.symlink("b.dcm", here("a.dcm"))
        os.symlink("a.dcm", here("b.dcm"))
    elif how == "folder named .dcm":
        os.makedirs(here("IM9999.dcm"))
        if rng.random() < 0.5:
            shutil.copy(files[0], os.path.join(here("IM9999.dcm"), "inner.dcm"))
    elif how == "unreadable":
        os.chmod(rng.choice(files), 0)
    elif how == "socket":
        s = socket.socket(socket.AF_UNIX)
        try:
            s.bind(here("sock.dcm"))
        except OSError:  # path too long for a socket: a FIFO stands in
            os.mkfifo(here("sock.dcm"))
        finally:
            s.close()
    elif how == "link to /dev/zero":
        os.symlink("/dev/zero", here("zero.dcm"))
    elif how == "link to /dev/null":
        os.symlink("/dev/null", here("null.dcm"))
    elif how == "dangling link":
        os.symlink("nowhere.dcm", here("dangling.dcm"))
    elif how == "empty file":
        _write(here("empty.dcm"), b"")
    elif how == "folder link loop":
        os.symlink(".", here("again"))
    elif how == "hidden file":
        shutil.copy(rng.choice(files), here(rng.choice([".hidden.dcm", "._IM0001.dcm"])))
    elif how == "hostile file name":
        f = rng.choice(files)
        name = rng.choice(["IM\n0001.dcm", "\x1b[2Jclear.dcm", "\u202eevil.dcm", "tab\there.dcm", " .dcm"])
        if rng.random() < 0.5:  # the damaged copy, so that the name reaches a message
            data = _read(f)
            _write(here(name), data[:len(data) // 2])
        else:
            os.rename(f, here(name))
            files[files.index(f)] = here(name)
    else:
        _write(here("garbage.dcm"), bytes(rng.randrange(256) for _ in range(rng.choice([10, 132, 2000]))))
    return f"special file: {how}"


DICOM_FAMILIES = [truncate, truncate, flip_bytes, flip_bytes, wrong_vr, wrong_length, wrong_length,
                  delete_tag, absurd_value, absurd_value, absurd_value, wrong_transfer_syntax,
                  pixel_data_size, pixel_data_size, duplicate, hostile_strings, dicomdir_nowhere,
                  special_file, special_file]


# ---- image files (NIfTI, NRRD, MetaImage) --------------------------------------------------------

def _is_text_header(path: str) -> bool:
    return path.endswith((".nrrd", ".nhdr", ".mha", ".mhd"))


def image_truncate(rng, path):
    data = _read(path)
    cut = rng.choice([0, 10, 100, 347, 352, len(data) // 2, len(data) - 1, rng.randrange(max(len(data), 1))])
    _write(path, data[:cut])
    return f"truncated at {cut} bytes"


def image_flip(rng, path):
    data = _read(_unzipped(path))
    n = rng.randint(1, 16)
    end = min(len(data), 400)
    for _ in range(n):
        data[rng.randrange(end)] = rng.randrange(256)
    _rewrite(path, data)
    return f"{n} header byte(s) changed"


_NIFTI_FIELDS = {  # offset, format, absurd values
    "dim": (40, "<8h", [(3, 30000, 30000, 30000, 1, 1, 1, 1), (0, 0, 0, 0, 0, 0, 0, 0), (3, -1, 5, 5, 1, 1, 1, 1),
                        (7, 2, 2, 2, 2, 2, 2, 2), (3, 32767, 32767, 1, 1, 1, 1, 1)]),
    "datatype": (70, "<h", [(0,), (1,), (2048,), (-1,), (32,)]),
    "bitpix": (72, "<h", [(0,), (7,), (128,)]),
    "pixdim": (76, "<8f", [(1, float("nan"), 1, 1, 1, 1, 1, 1), (1, 0, 0, 0, 0, 0, 0, 0),
                           (1, float("inf"), -1, 1e38, 0, 0, 0, 0)]),
    "vox_offset": (108, "<f", [(1e9,), (float("nan"),), (-352,), (3.5,)]),
    "scl_slope": (112, "<f", [(float("nan"),), (float("inf"),)]),
    "qform_code": (252, "<h", [(1,), (99,)]),
    "sform_code": (254, "<h", [(1,), (-7,)]),
    "quatern": (256, "<6f", [(float("nan"),) * 6, (1e38, 1e38, 1e38, 0, 0, 0)]),
    "srow": (280, "<12f", [(0.0,) * 12, (float("nan"),) * 12]),
}
_TEXT_FIELDS = {
    "sizes": ["sizes: 100000 100000 100000", "sizes: 0 0 0", "sizes: -1 5 5", "sizes: 4 4"],
    "spacings": ["spacings: nan nan nan", "spacings: 0 0 0", "space directions: (0,0,0) (0,0,0) (0,0,0)",
                 "space directions: (nan,0,0) (0,1,0) (0,0,1)", "space directions: (1,0,0) (1,0,0) (0,0,1)"],
    "type": ["type: quaternion", "type: ", "type: double double"],
    "encoding": ["encoding: bzip2", "encoding: gzip", "encoding: none", "encoding: ???"],
    "dimension": ["dimension: 9", "dimension: 0", "dimension: -3"],
    "data file": ["data file: /dev/zero", "data file: nowhere.raw", "data file: .", "data file: LIST"],
    "DimSize": ["DimSize = 100000 100000 100000", "DimSize = 0 0 0", "DimSize = 4"],
    "ElementSpacing": ["ElementSpacing = nan nan nan", "ElementSpacing = 0 0 0", "ElementSpacing = -1 1 1"],
    "TransformMatrix": ["TransformMatrix = 0 0 0 0 0 0 0 0 0", "TransformMatrix = nan 0 0 0 1 0 0 0 1"],
    "ElementDataFile": ["ElementDataFile = /dev/zero", "ElementDataFile = nowhere.raw", "ElementDataFile = ."],
    "ElementType": ["ElementType = MET_BOGUS", "ElementType = MET_DOUBLE"],
}


def image_field(rng, path):
    data = _read(_unzipped(path))
    if not _is_text_header(path):
        name = rng.choice(sorted(_NIFTI_FIELDS))
        offset, fmt, values = _NIFTI_FIELDS[name]
        value = rng.choice(values)
        struct.pack_into(fmt, data, offset, *value)
        _rewrite(path, data)
        return f"NIfTI {name} = {value}"
    end = data.find(b"\n\n") if path.endswith((".nrrd", ".nhdr")) else data.find(b"ElementDataFile")
    end = len(data) if end < 0 else end
    head = data[:end].decode("latin-1").split("\n")
    line = rng.choice(sorted(_TEXT_FIELDS))
    new = rng.choice(_TEXT_FIELDS[line])
    key = new.split(":")[0].split("=")[0].strip()
    replaced = [new if ln.split(":")[0].split("=")[0].strip() == key else ln for ln in head]
    if replaced == head:
        replaced.insert(1 if len(head) > 1 else 0, new)
    data[:end] = "\n".join(replaced).encode("latin-1")
    if key == "ElementDataFile" and b"ElementDataFile" in data[end:]:
        tail = data.find(b"\n", end)
        data[end:tail if tail > 0 else len(data)] = new.encode()
    _rewrite(path, data)
    return f"header line {new!r}"


def image_fifo_data(rng, path):
    """The detached data file (or the image itself) replaced by a named pipe."""
    data = os.path.splitext(path)[0] + (".raw" if path.endswith((".nhdr", ".mhd")) else "")
    if path.endswith((".nhdr", ".mhd")) and os.path.exists(data):
        os.unlink(data)
        os.mkfifo(data)
        return "detached data file replaced by a named pipe"
    os.unlink(path)
    os.mkfifo(path)
    return "the image file is a named pipe"


def _unzipped(path: str) -> str:
    if path.endswith(".gz"):
        raw = path[:-3] + ".unzipped"
        try:
            with gzip.open(path) as f:
                _write(raw, f.read())
        except (OSError, EOFError):
            _write(raw, _read(path))
        return raw
    return path


def _rewrite(path: str, data: bytes) -> None:
    if path.endswith(".gz"):
        os.unlink(path[:-3] + ".unzipped")
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        _write(path, data)


IMAGE_FAMILIES = [image_truncate, image_flip, image_field, image_field, image_field, image_fifo_data]


# ---- SEG, RTSTRUCT, SR ----------------------------------------------------------------------------

def object_truncate(rng, path):
    return truncate(rng, os.path.dirname(path), [path])


def object_flip(rng, path):
    return flip_bytes(rng, os.path.dirname(path), [path])


def object_length(rng, path):
    return wrong_length(rng, os.path.dirname(path), [path])


_NESTED = ["SegmentSequence", "PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence",
           "ReferencedSeriesSequence", "ROIContourSequence", "StructureSetROISequence",
           "ReferencedFrameOfReferenceSequence", "ContentSequence", "FrameOfReferenceUID", "PixelData",
           "NumberOfFrames", "Rows", "SegmentationType", "SOPClassUID", "Modality"]


def object_delete(rng, path):
    keyword = rng.choice(_NESTED)
    _edit(path, **{keyword: None})
    return f"{keyword} deleted"


def object_nested_nonsense(rng, path):
    """A value deep inside a sequence made absurd: contour points, graphic data, frame positions."""
    ds = pydicom.dcmread(path)
    bad = rng.choice([["nan", "nan", "nan"], ["inf", "0", "0"], ["1e308"] * 3, ["1", "2"], []])
    done = "nothing nested to damage"
    for elem in ds.iterall():
        if elem.keyword in ("ContourData", "GraphicData", "ImagePositionPatient", "PixelSpacing",
                            "NumberOfContourPoints", "ReferencedSegmentNumber", "SegmentNumber",
                            "NumericValue") and rng.random() < 0.5:
            if elem.keyword in ("NumberOfContourPoints", "ReferencedSegmentNumber", "SegmentNumber"):
                elem.value = rng.choice([0, 65535, 99999])
            elif elem.VR == "FL" or elem.VR == "FD":
                elem.value = [float(v) for v in bad] if bad else []
            else:
                elem.value = "\\".join(bad)
            done = f"nested {elem.keyword} = {bad}"
    if rng.random() < 0.3 and "NumberOfFrames" in ds:
        ds.NumberOfFrames = rng.choice([0, 100000000, 1])
        done += "; NumberOfFrames changed"
    _save(ds, path)
    return done


OBJECT_FAMILIES = [object_truncate, object_flip, object_length, object_delete, object_nested_nonsense,
                   object_nested_nonsense]
