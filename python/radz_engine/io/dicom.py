"""DICOM input: a file, bytes or pydicom Dataset -> stored pixels + the `PixelSpec` to show them.

The reader returns STORED values (not display values): the grayscale pipeline itself (rescale,
VOI LUT / window, MONOCHROME1 inversion, padding) runs later in the preprocessor, driven by the
`PixelSpec` built here from the tags. Two cases are resolved here because `PixelSpec` cannot
express them:

- Modality LUT Sequence (a table instead of RescaleSlope/Intercept): the table is applied here;
  the pixels become float32 modality values and the spec gets slope 1, intercept 0. Padding
  pixels are then marked with the value -1.0 (LUT entries are unsigned, so it cannot clash).
- Colour (RGB, YBR_* after pydicom's conversion to RGB, PALETTE COLOR): converted to BT.601
  luminance, float32, with a `RadzInputWarning`. The spec maps the full range of BitsStored
  onto [0, 1]. Images whose three channels are identical are grey already and keep channel 0.

Compressed transfer syntaxes are decoded by pydicom's pixel data plugins (pylibjpeg with
pylibjpeg-libjpeg / -openjpeg / -rle, pyjpegls, Pillow). With `min_size` (the model's input side),
JPEG 2000 and HTJ2K grayscale frames are decoded by the C++ core through OpenJPEG at the coarsest
resolution level whose sides are still >= min_size (the wavelet pyramid's low-pass image: a
2048-px frame needed at 224 px decodes at 256 px), and 8-bit grayscale JPEG baseline through
libjpeg-turbo's DCT scaling (1/2, 1/4, 1/8: at 1/8 each 8x8 block's mean); the pixels are then
smaller than Rows x Columns. Without the library in the build, or for anything it does not
handle, pydicom decodes. Every failure on a bad input becomes a
`DicomInputError` naming the source and the reason; reasons never contain patient data.
"""

from __future__ import annotations

import io
import itertools
import logging
import math
import multiprocessing
import os
import warnings
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Union

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, get_decoder, pixel_array
from pydicom.uid import UID, AllTransferSyntaxes, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from radz_engine.errors import DicomInputError, RadzInputWarning
from radz_engine.io.dicom_header import NativeDataset, native_syntax, read_native
from radz_engine.preprocessing.pixel_spec import VOI_FUNCTIONS, PixelSpec

__all__ = [
    "DicomImage",
    "DicomSource",
    "METADATA_KEYS",
    "dicom_spec",
    "native_j2k_available",
    "native_jpeg_available",
    "read_dicom",
    "read_dicom_many",
]

log = logging.getLogger(__name__)

DicomSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, Dataset]

# What a caller may need to route or audit a result. Deliberately no patient name, ID or dates.
METADATA_KEYS = (
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPClassUID",
    "Modality",
    "PhotometricInterpretation",
    "Rows",
    "Columns",
    "BitsStored",
    "BitsAllocated",
    "PixelRepresentation",
    "TransferSyntaxUID",
    "ViewPosition",
    "BodyPartExamined",
    "NumberOfFrames",
)
FRAME_POLICIES = ("first", "error")
PADDING_AFTER_MODALITY_LUT = -1.0
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_BT601 = np.array([0.299, 0.587, 0.114])
_FLOAT32_EXACT_INT = 2**24  # every integer up to this is exact in float32
_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420", "PALETTE COLOR")


@dataclass(frozen=True, eq=False)
class DicomImage:
    """One decoded DICOM frame.

    Attributes:
        pixels: 2-D stored values, uint8 / uint16 / int16 / float32.
        spec: how the stored values become intensities (see `PixelSpec`).
        metadata: the tags named in `METADATA_KEYS` as plain Python values (None if absent).
        source: the file name, or "<bytes>" / "<Dataset>".
    """

    pixels: np.ndarray
    spec: PixelSpec
    metadata: dict
    source: str


