"""Is a DICOM file's element structure sound, as a strict parser will walk it? Checked from the
element headers alone, before a decoder (GDCM) parses the file again on its own.

pydicom, reading a few tags, skips what it does not need and forgives a lot; GDCM parses every
element, and a length that lies (a sequence of length 0 whose items follow at the top level, a
private element one byte short) sends it through the rest of the file reading garbage as lengths,
allocating hundreds of megabytes before it gives up. So the elements before the pixel data are
walked here -- tags, VRs, lengths, sequences and items, nested -- and a file whose structure does
not hold is skipped with the byte where it breaks.
"""

from __future__ import annotations

import struct

from medviewer.io.pixel_checks import DEFLATED, EXPLICIT_BE, IMPLICIT_LE

# Explicit VRs with a 4-byte length (after 2 reserved bytes); the others have a 2-byte length.
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xE000, 0xE00D, 0xE0DD
_PIXEL_DATA = (0x7FE0, 0x0010)
_MAX_DEPTH = 32


class _Broken(Exception):
    pass


def dataset_start(data: bytes) -> int | None:
    """Offset of the first element after the file meta group (None without a DICM preamble)."""
    if data[128:132] != b"DICM":
        return None
    offset = 132
    while offset + 8 <= len(data):
        group = struct.unpack_from("<H", data, offset)[0]
        if group != 0x0002:
            return offset
        vr = bytes(data[offset + 4:offset + 6])
        if vr in _LONG_VRS:
            offset += 12 + struct.unpack_from("<I", data, offset + 8)[0]
        else:
            offset += 8 + struct.unpack_from("<H", data, offset + 6)[0]
    return offset


def structure_problem(data: bytes, syntax: str) -> str | None:
    """What breaks the element structure of ``data`` (a file's bytes up to its Pixel Data, or
    whole), or None."""
    start = dataset_start(data)
    if start is None or syntax == DEFLATED:
        return None
    walker = _Walker(data, syntax != IMPLICIT_LE, ">" if syntax == EXPLICIT_BE else "<")
    try:
        walker.elements(start, len(data), depth=0, in_item=False)
    except _Broken as exc:
        return f"damaged DICOM structure ({exc})"
    return None


class _Walker:
    def __init__(self, data: bytes, explicit: bool, order: str) -> None:
        self.data, self.explicit, self.order = data, explicit, order

    def _unpack(self, fmt: str, offset: int, what: str):
        if offset + struct.calcsize(fmt) > len(self.data):
            raise _Broken(f"the file ends inside {what} at byte {offset}")
        return struct.unpack_from(self.order + fmt, self.data, offset)

    def elements(self, offset: int, end: int, depth: int, in_item: bool) -> int:
        """Walk elements from ``offset`` to ``end`` or, ``in_item`` (an item of undefined length,
        ``end`` the end of the data), to the item's delimiter; the offset after them."""
        if depth > _MAX_DEPTH:
            raise _Broken(f"sequences nested more than {_MAX_DEPTH} deep")
        while offset < end:
            group, element = self._unpack("HH", offset, "an element's tag")
            if group == 0xFFFE:
                if in_item and element == _ITEM_END:
                    return offset + 8
                raise _Broken(f"item tag (FFFE,{element:04X}) outside a sequence at byte {offset}")
            if depth == 0 and (group, element) == _PIXEL_DATA:
                return offset
            offset = self._element(offset, group, element, end, depth)
        if in_item:
            raise _Broken("an item without its delimiter at the end of the file")
        return offset

    def _element(self, offset: int, group: int, element: int, end: int, depth: int) -> int:
        vr = None
        if self.explicit:
            vr = bytes(self.data[offset + 4:offset + 6])
            if not (len(vr) == 2 and vr.isalpha() and vr.isupper()):
                raise _Broken(f"({group:04X},{element:04X}) has no valid VR ({vr!r}) at byte {offset}")
        if vr is None or vr in _LONG_VRS:
            (length,) = self._unpack("I", offset + (8 if vr else 4), "an element's length")
            value = offset + (12 if vr else 8)
        else:
            (length,) = self._unpack("H", offset + 6, "an element's length")
            value = offset + 8
        if length == _UNDEFINED:
            if (group, element) == _PIXEL_DATA or vr in (b"OB", b"OW"):  # encapsulated (an icon's)
                return self.fragments(value)
            if vr is not None and vr not in (b"SQ", b"UN"):
                raise _Broken(f"({group:04X},{element:04X}) {vr.decode()} of undefined length at byte {offset}")
            walker = _Walker(self.data, False, "<") if vr == b"UN" else self  # UN: implicit VR inside
            return walker.sequence(value, None, depth + 1)
        if value + length > end:
            raise _Broken(f"({group:04X},{element:04X}) of {length} bytes runs past its end at byte {offset}")
        if vr == b"SQ":
            self.sequence(value, value + length, depth + 1)
        return value + length

    def fragments(self, offset: int) -> int:
        """Skip encapsulated fragments (items of bytes) to their sequence delimiter."""
        while True:
            group, element, length = self._unpack("HHI", offset, "a fragment's header")
            if (group, element) == (0xFFFE, _SEQUENCE_END):
                return offset + 8
            if (group, element) != (0xFFFE, _ITEM) or offset + 8 + length > len(self.data):
                raise _Broken(f"a damaged encapsulated fragment at byte {offset}")
            offset += 8 + length

    def sequence(self, offset: int, end: int | None, depth: int) -> int:
        """Walk items to ``end`` (a defined length) or, ``end`` None, to the sequence delimiter."""
        limit = len(self.data) if end is None else end
        while offset < limit:
            group, element, length = self._unpack("HHI", offset, "an item's header")
            if group != 0xFFFE:
                raise _Broken(f"({group:04X},{element:04X}) where an item belongs at byte {offset}")
            if element == _SEQUENCE_END:
                return offset + 8
            if element != _ITEM:
                raise _Broken(f"(FFFE,{element:04X}) where an item belongs at byte {offset}")
            if length == _UNDEFINED:
                offset = self.elements(offset + 8, len(self.data), depth, in_item=True)
                continue
            if offset + 8 + length > limit:
                raise _Broken(f"an item of {length} bytes runs past its sequence at byte {offset}")
            self.elements(offset + 8, offset + 8 + length, depth, in_item=False)
            offset += 8 + length
        if end is None:
            raise _Broken("a sequence without its delimiter at the end of the file")
        return offset
