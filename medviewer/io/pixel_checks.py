"""Is a file's pixel data there, complete, and of a size its header can account for? Checked from
the item and marker headers alone, before any decoder sees the bytes.

A decoder trusts what it is given: a truncated JPEG 2000 fragment or a codestream that declares
another image size than the DICOM header made GDCM allocate gigabytes. So every encapsulated
fragment's length is checked against the bytes the file holds, the fragments' total against the
frames' uncompressed size, and the image size that a JPEG or JPEG 2000 codestream declares against
Rows x Columns. What passes is bounded by Rows x Columns x frames, itself capped.
"""

from __future__ import annotations

import os
import struct
from typing import IO

_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"
_PIXEL_DATA_TAG_BE = b"\x7f\xe0\x00\x10"
_ITEM = (0xFFFE, 0xE000)
_SEQUENCE_END = (0xFFFE, 0xE0DD)
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
NATIVE_SYNTAXES = {IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE}
# One file's decoded pixels may not exceed this (a 512 x 512 x 2000-frame 16-bit image is 1 GiB).
MAX_PIXEL_BYTES = 2 << 30
# A codestream may be bigger than the raw pixels it holds (headers, poor compression of noise)
# by this factor plus a fixed allowance; beyond that it is not the image the header describes.
_COMPRESSED_SLACK = 2
_COMPRESSED_ALLOWANCE = 1 << 16
# JPEG 2000 tiles: more than this many per frame is a damaged SIZ marker, not an image.
_MAX_TILES = 4096


def expected_bytes(rows: int, columns: int, frames: int, samples: int, bits: int) -> int:
    return rows * columns * max(frames, 1) * max(samples, 1) * bits // 8


def image_size_problem(rows: int, columns: int, frames: int, samples: int, bits: int) -> str | None:
    """Why these header values cannot describe pixels to decode, or None."""
    if rows <= 0 or columns <= 0:
        return f"image of {rows} x {columns} pixels"
    if bits not in (1, 8, 16, 32, 64):
        return f"Bits Allocated {bits} (expected 1, 8, 16, 32 or 64)"
    if samples not in (1, 3, 4):
        return f"Samples per Pixel {samples}"
    size = expected_bytes(rows, columns, frames, samples, bits)
    if size > MAX_PIXEL_BYTES:
        return (f"absurd image size: {rows} x {columns} x {frames} frame(s) of {bits} bits "
                f"({size / 2**30:.1f} GiB)")
    return None


def check_pixel_data(fp: IO[bytes], syntax: str, rows: int, columns: int, frames: int,
                     samples: int, bits: int) -> tuple[bool, str | None]:
    """With ``fp`` just after a header read that stopped before the pixels: (whether Pixel Data is
    there, what is wrong with it or None)."""
    start = fp.tell()
    tag = fp.read(4)
    if len(tag) < 4 or tag != (_PIXEL_DATA_TAG_BE if syntax == EXPLICIT_BE else _PIXEL_DATA_TAG):
        return False, None
    if syntax == DEFLATED:  # the stream is compressed as a whole: nothing to check by offset
        return True, None
    size_problem = image_size_problem(rows, columns, frames, samples, bits)
    if size_problem:
        return True, size_problem
    if syntax == IMPLICIT_LE:
        header = 8
        length = _u32(fp.read(4), "<")
    else:  # explicit VR OB/OW: tag, VR, 2 reserved, 4-byte length
        header = 12
        fp.read(4)
        length = _u32(fp.read(4), ">" if syntax == EXPLICIT_BE else "<")
    if length is None:
        return True, "truncated: the file ends inside the Pixel Data header"
    file_size = os.fstat(fp.fileno()).st_size
    expected = expected_bytes(rows, columns, frames, samples, bits)
    if syntax in NATIVE_SYNTAXES:
        if length == 0xFFFFFFFF:
            return True, "native pixel data of undefined length"
        available = file_size - start - header
        if available < length:
            return True, f"truncated: pixel data holds {available} of {length} bytes"
        if length < expected:
            return True, f"pixel data too short: {length} bytes for {rows} x {columns} x {frames} frames"
        return True, None
    if length != 0xFFFFFFFF:
        return True, f"pixel data not encapsulated, as transfer syntax {syntax} requires"
    return True, _check_fragments(fp, file_size, expected, frames, rows, columns, samples, syntax)


def _u32(data: bytes, order: str) -> int | None:
    return struct.unpack(order + "I", data)[0] if len(data) == 4 else None