def read_dicom(
    source: DicomSource,
    *,
    frame: str = "first",
    max_pixels: int = 50_000_000,
    max_side: int = 16384,
    min_size: int | None = None,
) -> DicomImage:
    """Read one DICOM image (a path, the file's bytes, or a pydicom Dataset).

    Args:
        frame: "first" returns frame 0 of a multi-frame object; "error" rejects multi-frame.
        max_pixels, max_side: limits on Rows * Columns and on each side, checked before any
            pixel data is decoded (protects workers from absurd or hostile headers).
        min_size: the side the consumer resizes to (the model's input size). JPEG 2000 / HTJ2K
            frames are then decoded at a reduced resolution whose sides stay >= min_size (C++
            core, OpenJPEG); None decodes every syntax at full resolution.

    Raises:
        DicomInputError: the input is not DICOM, has no or truncated pixel data, needs a
            decoder that is not installed, is too large, or cannot be decoded.
    Warns:
        RadzInputWarning: colour converted to luminance, or unusable VOI/padding tags ignored.
    """
    if frame not in FRAME_POLICIES:
        raise ValueError(f"frame: must be one of {FRAME_POLICIES}, got {frame!r}")
    name = _source_name(source)
    notes: list[str] = []
    try:
        # pydicom reports some damage (e.g. truncated encapsulated data) only as warnings, and
        # warns about harmless vendor quirks; capture them so that neither depends on the
        # caller's warning filters. Our own warnings are issued after this block.
        # (catch_warnings is process-wide: concurrent threads' warnings may land here too.)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            image = _read_native(source, name, frame, max_pixels, max_side, notes)
            if image is None:
                ds = _open(source, name)
                _check_not_truncated(caught, name)
                image = _decode(ds, name, frame, max_pixels, max_side, notes, min_size)
    except DicomInputError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # anything pydicom / numpy / a plugin throws on a bad file
        raise DicomInputError(name, f"cannot read ({_describe(exc)})") from exc
    for item in caught:
        log.debug("%s: pydicom: %s", name, _scrub(_short(item.message)))
    for note in notes:
        warnings.warn(f"{name}: {note}", RadzInputWarning, stacklevel=2)
    return image


def dicom_spec(ds: Dataset) -> PixelSpec:
    """The `PixelSpec` for the pixels that `read_dicom(ds)` returns, from the tags alone.

    For grayscale images these are the stored values; with a Modality LUT Sequence they are the
    LUT output (float32), and for colour images the luminance (float32).
    """
    name = _source_name(ds)
    notes: list[str] = []
    try:
        spec = _spec_from_tags(ds, name, notes)
    except DicomInputError:
        raise
    except Exception as exc:
        raise DicomInputError(name, f"cannot read pixel tags ({_describe(exc)})") from exc
    for note in notes:
        warnings.warn(f"{name}: {note}", RadzInputWarning, stacklevel=2)
    return spec


def read_dicom_many(
    sources: Iterable[DicomSource],
    *,
    workers: int = 0,
    frame: str = "first",
    max_pixels: int = 50_000_000,
    max_side: int = 16384,
) -> list[DicomImage | DicomInputError]:
    """Read many DICOM inputs; a bad one gives its `DicomInputError` in its place, in order.

    Args:
        workers: 0 reads in this process; > 0 uses a ProcessPoolExecutor with that many
            workers (decoding JPEG 2000 is CPU-bound and holds the GIL in parts). Workers are
            spawned, not forked: forking a process that runs C++ thread pools can deadlock.
            Warnings raised in workers are re-issued here, in input order.
    """
    options = {"frame": frame, "max_pixels": max_pixels, "max_side": max_side}
    sources = list(sources)
    if workers <= 0:
        return [_read_or_error(s, options, capture=False)[0] for s in sources]
    out = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for result, messages in pool.map(_read_or_error, sources, itertools.repeat(options), itertools.repeat(True)):
            for message in messages:
                warnings.warn(message, RadzInputWarning, stacklevel=2)
            out.append(result)
    return out


def _read_or_error(source, options: dict, capture: bool):
    if not capture:
        try:
            return read_dicom(source, **options), []
        except DicomInputError as exc:
            return exc, []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RadzInputWarning)
        try:
            result = read_dicom(source, **options)
        except DicomInputError as exc:
            result = exc
    messages = [str(w.message) for w in caught if issubclass(w.category, RadzInputWarning)]
    return result, messages


# --- opening and decoding ------------------------------------------------------------------


