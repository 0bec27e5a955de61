"""The loader's one guard, by the faults the first fuzz found: each damaged file is skipped or the
load refused with one line naming it; special files are never opened; nothing vanishes unsaid."""

import contextlib
import os
import shutil
import signal
import socket
import struct

import numpy as np
import pydicom
import pytest

from medviewer.cli import main as cli
from medviewer.core import MedviewerError
from medviewer.io import dropped_note, index_folder, load_volume, read_image, write_image


@contextlib.contextmanager
def no_hang(seconds=20):
    """Fail (instead of blocking the suite) if the body blocks, as an open() of a FIFO would."""
    def alarm(*_):
        raise AssertionError(f"blocked for {seconds} s")
    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def reasons(index):
    return {os.path.basename(s.path): s.reason for s in index.skipped}


def test_special_files_are_skipped_by_name_never_opened(small_series):
    folder, files, array = small_series()
    os.mkfifo(folder / "IM_FIFO.dcm")
    os.symlink("loop.dcm", folder / "loop.dcm")
    os.makedirs(folder / "IM9999.dcm")
    os.symlink("/dev/zero", folder / "zero.dcm")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "sock.dcm"))
    sock.close()
    with no_hang():
        index = index_folder(folder)
        volume = load_volume(folder)
    found = reasons(index)
    assert "named pipe" in found["IM_FIFO.dcm"]
    assert "symbolic link loop" in found["loop.dcm"]
    assert "character device" in found["zero.dcm"]
    assert "socket" in found["sock.dcm"]
    assert volume.shape == array.shape
    dropped = {os.path.basename(p) for p, _ in volume.meta["dropped_files"]}
    assert {"IM_FIFO.dcm", "loop.dcm", "zero.dcm", "sock.dcm"} <= dropped
    assert "IM_FIFO.dcm: a named pipe" in dropped_note(volume)


def _explicit_element(path, keyword):
    """Offset of ``keyword``'s VR in an explicit-VR little-endian file."""
    tag = pydicom.datadict.tag_for_keyword(keyword)
    data = open(path, "rb").read()
    at = data.find(struct.pack("<HH", tag >> 16, tag & 0xFFFF), 132)
    assert at > 0
    return data, at + 4


@pytest.mark.parametrize("keyword", ["PixelSpacing", "ImagePositionPatient", "Rows", "SeriesInstanceUID"])
def test_a_wrong_vr_skips_the_file_with_its_reason(small_series, keyword):
    """pydicom decodes values lazily: an unknown VR raised NotImplementedError after the header
    read's try block. The guard decodes every value the loader uses inside it."""
    folder, files, _ = small_series()
    data, vr_at = _explicit_element(files[0], keyword)
    with open(files[0], "wb") as f:
        f.write(data[:vr_at] + b"ZZ" + data[vr_at + 2:])
    index = index_folder(folder)
    if index.skipped:
        assert os.path.basename(files[0]) in reasons(index)
    # the folder then loads without it or is refused naming a file, never anything else
    try:
        load_volume(folder)
    except MedviewerError as exc:
        assert exc.path and "\n" not in str(exc)


@pytest.mark.parametrize("values, words", [
    ({"ImageOrientationPatient": "0\\0\\0\\0\\0\\0"}, "Image Orientation"),
    ({"ImageOrientationPatient": "nan\\0\\0\\0\\1\\0"}, "Image Orientation"),
    ({"ImageOrientationPatient": "1\\0\\0\\1\\0\\0"}, "perpendicular"),
    ({"ImagePositionPatient": "nan\\0\\0"}, "not finite"),
    ({"ImagePositionPatient": "inf\\0\\0"}, "not finite"),
    ({"PixelSpacing": "0\\0"}, "Pixel Spacing"),
    ({"PixelSpacing": "nan\\1"}, "Pixel Spacing"),
])
def test_damaged_geometry_is_refused_naming_the_file(small_series, values, words):
    from pydicom.config import IGNORE, settings

    folder, files, _ = small_series()
    old = settings.writing_validation_mode, settings.reading_validation_mode
    settings.writing_validation_mode = settings.reading_validation_mode = IGNORE
    try:
        ds = pydicom.dcmread(files[3])
        for keyword, value in values.items():
            tag = pydicom.datadict.tag_for_keyword(keyword)
            ds[tag] = pydicom.DataElement(tag, "DS", value)
        ds.save_as(files[3])
    finally:
        settings.writing_validation_mode, settings.reading_validation_mode = old
    with pytest.raises(MedviewerError) as caught:
        load_volume(folder)
    text = str(caught.value)
    assert os.path.basename(files[3]) in text and words in text and "\n" not in text
    assert cli(["info", str(folder)]) == 1  # listed with its problem; nothing loadable