def _check_fragments(fp, file_size: int, expected: int, frames: int, rows: int, columns: int,
                     samples: int, syntax: str) -> str | None:
    """Walk the encapsulated items (offset table, fragments, delimiter) by their headers."""
    items = 0
    total = 0  # bytes in fragments (the first item, the Basic Offset Table, not counted)
    first_fragment_at = None
    while True:
        head = fp.read(8)
        if len(head) < 8:
            return "truncated: encapsulated pixel data ends before its sequence delimiter"
        group, element, length = struct.unpack("<HHI", head)
        if (group, element) == _SEQUENCE_END:
            break
        if (group, element) != _ITEM:
            return f"damaged encapsulated pixel data (item tag ({group:04X},{element:04X}))"
        here = fp.tell()
        if length == 0xFFFFFFFF or here + length > file_size:
            return (f"truncated: an encapsulated fragment of {length} bytes runs past the end of "
                    f"the file ({file_size - here} bytes left)")
        items += 1
        if items > 1:
            total += length
            if first_fragment_at is None:
                first_fragment_at = here
        fp.seek(here + length)
    if items - 1 < max(frames, 1):
        return f"encapsulated pixel data holds {max(items - 1, 0)} fragment(s) for {frames} frame(s)"
    if total > _COMPRESSED_SLACK * expected + _COMPRESSED_ALLOWANCE * max(frames, 1):
        return (f"encapsulated pixel data of {total} bytes, far more than {rows} x {columns} x "
                f"{frames} frame(s) hold uncompressed ({expected} bytes)")
    fp.seek(first_fragment_at)
    return codestream_problem(fp.read(min(total, 1 << 16)), syntax, rows, columns, samples)


JPEG2000_SYNTAXES = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92",
                     "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
                     "1.2.840.10008.1.2.4.203"}
JPEG_SYNTAXES = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                 "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}
RLE_SYNTAX = "1.2.840.10008.1.2.5"
# JPEG start-of-frame markers (C0-CF but DHT C4, JPG C8, DAC CC) and JPEG-LS's SOF55 (F7).
_SOF_MARKERS = {m for m in range(0xC0, 0xD0) if m not in (0xC4, 0xC8, 0xCC)} | {0xF7}
_STANDALONE_MARKERS = {0x01, 0xD8, 0xD9} | set(range(0xD0, 0xD8))


def codestream_problem(data: bytes, syntax: str, rows: int, columns: int, samples: int) -> str | None:
    """What the first fragment's codestream header declares that Rows x Columns x Samples per
    Pixel do not account for, or None. Syntaxes without a declared size pass."""
    if syntax in JPEG2000_SYNTAXES:
        return _jpeg2000_problem(data, rows, columns, samples)
    if syntax in JPEG_SYNTAXES:
        return _jpeg_problem(data, rows, columns, samples)
    if syntax == RLE_SYNTAX and len(data) >= 4:
        segments = struct.unpack("<I", data[:4])[0]
        if not 1 <= segments <= 15:
            return f"damaged RLE pixel data ({segments} segments)"
    return None


def _declared(kind: str, width: int, height: int, components: int, rows: int, columns: int,
              samples: int) -> str | None:
    if (width, height, components) != (columns, rows, samples):
        return (f"the {kind} codestream declares {width} x {height} x {components} component(s), "
                f"the header {columns} x {rows} x {samples}")
    return None


def _jpeg2000_problem(data: bytes, rows: int, columns: int, samples: int) -> str | None:
    at = data.find(b"\xff\x4f\xff\x51")
    if at < 0 or len(data) < at + 42:
        return "not a JPEG 2000 codestream (no SIZ marker in the first fragment)"
    (x, y, xo, yo, xt, yt, xto, yto) = struct.unpack(">8I", data[at + 8:at + 40])
    (components,) = struct.unpack(">H", data[at + 40:at + 42])
    if x <= xo or y <= yo or xt == 0 or yt == 0 or xto > xo or yto > yo:
        return "damaged JPEG 2000 codestream (its SIZ marker describes no image)"
    declared = _declared("JPEG 2000", x - xo, y - yo, components, rows, columns, samples)
    if declared:
        return declared
    tiles = -(-(x - xto) // xt) * -(-(y - yto) // yt)
    if tiles > _MAX_TILES:
        return f"damaged JPEG 2000 codestream ({tiles} tiles)"
    return None


def _jpeg_problem(data: bytes, rows: int, columns: int, samples: int) -> str | None:
    if data[:2] != b"\xff\xd8":
        return "not a JPEG codestream (no start-of-image marker)"
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return "damaged JPEG codestream (a marker expected)"
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _STANDALONE_MARKERS:
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2:at + 4])
        if marker in _SOF_MARKERS:
            if at + 10 > len(data):
                return None
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            if height == 0:  # height given later by a DNL marker
                height = rows
            return _declared("JPEG", width, height, data[at + 9], rows, columns, samples)
        if marker == 0xDA or length < 2:  # start of scan before any frame header
            return "damaged JPEG codestream (no frame header before the scan)"
        at += 2 + length
    return None