def _source_name(source) -> str:
    if isinstance(source, Dataset):
        return "<Dataset>"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    try:
        path = os.fspath(source)
    except TypeError:
        raise TypeError(f"source: need a path, bytes or pydicom Dataset, got {type(source).__name__}") from None
    return path.decode(errors="replace") if isinstance(path, bytes) else path


def _open(source, name: str) -> Dataset:
    if isinstance(source, Dataset):
        return source
    target = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        return pydicom.dcmread(target, force=False)
    except InvalidDicomError as exc:
        # DICOM without the 128-byte preamble (older archives write it so): taken only when
        # pydicom can read it and it names its SOP class, so random bytes are not "DICOM".
        dataset = _read_without_preamble(target)
        if dataset is None:
            raise DicomInputError(name, "not a DICOM file (no 'DICM' marker after the 128-byte preamble)") from exc
        return dataset
    except OSError as exc:
        raise DicomInputError(name, f"cannot open ({exc.strerror or type(exc).__name__})") from exc
    except EOFError as exc:
        raise DicomInputError(name, "truncated file (ends inside the header)") from exc


def _pydicom_defaults() -> bool:
    """The native reader converts values as pydicom does with its default settings; a caller who
    changed them (strict validation, None for empty text, numpy DS/IS) keeps pydicom's reading."""
    config = pydicom.config
    return (
        config.settings.reading_validation_mode != config.RAISE
        and not config.use_none_as_empty_text_VR_value
        and not config.use_DS_numpy
        and not config.use_IS_numpy
    )


_HEAD_BYTES = 65536  # enough for the preamble and any real file meta group


class _NeedsPydicom(Exception):
    """The native header was read, but the pixels need pydicom."""


def _read_native(source, name: str, frame: str, max_pixels: int, max_side: int, notes: list) -> DicomImage | None:
    """A plain uncompressed little-endian file read without pydicom (`io.dicom_header`), or None
    for pydicom to read it. Errors in the tags are raised as on the pydicom path."""
    if isinstance(source, Dataset) or not _pydicom_defaults():
        return None
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        try:
            with open(source, "rb") as handle:
                if not native_syntax(handle.read(_HEAD_BYTES)):
                    return None  # compressed or odd: pydicom reads it, and only pydicom
                handle.seek(0)
                data = handle.read()
        except OSError:
            return None  # pydicom reports it
    ds = read_native(data)
    if ds is None:
        return None
    try:
        return _decode(ds, name, frame, max_pixels, max_side, notes)
    except _NeedsPydicom:
        notes.clear()
        return None


def _read_without_preamble(target) -> Dataset | None:
    if hasattr(target, "seek"):
        target.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(target, force=True)
    except Exception:  # noqa: BLE001 - whatever force=True trips on, it is not DICOM for us
        return None
    if "SOPClassUID" not in dataset or "Rows" not in dataset:
        return None
    if "TransferSyntaxUID" not in getattr(dataset, "file_meta", {}):
        # No file meta either: the encoding pydicom detected is the transfer syntax (native only).
        implicit, little = dataset.original_encoding
        dataset.file_meta = getattr(dataset, "file_meta", None) or FileMetaDataset()
        dataset.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
    return dataset


def _check_not_truncated(caught, name: str) -> None:
    # pydicom drops an encapsulated Pixel Data element whose delimiter is missing and only warns.
    for item in caught:
        if "End of file reached before delimiter" in str(item.message):
            raise DicomInputError(name, "truncated file (encapsulated pixel data ends before its delimiter)")