def test_slice_damaged_before_rows_is_reported_as_dropped(small_series):
    """A file cut before Rows reads as a pixel-less object: 8 slices in, 7 loaded, 1 reported."""
    folder, files, array = small_series()
    data = open(files[-1], "rb").read()
    with open(files[-1], "wb") as f:
        f.write(data[:data.find(b"\x28\x00\x10\x00", 132)])
    volume = load_volume(folder)
    assert volume.shape[0] == array.shape[0] - 1
    (dropped,) = volume.meta["dropped_files"]
    assert dropped[0] == files[-1] and "pixel data" in dropped[1]


def test_a_700_byte_slice_alone_is_no_series_and_info_fails(small_series, tmp_path):
    folder, files, _ = small_series()
    alone = tmp_path / "alone"
    alone.mkdir()
    with open(alone / "IM1.dcm", "wb") as f:
        f.write(open(files[0], "rb").read()[:700])
    index = index_folder(alone)
    assert not index.all_series() and len(index.skipped) == 1
    assert cli(["info", str(alone)]) == 1


def test_missing_slice_message_names_the_damaged_file(small_series):
    folder, files, _ = small_series()
    data = open(files[4], "rb").read()
    with open(files[4], "wb") as f:
        f.write(data[:len(data) - 50])
    with pytest.raises(MedviewerError, match="1 slice\\(s\\) missing") as caught:
        load_volume(folder)
    assert f"{os.path.basename(files[4])}: truncated" in str(caught.value)


def test_exact_duplicates_are_reported_as_duplicates_and_the_series_loads(small_series):
    folder, files, array = small_series()
    shutil.copy(files[2], folder / "copy.dcm")
    volume = load_volume(folder)
    assert volume.shape == array.shape
    (dropped,) = volume.meta["dropped_files"]
    assert os.path.basename(dropped[0]) in ("copy.dcm", os.path.basename(files[2]))
    assert "duplicate of" in dropped[1]


def test_same_position_other_uid_names_both_files(small_series, edit):
    folder, files, _ = small_series()
    shutil.copy(files[2], folder / "twin.dcm")
    edit(folder / "twin.dcm", SOPInstanceUID=pydicom.uid.generate_uid())
    with pytest.raises(MedviewerError, match="share a position") as caught:
        load_volume(folder)
    assert "twin.dcm" in str(caught.value)


# ---- compressed pixel data ----------------------------------------------------------------------

@pytest.fixture
def j2k_folder(shared_data, tmp_path):
    source = shared_data / "compressed-ct" / "example_ct_dicom"
    out = tmp_path / "j2k"
    out.mkdir()
    files = sorted(source.iterdir())[:4]
    for n, f in enumerate(files):
        shutil.copy(f, out / f"IM{n}.dcm")
    return out, sorted(out.iterdir())


def _first_fragment(data):
    at = data.rfind(b"\xe0\x7f\x10\x00")
    offset = at + 12  # tag, OB, reserved, undefined length
    (bot,) = struct.unpack_from("<I", data, offset + 4)
    fragment = offset + 8 + bot
    (length,) = struct.unpack_from("<I", data, fragment + 4)
    return fragment, length


