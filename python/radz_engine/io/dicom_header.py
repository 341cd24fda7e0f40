"""A pydicom-free reader for plain DICOM files: the common case of the screening hot path.

Uncompressed little-endian files (explicit or implicit VR, with the 128-byte preamble) are parsed
straight from their bytes: the ~20 tags `io.dicom` reads are converted as pydicom converts them
and everything else is skipped by its length (undefined-length sequences item by item). The
result answers `get`, `in`, attribute access and `file_meta` like the pydicom Dataset it
replaces, so `io.dicom` builds the spec and metadata with the same code. pydicom's dcmread plus
its per-element conversions cost ~0.8 ms per 512-px file, most of a native read; this ~0.1 ms.

Anything unusual gives None and pydicom reads the file instead (same results, its own errors):
another transfer syntax, no preamble, a sequence radz reads (VOI / Modality LUT, functional
groups), float pixel data, a tag read here with an unexpected VR, a value pydicom would warn
about or parse specially (non-ASCII, leading spaces, backslashes in text, malformed numbers),
undefined-length UN, structure that does not add up (truncated, trailing bytes, tags out of
order). tests/test_dicom_header.py checks parity with pydicom on random datasets.
"""

from __future__ import annotations

import math
import re
import struct

__all__ = ["NativeDataset", "native_syntax", "read_native"]

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"

# keyword -> (tag, VRs accepted; the first is the dictionary VR used for implicit VR files).
# PixelPaddingValue is "US or SS": read as US here; `io.dicom` masks it to BitsStored either way.
_TAGS = {
    "SOPClassUID": (0x00080016, ("UI",)),
    "SOPInstanceUID": (0x00080018, ("UI",)),
    "Modality": (0x00080060, ("CS",)),
    "BodyPartExamined": (0x00180015, ("CS",)),
    "ViewPosition": (0x00185101, ("CS",)),
    "StudyInstanceUID": (0x0020000D, ("UI",)),
    "SeriesInstanceUID": (0x0020000E, ("UI",)),
    "SamplesPerPixel": (0x00280002, ("US",)),
    "PhotometricInterpretation": (0x00280004, ("CS",)),
    "NumberOfFrames": (0x00280008, ("IS",)),
    "Rows": (0x00280010, ("US",)),
    "Columns": (0x00280011, ("US",)),
    "BitsAllocated": (0x00280100, ("US",)),
    "BitsStored": (0x00280101, ("US",)),
    "PixelRepresentation": (0x00280103, ("US",)),
    "PixelPaddingValue": (0x00280120, ("US", "SS")),
    "PixelPaddingRangeLimit": (0x00280121, ("US", "SS")),
    "WindowCenter": (0x00281050, ("DS",)),
    "WindowWidth": (0x00281051, ("DS",)),
    "RescaleIntercept": (0x00281052, ("DS",)),
    "RescaleSlope": (0x00281053, ("DS",)),
    "VOILUTFunction": (0x00281056, ("CS",)),
    "PixelData": (0x7FE00010, ("OW", "OB")),
}
# Read by `io.dicom` but only ever absent here: a file that has one goes to pydicom.
_ABSENT = {
    "TransferSyntaxUID": 0x00020010,  # lives in file_meta, never in the dataset
    "RedPaletteColorLookupTableDescriptor": 0x00281101,
    "ModalityLUTSequence": 0x00283000,
    "VOILUTSequence": 0x00283010,
    "SharedFunctionalGroupsSequence": 0x52009229,
    "PerFrameFunctionalGroupsSequence": 0x52009230,
    "FloatPixelData": 0x7FE00008,
    "DoubleFloatPixelData": 0x7FE00009,
}
_BY_TAG = {tag: (keyword, vrs) for keyword, (tag, vrs) in _TAGS.items()}
_FALLBACK_TAGS = frozenset(_ABSENT.values())
_KNOWN = frozenset(_TAGS) | frozenset(_ABSENT)