def _decode(
    ds: Dataset, name: str, frame: str, max_pixels: int, max_side: int, notes: list, min_size: int | None = None
) -> DicomImage:
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        raise DicomInputError(name, "no PixelData element (not an image, or the file is truncated)")
    rows, columns = _int_tag(ds, "Rows"), _int_tag(ds, "Columns")
    if not rows or not columns:
        raise DicomInputError(name, f"Rows/Columns missing or zero ({rows} x {columns})")
    if rows > max_side or columns > max_side:
        raise DicomInputError(name, f"image too large: {rows} x {columns} exceeds max_side {max_side}")
    if rows * columns > max_pixels:
        raise DicomInputError(name, f"image too large: {rows} x {columns} exceeds max_pixels {max_pixels}")
    frames = _int_tag(ds, "NumberOfFrames") or 1
    if frames > 1 and frame == "error":
        raise DicomInputError(name, f"multi-frame object ({frames} frames) and frame='error'")
    tsuid = _transfer_syntax(ds, name)
    _check_decoder(tsuid, name)

    arr = None
    if min_size and tsuid in _J2K_SYNTAXES:
        arr = _reduced_j2k(ds, tsuid, frames, min_size)
    elif min_size and tsuid == _JPEG_BASELINE:
        arr = _scaled_jpeg(ds, frames, min_size)
    try:
        # Unused high bits are left as stored: every consumer masks to BitsStored (the C++ core, the
        # numpy reference); pydicom's own pass over the array costs ~20% of a native decode.
        if arr is None:
            arr = _native_frame(ds, tsuid, rows, columns, frames)
        if arr is None:
            if isinstance(ds, NativeDataset):
                raise _NeedsPydicom
            arr = pixel_array(ds, index=0, correct_unused_bits=False)
    except _NeedsPydicom:
        raise
    except ValueError as exc:
        if "less than expected" in str(exc):
            raise DicomInputError(name, "truncated pixel data (fewer bytes than Rows x Columns x frames need)") from exc
        raise DicomInputError(name, f"cannot decode {tsuid.name} pixel data ({_scrub(_short(exc))})") from exc
    except Exception as exc:
        raise DicomInputError(name, f"cannot decode {tsuid.name} pixel data ({_describe(exc)})") from exc

    photometric = _photometric(ds)
    colour_bits = None
    if photometric == "PALETTE COLOR" and arr.ndim == 2:
        arr = apply_color_lut(arr, ds)
        colour_bits = arr.dtype.itemsize * 8  # the palette's output range, not BitsStored
    if arr.ndim == 3 and arr.shape[-1] == 3:
        pixels = _colour_to_grey(arr, photometric, notes)
    elif arr.ndim == 2:
        pixels = _to_supported_dtype(arr, ds, name)
        if "ModalityLUTSequence" in ds and len(ds.ModalityLUTSequence):
            pixels = _apply_modality_lut(pixels, ds, name)
    else:
        raise DicomInputError(name, f"unexpected decoded shape {arr.shape} for {photometric}")
    spec = _spec_from_tags(ds, name, notes, pixels=pixels, colour_bits=colour_bits)
    return DicomImage(pixels=pixels, spec=spec, metadata=_metadata(ds, tsuid, frames), source=name)


_NATIVE_LITTLE_ENDIAN = frozenset((ExplicitVRLittleEndian, ImplicitVRLittleEndian))


def _native_frame(ds: Dataset, tsuid: UID, rows: int, columns: int, frames: int) -> np.ndarray | None:
    """Frame 0 of uncompressed little-endian grayscale pixel data, read straight from the element's
    bytes: what pixel_array(ds, index=0, correct_unused_bits=False) returns there, without its
    option handling (~1 ms per 512-px file, a third of reading it). None for any other layout,
    a missing or inconsistent pixel tag, or fewer bytes than all `frames` need: pydicom then
    decodes or refuses with its own message (truncated files stay errors)."""
    if tsuid not in _NATIVE_LITTLE_ENDIAN or "PixelData" not in ds:
        return None
    if _int_tag(ds, "SamplesPerPixel") != 1 or _photometric(ds) not in ("MONOCHROME1", "MONOCHROME2"):
        return None
    bits, stored = _int_tag(ds, "BitsAllocated"), _int_tag(ds, "BitsStored")
    representation = _int_tag(ds, "PixelRepresentation")
    if bits not in (8, 16) or stored is None or not 1 <= stored <= bits or representation not in (0, 1):
        return None
    data = ds.PixelData
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return None
    dtype = np.dtype(f"<{'i' if representation else 'u'}{bits // 8}")
    if len(data) < rows * columns * dtype.itemsize * frames:
        return None
    return np.frombuffer(data, dtype=dtype, count=rows * columns).reshape(rows, columns).copy()


_J2K_SYNTAXES = frozenset(
    UID(uid)
    for uid in (
        "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
        "1.2.840.10008.1.2.4.91",  # JPEG 2000
        "1.2.840.10008.1.2.4.201",  # HTJ2K Lossless
        "1.2.840.10008.1.2.4.202",  # HTJ2K Lossless RPCL
        "1.2.840.10008.1.2.4.203",  # HTJ2K
    )
)