@pytest.mark.data
def test_truncated_jpeg2000_fragment_is_skipped_before_decoding(j2k_folder):
    folder, files = j2k_folder
    data = open(files[1], "rb").read()
    fragment, length = _first_fragment(data)
    with open(files[1], "wb") as f:
        f.write(data[:fragment + 8 + length // 2])
    found = reasons(index_folder(folder))
    assert found[files[1].name].startswith("truncated")


@pytest.mark.data
def test_jpeg2000_size_other_than_the_header_is_refused(j2k_folder):
    folder, files = j2k_folder
    data = bytearray(open(files[1], "rb").read())
    fragment, _ = _first_fragment(data)
    siz = data.find(b"\xff\x4f\xff\x51", fragment)
    struct.pack_into(">II", data, siz + 8, 60000, 60000)  # Xsiz, Ysiz
    with open(files[1], "wb") as f:
        f.write(data)
    assert "JPEG 2000 codestream declares" in reasons(index_folder(folder))[files[1].name]


@pytest.mark.data
def test_undecodable_slice_is_named_after_one_decode_each(j2k_folder, monkeypatch):
    import SimpleITK as sitk

    folder, files = j2k_folder
    data = bytearray(open(files[2], "rb").read())
    fragment, length = _first_fragment(data)
    data[fragment + 8 + 200:fragment + 8 + length] = bytes(length - 200)  # lengths intact
    with open(files[2], "wb") as f:
        f.write(data)
    calls = []
    real = sitk.ReadImage
    monkeypatch.setattr(sitk, "ReadImage", lambda path, *a, **k: calls.append(path) or real(path, *a, **k))
    try:
        volume = load_volume(folder)
    except MedviewerError as exc:
        assert exc.path == str(files[2]) and "\n" not in str(exc)
    else:  # OpenJPEG decoded what was left: then it is a whole volume
        assert volume.shape[0] == len(files)
    assert len(calls) == len(set(calls))  # no file decoded twice


# ---- image files ------------------------------------------------------------------------------

def _nifti(tmp_path, demo_volume):
    return write_image(demo_volume.crop((0, 0, 0), (4, 8, 8)), tmp_path / "image.nii", compress=False)


@pytest.mark.parametrize("offset, fmt, values, words", [
    (280, "<12f", (float("nan"),) * 12, "not finite"),  # sform of NaNs: ITK's origin is NaN
    (40, "<8h", (3, 30000, 30000, 30000, 1, 1, 1, 1), "absurd image size"),
])
def test_damaged_nifti_is_refused_naming_it(tmp_path, demo_volume, offset, fmt, values, words):
    path = _nifti(tmp_path, demo_volume)
    data = bytearray(open(path, "rb").read())
    struct.pack_into(fmt, data, offset, *values)
    open(path, "wb").write(data)
    with pytest.raises(MedviewerError) as caught:
        read_image(path)
    assert caught.value.path == path and "\n" not in str(caught.value)
    assert words in str(caught.value) or "cannot be read" in str(caught.value)


def test_nrrd_naming_a_pipe_as_its_data_is_refused_unopened(tmp_path, demo_volume):
    path = write_image(demo_volume.crop((0, 0, 0), (4, 8, 8)), tmp_path / "image.nhdr", compress=False)
    data_file = os.path.join(tmp_path, "image.raw")
    assert os.path.exists(data_file)
    os.unlink(data_file)
    os.mkfifo(data_file)
    with no_hang(), pytest.raises(MedviewerError, match="named pipe") as caught:
        read_image(path)
    assert caught.value.path == path and "image.raw" in str(caught.value)


def test_damaged_seg_and_sr_are_refused_naming_them(tmp_path, small_series):
    from medviewer.core.document import Ruler
    from medviewer.core.segments import Segment
    from medviewer.export.measurements import write_measurements
    from medviewer.export.seg import write_seg
    from medviewer.io.annotations import read_annotation
    from medviewer.io.measurements_sr import read_measurements_sr

    folder, _, _ = small_series()
    volume = load_volume(folder)
    labels = np.zeros(volume.shape, np.uint8)
    labels[2:5, 3:8, 4:10] = 1
    seg = write_seg(volume, volume.with_array(labels), [Segment(1, "lesion")], tmp_path / "seg.dcm")
    middle = volume.voxel_to_patient((4, 6, 8))
    sr = write_measurements(volume, [Ruler(tuple(middle), tuple(middle + [5.0, 0, 0]))], tmp_path / "sr.dcm")
    for path in (seg, sr):
        data = bytearray(open(path, "rb").read())
        cut = data[:len(data) * 2 // 3]
        open(path, "wb").write(cut)
        with pytest.raises(MedviewerError) as caught:
            read_annotation(path, volume) if path == seg else read_measurements_sr(path, volume)
        assert caught.value.path == path and "\n" not in str(caught.value)


def test_hostile_names_stay_on_one_line(small_series, edit, capsys):
    folder, files, _ = small_series()
    edit(files[0], SeriesDescription="two\nlines \x1b[31mred")
    edit(files[0], SOPInstanceUID="1.2.3")  # a stack of its own? no: same geometry, same series
    bad = folder / "evil\nname.dcm"
    bad.write_bytes(b"DICM" * 10)
    assert cli(["info", str(folder)]) in (0, 1)
    out = capsys.readouterr().out
    assert "\x1b" not in out and "two\nlines" not in out
    with pytest.raises(MedviewerError) as caught:
        load_volume(bad)  # one file: refused, named
    assert "\n" not in str(caught.value) and "evil\\nname.dcm" in str(caught.value)


def test_a_link_to_a_folder_is_reported_not_followed(small_series):
    folder, _, array = small_series()
    os.symlink(".", folder / "again")
    with no_hang():
        volume = load_volume(folder)
    assert volume.shape == array.shape
    assert any(os.path.basename(p) == "again" and "not followed" in r for p, r in volume.meta["dropped_files"])


def test_a_stray_stack_is_named_by_its_files(small_series, edit):
    folder, files, _ = small_series()
    edit(files[5], Rows=6)  # pixel data too long for 6 rows: read, but a stack of its own
    with pytest.raises(MedviewerError, match="choose one") as caught:
        load_volume(folder)
    assert os.path.basename(files[5]) in str(caught.value)


@pytest.mark.data
def test_a_sequence_whose_length_lies_is_skipped_before_gdcm_parses_it(j2k_folder):
    """A sequence of length 0 whose items follow at the top level: pydicom skips past it, GDCM
    parsed the rest as garbage and allocated hundreds of megabytes. Walked first, it is refused."""
    folder, files = j2k_folder
    data = bytearray(open(files[1], "rb").read())
    at = data.find(b"\x08\x00\x40\x11SQ")  # (0008,1140) Referenced Image Sequence, explicit VR
    assert at > 0
    struct.pack_into("<I", data, at + 8, 0)
    open(files[1], "wb").write(data)
    found = reasons(index_folder(folder))
    assert found[files[1].name].startswith("damaged DICOM structure (item tag (FFFE,E000) outside a sequence")
    assert not {f.name for f in files} - {files[1].name} & set(found)  # the others index