_LONG_VRS = frozenset((b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"))
_ALL_VRS = _LONG_VRS | frozenset(
    (b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN", b"SH", b"SL", b"SS")
    + (b"ST", b"TM", b"UI", b"UL", b"US")
)
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_MAX_DEPTH = 16
_TAG = struct.Struct("<HH")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_TEXT = re.compile(rb"[\x21-\x5b\x5d-\x7e][\x20-\x5b\x5d-\x7e]*")  # printable ASCII, no backslash, no leading space
_IS = re.compile(r"[+-]?\d{1,11}")
_DS = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


class _Fallback(Exception):
    """The file needs pydicom."""


class NativeDataset:
    """The tags `io.dicom` reads from one plain file, as pydicom would give them.

    `get`/`in`/attributes take keywords; asking for a keyword this reader does not parse raises
    KeyError (a programming error: `io.dicom` started reading a new tag; add it to `_TAGS`).
    PixelData is a memoryview into the file's bytes.
    """

    __slots__ = ("_values", "file_meta")

    def __init__(self, values: dict, transfer_syntax: str):
        self._values = values
        self.file_meta = {"TransferSyntaxUID": transfer_syntax}

    def get(self, keyword: str, default=None):
        if keyword not in _KNOWN:
            raise KeyError(f"the native DICOM header reader does not read {keyword}")
        return self._values.get(keyword, default)

    def __contains__(self, keyword: str) -> bool:
        if keyword not in _KNOWN:
            raise KeyError(f"the native DICOM header reader does not read {keyword}")
        return keyword in self._values

    def __getattr__(self, keyword: str):
        if keyword.startswith("_"):  # copy / pickle probe before __init__ ran: no recursion
            raise AttributeError(keyword)
        try:
            return self._values[keyword]
        except KeyError:
            raise AttributeError(keyword) from None


def native_syntax(head: bytes) -> bool:
    """Whether a file starting with `head` (its first bytes, preamble included) may be read here:
    'DICM' and a file meta group naming an uncompressed little-endian transfer syntax. Lets a
    caller skip reading the rest of a compressed file twice."""
    try:
        if len(head) < 132 or head[128:132] != b"DICM":
            return False
        return _file_meta(head, 132)[1] in (EXPLICIT_LE, IMPLICIT_LE)
    except (_Fallback, struct.error, UnicodeDecodeError, ValueError):
        return False


def read_native(data: bytes) -> NativeDataset | None:
    """Parse a whole DICOM file's bytes; None where pydicom must read it (module docstring)."""
    try:
        return _read(data)
    except (_Fallback, struct.error, UnicodeDecodeError, ValueError):
        return None


def _read(buf: bytes) -> NativeDataset:
    if len(buf) < 132 or buf[128:132] != b"DICM":
        raise _Fallback
    pos, transfer_syntax = _file_meta(buf, 132)
    if transfer_syntax not in (EXPLICIT_LE, IMPLICIT_LE):
        raise _Fallback
    explicit = transfer_syntax == EXPLICIT_LE
    if not explicit and len(buf) >= pos + 6 and all(0x40 < b < 0x5B for b in buf[pos + 4 : pos + 6]):
        raise _Fallback  # implicit VR declared but the data looks explicit: pydicom's heuristic decides
    raw: dict = {}
    _walk(buf, pos, len(buf), explicit, 0, raw)
    values = {keyword: _convert(buf, vr, start, length) for keyword, (vr, start, length) in raw.items()}
    return NativeDataset(values, transfer_syntax)


def _file_meta(buf: bytes, pos: int) -> tuple[int, str | None]:
    """Group 0002 (always explicit VR little endian): the position after it, the transfer syntax."""
    transfer_syntax = None
    n = len(buf)
    while pos + 8 <= n and _U16.unpack_from(buf, pos)[0] == 0x0002:
        element = _U16.unpack_from(buf, pos + 2)[0]
        vr = buf[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            length, start = _U32.unpack_from(buf, pos + 8)[0], pos + 12
        elif vr in _ALL_VRS:
            length, start = _U16.unpack_from(buf, pos + 6)[0], pos + 8
        else:
            raise _Fallback
        if length == _UNDEFINED or start + length > n:
            raise _Fallback
        if element == 0x0010:
            if vr != b"UI":
                raise _Fallback  # pydicom would keep another VR's value as bytes
            transfer_syntax = _text(buf[start : start + length])
        pos = start + length
    return pos, transfer_syntax


def _walk(buf: bytes, pos: int, end: int, explicit: bool, depth: int, raw: dict | None, delimited=False) -> int:
    """Elements from pos to exactly `end` (depth 0: the file, recording the wanted ones in raw; a
    defined-length item), or to the item delimiter (`delimited`: an undefined-length item);
    returns the position after them. Items of undefined-length sequences are walked element by
    element, as pydicom parses them while reading the file (it reads defined-length sequences
    lazily, so their contents are skipped by length as it does)."""
    last = -1
    while pos < end:
        if pos + 8 > end:
            raise _Fallback
        group, element = _TAG.unpack_from(buf, pos)
        tag = group << 16 | element
        if tag == _ITEM_END and delimited:
            return pos + 8
        if group == 0xFFFE or (depth == 0 and (tag <= last or group == 0x0002 or tag in _FALLBACK_TAGS)):
            raise _Fallback
        last = tag
        if explicit:
            vr = buf[pos + 4 : pos + 6]
            if vr in _LONG_VRS:
                if pos + 12 > end:
                    raise _Fallback
                length, start = _U32.unpack_from(buf, pos + 8)[0], pos + 12
            elif vr in _ALL_VRS:
                length, start = _U16.unpack_from(buf, pos + 6)[0], pos + 8
            else:
                raise _Fallback
        else:
            vr = None
            length, start = _U32.unpack_from(buf, pos + 4)[0], pos + 8
        if length == _UNDEFINED:
            if (
                (explicit and vr != b"SQ")
                or (depth == 0 and tag in _BY_TAG)
                or (not explicit and not _is_sequence(tag))
            ):
                raise _Fallback  # UN / encapsulated data, a wanted tag that is not a value, or (implicit
                # VR) a tag pydicom would not read as a sequence: it reads those up to a delimiter
            pos = _skip_sequence(buf, start, end, explicit, depth + 1)
            continue
        if start + length > end:
            raise _Fallback
        if raw is not None and tag in _BY_TAG:
            keyword, vrs = _BY_TAG[tag]
            name = vrs[0] if vr is None else vr.decode()
            if name not in vrs:
                raise _Fallback
            raw[keyword] = (name, start, length)
        pos = start + length
    if delimited:
        raise _Fallback  # an item without its delimiter
    return pos


def _is_sequence(tag: int) -> bool:
    """Whether pydicom's dictionary says SQ (implicit VR: how pydicom reads an undefined length).
    Unknown and private tags are not: pydicom guesses there, so the file goes to pydicom."""
    from pydicom.datadict import dictionary_VR  # only for undefined lengths in implicit VR files

    try:
        return dictionary_VR(tag) == "SQ"
    except KeyError:
        return False


def _skip_sequence(buf: bytes, pos: int, end: int, explicit: bool, depth: int) -> int:
    """Past an undefined-length sequence's items (each walked) and its delimiter, within `end`."""
    if depth > _MAX_DEPTH:
        raise _Fallback
    while pos + 8 <= end:
        group, element = _TAG.unpack_from(buf, pos)
        tag, length = group << 16 | element, _U32.unpack_from(buf, pos + 4)[0]
        if tag == _SEQUENCE_END:
            return pos + 8
        if tag != _ITEM:
            raise _Fallback
        if length == _UNDEFINED:
            pos = _walk(buf, pos + 8, end, explicit, depth, None, delimited=True)
        elif pos + 8 + length > end:
            raise _Fallback
        else:
            pos = _walk(buf, pos + 8, pos + 8 + length, explicit, depth, None)
    raise _Fallback


def _convert(buf: bytes, vr: str, start: int, length: int):
    if vr in ("OW", "OB"):
        return memoryview(buf)[start : start + length]  # pixel data: no copy until the frame is cut
    value = buf[start : start + length]
    if vr in ("US", "SS"):
        if length not in (0, 2):
            raise _Fallback  # every US tag read here has VM 1; pydicom wraps others its own way
        return struct.unpack("<H" if vr == "US" else "<h", value)[0] if length else None
    if vr in ("IS", "DS"):
        text = value.decode("ascii").rstrip(" ")
        if not text:
            return None
        parts = [part.strip(" ") for part in text.split("\\")]
        if vr == "IS":
            if not all(_IS.fullmatch(part) for part in parts):
                raise _Fallback
            numbers = [int(part) for part in parts]
        else:
            if not all(len(part) <= 16 and _DS.fullmatch(part) for part in parts):
                raise _Fallback
            numbers = [float(part) for part in parts]
            if not all(math.isfinite(x) for x in numbers):
                raise _Fallback
        return numbers[0] if len(numbers) == 1 else numbers
    return _text(value)  # CS, UI


def _text(value: bytes) -> str:
    """A single-valued CS/UI value without its trailing padding; odd text goes to pydicom."""
    text = value.rstrip(b" \x00")
    if text and not _TEXT.fullmatch(text):
        raise _Fallback
    return text.decode("ascii")