_JPEG_BASELINE = UID("1.2.840.10008.1.2.4.50")


def native_jpeg_available() -> bool:
    """True when the C++ core was built with libjpeg (DCT-scaled JPEG baseline decoding)."""
    try:
        from radz_engine import _core
    except ImportError:
        return False
    return bool(getattr(_core, "HAVE_LIBJPEG", False))


def _scaled_jpeg(ds: Dataset, frames: int, min_size: int) -> np.ndarray | None:
    """Frame 0 of an 8-bit grayscale JPEG baseline image, DCT-scaled by the core, or None for
    pydicom to decode it (no libjpeg in the build, colour, or data libjpeg rejects)."""
    if not native_jpeg_available():
        return None
    if (_int_tag(ds, "SamplesPerPixel") or 1) != 1 or _photometric(ds) not in ("MONOCHROME1", "MONOCHROME2"):
        return None
    if _int_tag(ds, "BitsAllocated") != 8 or _int_tag(ds, "PixelRepresentation") == 1 or "PixelData" not in ds:
        return None
    from pydicom.encaps import get_frame

    from radz_engine import _core

    try:
        arr, _denom = _core.jpeg_decode(get_frame(ds.PixelData, 0, number_of_frames=frames), int(min_size))
    except Exception:  # noqa: BLE001 - pydicom decodes it (or names the problem) instead
        return None
    return arr


def native_j2k_available() -> bool:
    """True when the C++ core was built with OpenJPEG (reduced-resolution JPEG 2000 decoding)."""
    try:
        from radz_engine import _core
    except ImportError:
        return False
    return bool(getattr(_core, "HAVE_OPENJPEG", False))


def _reduced_j2k(ds: Dataset, tsuid: UID, frames: int, min_size: int) -> np.ndarray | None:
    """Frame 0 decoded by the core at a reduced resolution, or None for pydicom to decode it
    (no OpenJPEG in the build, colour, unusual bit layouts, or data OpenJPEG rejects: pydicom then
    gives the usual error)."""
    if not native_j2k_available():
        return None
    if (_int_tag(ds, "SamplesPerPixel") or 1) != 1 or _photometric(ds) not in ("MONOCHROME1", "MONOCHROME2"):
        return None
    allocated, signed = _int_tag(ds, "BitsAllocated"), _int_tag(ds, "PixelRepresentation") == 1
    if allocated not in (8, 16) or "PixelData" not in ds:
        return None
    from pydicom.encaps import get_frame

    from radz_engine import _core

    try:
        data = get_frame(ds.PixelData, 0, number_of_frames=frames)
        arr, _reduce, precision = _core.j2k_decode(data, int(min_size))
    except Exception:  # noqa: BLE001 - pydicom decodes it (or names the problem) instead
        return None
    if (arr.dtype == np.int16) != signed or precision > allocated:
        return None  # the codestream disagrees with the tags: pydicom's rules resolve that
    if allocated == 16 and arr.dtype == np.uint8:
        arr = arr.astype(np.uint16)
    return arr


def _transfer_syntax(ds: Dataset, name: str) -> UID:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if not uid:
        raise DicomInputError(name, "no TransferSyntaxUID in the file meta information")
    text = str(uid)
    return _KNOWN_SYNTAXES.get(text) or UID(text)  # UID() validates by regex: ~20 us a file


_KNOWN_SYNTAXES = {str(uid): uid for uid in AllTransferSyntaxes}


def _check_decoder(tsuid: UID, name: str) -> None:
    try:
        decoder = get_decoder(tsuid)
    except NotImplementedError:
        raise DicomInputError(name, f"unsupported transfer syntax {tsuid} ({tsuid.name})") from None
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "a pydicom pixel data plugin"
        raise DicomInputError(
            name,
            f"no decoder installed for {tsuid.name} ({tsuid}); install one of: {missing} "
            "(e.g. pip install 'radz-engine[dicom]')",
        )


# --- pixel values --------------------------------------------------------------------------


def _to_supported_dtype(arr: np.ndarray, ds: Dataset, name: str) -> np.ndarray:
    """Grayscale stored values -> uint8 / uint16 / int16 / float32 without changing any value."""
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if arr.dtype in (np.uint8, np.uint16, np.int16):
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8)
    if arr.dtype == np.int8:
        return arr.astype(np.int16)
    if kind == "f":
        if not np.all(np.isfinite(arr)):
            raise DicomInputError(name, "float pixel data contains NaN or Inf")
        if size > 4 and arr.size and np.abs(arr).max() > np.finfo(np.float32).max:
            raise DicomInputError(name, "float pixel data exceeds the float32 range")
        return arr.astype(np.float32, copy=False)
    if kind in "iu":
        # 32/64-bit integers: apply BitsStored here so the range test sees the real values.
        values = _stored_values(arr, _int_tag(ds, "BitsStored") or 0)
        low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
        if low >= 0 and high <= np.iinfo(np.uint16).max:
            return values.astype(np.uint16)
        if low >= np.iinfo(np.int16).min and high <= np.iinfo(np.int16).max:
            return values.astype(np.int16)
        if max(-low, high) <= _FLOAT32_EXACT_INT:
            return values.astype(np.float32)
        raise DicomInputError(name, f"pixel values {low}..{high} do not fit uint16/int16/float32 exactly")
    raise DicomInputError(name, f"unsupported decoded pixel dtype {arr.dtype}")


def _stored_values(arr: np.ndarray, bits_stored: int) -> np.ndarray:
    """Integer pixels masked (unsigned) or sign-extended (signed) to BitsStored, as int64."""
    width = arr.dtype.itemsize * 8
    if arr.dtype.kind not in "iu" or bits_stored == 0 or bits_stored >= width:
        return arr.astype(np.int64)
    masked = arr.view(np.dtype(f"u{arr.dtype.itemsize}")).astype(np.int64) & ((1 << bits_stored) - 1)
    if arr.dtype.kind == "i":
        sign = 1 << (bits_stored - 1)
        masked = (masked ^ sign) - sign
    return masked


def _apply_modality_lut(pixels: np.ndarray, ds: Dataset, name: str) -> np.ndarray:
    """Modality LUT Sequence (first item) -> float32 modality values; padding -> -1."""
    item = ds.ModalityLUTSequence[0]
    entries, first, _bits = _lut_descriptor(item, ds, name, "ModalityLUTSequence")
    lut = _lut_data(item, ds, entries)
    if lut.size == 0:
        raise DicomInputError(name, "ModalityLUTSequence has an empty LUTData")
    values = _stored_values(pixels, _int_tag(ds, "BitsStored") or 0)
    out = lut[np.clip(values - first, 0, lut.size - 1)].astype(np.float32)
    padding = _padding_tags(ds, name, [])
    if padding is not None:
        low, high = padding if padding[1] is not None else (padding[0], padding[0])
        low, high = sorted((low, high))
        out[(values >= low) & (values <= high)] = PADDING_AFTER_MODALITY_LUT
    return out


def _colour_to_grey(arr: np.ndarray, photometric: str, notes: list) -> np.ndarray:
    if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
        grey = np.ascontiguousarray(arr[..., 0])  # grey stored as colour: nothing to convert
        return grey if grey.dtype in (np.uint8, np.uint16) else grey.astype(np.float32)
    notes.append(f"{photometric} image converted to luminance (ITU-R BT.601 weights)")
    return (arr.astype(np.float64) @ _BT601).astype(np.float32)


# --- the spec ------------------------------------------------------------------------------


def _spec_from_tags(
    ds: Dataset, name: str, notes: list, pixels: np.ndarray | None = None, colour_bits: int | None = None
) -> PixelSpec:
    photometric = _photometric(ds)
    if photometric in _COLOUR or (_int_tag(ds, "SamplesPerPixel") or 1) > 1:
        return _colour_spec(ds, colour_bits)
    is_float = pixels is not None and pixels.dtype == np.float32
    modality_lut = "ModalityLUTSequence" in ds and len(ds.ModalityLUTSequence) > 0
    fields: dict = {"invert": photometric == "MONOCHROME1"}
    if modality_lut:
        padding = _padding_tags(ds, name, notes)
        fields.update(bits_stored=0)
        if padding is not None:
            fields["padding_value"] = PADDING_AFTER_MODALITY_LUT
    else:
        fields["bits_stored"] = 0 if is_float else (_int_tag(ds, "BitsStored") or 0)
        slope = _number(_frame_tag(ds, "RescaleSlope", "PixelValueTransformationSequence"))
        intercept = _number(_frame_tag(ds, "RescaleIntercept", "PixelValueTransformationSequence"))
        fields["rescale_slope"] = 1.0 if slope is None else slope
        fields["rescale_intercept"] = 0.0 if intercept is None else intercept
        padding = _padding_tags(ds, name, notes)
        if padding is not None:
            fields["padding_value"], fields["padding_limit"] = padding
    fields.update(_voi_fields(ds, name, notes))
    try:
        return PixelSpec(**fields)
    except ValueError as exc:
        raise DicomInputError(name, f"invalid pixel tags ({exc})") from exc


def _colour_spec(ds: Dataset, bits: int | None = None) -> PixelSpec:
    """Full range of the stored bits onto [0, 1]; for 8 bits this equals `spec_for_8bit()`."""
    if not bits and _photometric(ds) == "PALETTE COLOR":
        bits = 8 if (_lut_bits_of_palette(ds) or 8) <= 8 else 16  # apply_color_lut's output
    elif not bits:
        bits = _int_tag(ds, "BitsStored") or 8
    top = float(2**bits - 1)
    return PixelSpec(window_center=top / 2.0, window_width=top, voi_function="LINEAR_EXACT")


def _lut_bits_of_palette(ds: Dataset) -> int | None:
    descriptor = ds.get("RedPaletteColorLookupTableDescriptor")
    return int(descriptor[2]) if descriptor is not None and len(descriptor) == 3 else None


def _voi_fields(ds: Dataset, name: str, notes: list) -> dict:
    """VOI LUT Sequence (first item) wins over WindowCenter/Width (first value)."""
    sequence = ds.get("VOILUTSequence")
    if sequence:
        lut_fields = _voi_lut(sequence[0], ds, name, notes)
        if lut_fields:
            return lut_fields
    center = _number(_frame_tag(ds, "WindowCenter", "FrameVOILUTSequence"))
    width = _number(_frame_tag(ds, "WindowWidth", "FrameVOILUTSequence"))
    if center is None and width is None:
        return {}
    function = str(_frame_tag(ds, "VOILUTFunction", "FrameVOILUTSequence") or "LINEAR").strip().upper()
    if function not in VOI_FUNCTIONS:
        notes.append(f"unknown VOILUTFunction {function!r} treated as LINEAR")
        function = "LINEAR"
    usable = center is not None and width is not None and math.isfinite(center) and math.isfinite(width)
    if not usable or not (width >= 1.0 if function == "LINEAR" else width > 0.0):
        notes.append(f"unusable window (center {center}, width {width}, {function}) ignored; min-max used")
        return {}
    return {"window_center": center, "window_width": width, "voi_function": function}


def _voi_lut(item: Dataset, ds: Dataset, name: str, notes: list) -> dict:
    if "LUTDescriptor" not in item or "LUTData" not in item:
        notes.append("VOILUTSequence item without LUTDescriptor/LUTData ignored")
        return {}
    entries, first, bits = _lut_descriptor(item, ds, name, "VOILUTSequence")
    lut = _lut_data(item, ds, entries)
    if lut.size == 0:
        notes.append("VOILUTSequence with empty LUTData ignored")
        return {}
    needed = max(1, int(lut.max()).bit_length())
    if not 1 <= bits <= 16 or needed > bits:
        # Some writers declare 8 bits and store 16-bit entries; trust the data's range.
        notes.append(f"VOI LUT entries need {needed} bits but LUTDescriptor says {bits}; using {needed}")
        bits = needed
    return {"voi_lut": lut.astype(np.uint16), "voi_lut_first": first, "voi_lut_bits": bits}


def _lut_descriptor(item: Dataset, ds: Dataset, name: str, where: str) -> tuple[int, int, int]:
    descriptor = item.get("LUTDescriptor")
    if descriptor is None or len(descriptor) != 3:
        raise DicomInputError(name, f"{where}: LUTDescriptor must have 3 values")
    entries, first, bits = (int(v) for v in descriptor)
    entries = entries or 65536  # the standard's encoding of 2**16 entries
    # First value mapped is US or SS depending on the pixel representation; an SS value read
    # as US (implicit VR, hand-built datasets) arrives as its two's complement.
    if _int_tag(ds, "PixelRepresentation") == 1 and first >= 32768:
        first -= 65536
    return entries, first, bits


def _lut_data(item: Dataset, ds: Dataset, entries: int) -> np.ndarray:
    data = item.LUTData
    if isinstance(data, (bytes, bytearray)):  # VR OW: 16-bit words in the dataset's byte order
        little = getattr(ds, "original_encoding", (None, True))[1]
        meta = getattr(ds, "file_meta", None)
        if meta is not None and meta.get("TransferSyntaxUID"):
            little = UID(str(meta.TransferSyntaxUID)).is_little_endian
        lut = np.frombuffer(bytes(data)[: len(data) // 2 * 2], dtype="<u2" if little is not False else ">u2")
    else:
        lut = np.asarray(data if isinstance(data, (list, MultiValue)) else [data], dtype=np.int64)
    return lut[:entries].astype(np.int64)


def _padding_tags(ds: Dataset, name: str, notes: list) -> tuple[float, float | None] | None:
    """PixelPaddingValue / RangeLimit as stored values (same bit handling as the pixels)."""
    value, limit = ds.get("PixelPaddingValue"), ds.get("PixelPaddingRangeLimit")
    if value is None:
        if limit is not None:
            notes.append("PixelPaddingRangeLimit without PixelPaddingValue ignored")
        return None
    converted = [None if v is None else _as_stored(int(v), ds) for v in (value, limit)]
    return float(converted[0]), (None if converted[1] is None else float(converted[1]))


def _as_stored(value: int, ds: Dataset) -> int:
    """A US/SS tag value -> the stored value it denotes after BitsStored masking / sign extension."""
    allocated = _int_tag(ds, "BitsAllocated") or 16
    stored = _int_tag(ds, "BitsStored") or allocated
    bits = min(stored, allocated)
    value &= (1 << max(allocated, 16)) - 1  # an SS value read as negative -> its bit pattern
    value &= (1 << bits) - 1
    if _int_tag(ds, "PixelRepresentation") == 1 and value & (1 << (bits - 1)):
        value -= 1 << bits
    return value


# --- tag helpers ---------------------------------------------------------------------------


def _frame_tag(ds: Dataset, keyword: str, group: str):
    """A tag from the top level, else from the shared or first per-frame functional group."""
    if keyword in ds:
        return ds.get(keyword)
    for sequence_name in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        groups = ds.get(sequence_name)
        if groups and group in groups[0] and len(groups[0][group].value) and keyword in groups[0][group].value[0]:
            return groups[0][group].value[0].get(keyword)
    return None


def _number(value) -> float | None:
    """First value of a (possibly multi-valued, possibly empty) numeric tag, or None."""
    if isinstance(value, (MultiValue, list, tuple)):
        value = value[0] if len(value) else None
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return float(value)


def _int_tag(ds: Dataset, keyword: str) -> int | None:
    value = ds.get(keyword)
    if isinstance(value, (MultiValue, list, tuple)):
        value = value[0] if len(value) else None
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return int(value)


def _photometric(ds: Dataset) -> str:
    return str(ds.get("PhotometricInterpretation", "") or "").strip().upper()


def _metadata(ds: Dataset, tsuid: UID, frames: int) -> dict:
    out = {}
    for keyword in METADATA_KEYS:
        value = ds.get(keyword)
        if isinstance(value, MultiValue):
            value = [_plain(v) for v in value]
        out[keyword] = _plain(value)
    out["TransferSyntaxUID"] = str(tsuid)
    out["NumberOfFrames"] = frames
    return out


def _plain(value):
    if value is None or isinstance(value, (list, bool)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {_scrub(_short(exc))}"


def _scrub(text: str) -> str:
    """Withhold a library message that may quote a patient-module value (group 0010)."""
    if "(0010," in text or "Patient" in text:
        return "details withheld: the message concerns a patient attribute"
    return text


def _short(message, limit: int = 300) -> str:
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
