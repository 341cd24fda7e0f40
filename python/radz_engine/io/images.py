"""Ordinary image files (PNG, JPEG; other Pillow formats too) and `read_any`, which picks the
DICOM or the Pillow reader by looking at the content, not the file name.

Like the DICOM reader, `read_image` returns stored values plus the `PixelSpec` that maps them
to intensities: 8-bit grey -> uint8 with `spec_for_8bit()` (0..255 onto 0..1 exactly);
16-bit grey -> uint16 with min-max (`PixelSpec()`), since a 16-bit PNG says nothing about
its useful range; colour -> BT.601 luminance (float32) with a `RadzInputWarning`, unless the
three channels are identical (grey saved as RGB), which keeps channel 0 without a warning.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from radz_engine.errors import RadzInputError, RadzInputWarning
from radz_engine.io.dicom import DicomImage, read_dicom
from radz_engine.preprocessing.pixel_spec import PixelSpec, spec_for_8bit

__all__ = ["RasterImage", "read_image", "read_any", "sniff_format"]

ImageSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_BT601 = np.array([0.299, 0.587, 0.114])
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


@dataclass(frozen=True, eq=False)
class RasterImage:
    """One decoded PNG / JPEG (or other Pillow) image.

    Attributes:
        pixels: 2-D stored values, uint8 / uint16 / float32.
        spec: how the stored values become intensities.
        metadata: {"format", "mode", "width", "height"} as Pillow reports them.
        source: the file name, or "<bytes>".
    """

    pixels: np.ndarray
    spec: PixelSpec
    metadata: dict
    source: str


def read_image(source: ImageSource, *, max_pixels: int = 50_000_000, max_side: int = 16384) -> RasterImage:
    """Read a PNG / JPEG (any format Pillow opens) into stored values and a `PixelSpec`.

    Raises:
        RadzInputError: unreadable, truncated, too large (checked before decoding), or a
            pixel mode that has no grey meaning.
    Warns:
        RadzInputWarning: colour converted to luminance.
    """
    name = _source_name(source)
    notes: list[str] = []
    try:
        # Pillow warns on some damaged files; capture so behaviour does not depend on filters.
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            target = io.BytesIO(bytes(source)) if name == "<bytes>" else source
            with Image.open(target) as im:
                width, height = im.size
                if not width or not height:
                    raise RadzInputError(name, f"image has zero size ({width} x {height})")
                if width > max_side or height > max_side:
                    raise RadzInputError(name, f"image too large: {height} x {width} exceeds max_side {max_side}")
                if width * height > max_pixels:
                    raise RadzInputError(name, f"image too large: {height} x {width} exceeds max_pixels {max_pixels}")
                im.load()
                metadata = {"format": im.format, "mode": im.mode, "width": width, "height": height}
                oriented = ImageOps.exif_transpose(im)  # JPEG exports may rely on EXIF rotation
                pixels, spec = _to_grey(oriented, name, notes)
    except RadzInputError:
        raise
    except MemoryError:
        raise
    except UnidentifiedImageError as exc:
        raise RadzInputError(name, "not an image format Pillow can read") from exc
    except Image.DecompressionBombError as exc:
        raise RadzInputError(name, "image too large (Pillow decompression-bomb limit)") from exc
    except OSError as exc:
        if exc.errno is not None:  # the file system said no (missing, permission, directory)
            raise RadzInputError(name, f"cannot open ({exc.strerror or type(exc).__name__})") from exc
        raise RadzInputError(name, f"truncated or corrupt image ({_short(exc)})") from exc
    except (SyntaxError, ValueError) as exc:  # Pillow's other ways of saying "corrupt"
        raise RadzInputError(name, f"truncated or corrupt image ({_short(exc)})") from exc
    except Exception as exc:
        raise RadzInputError(name, f"cannot read image ({type(exc).__name__}: {_short(exc)})") from exc
    for note in notes:
        warnings.warn(f"{name}: {note}", RadzInputWarning, stacklevel=2)
    return RasterImage(pixels=pixels, spec=spec, metadata=metadata, source=name)


def sniff_format(head: bytes) -> str | None:
    """ "dicom" (preamble + "DICM"), "png", "jpeg" from the first 132 bytes, else None."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(_PNG_MAGIC):
        return "png"
    if head.startswith(_JPEG_MAGIC):
        return "jpeg"
    return None


def read_any(
    source,
    *,
    frame: str = "first",
    max_pixels: int = 50_000_000,
    max_side: int = 16384,
    min_size: int | None = None,
) -> DicomImage | RasterImage:
    """Read DICOM, PNG or JPEG, chosen by content. A pydicom Dataset goes to `read_dicom`.
    `min_size` (DICOM only): see `read_dicom` (JPEG 2000 decoded at a reduced resolution).

    Returns a `DicomImage` or a `RasterImage`; both have `pixels`, `spec`, `metadata`, `source`.
    Raises `RadzInputError` (`DicomInputError` for DICOM) for anything unreadable.
    """
    from pydicom.dataset import Dataset  # pydicom is imported by .dicom already; cheap here

    if isinstance(source, Dataset):
        return read_dicom(source, frame=frame, max_pixels=max_pixels, max_side=max_side, min_size=min_size)
    name = _source_name(source)
    if name == "<bytes>":
        head = bytes(source[:132])
    else:
        try:
            with open(source, "rb") as handle:
                head = handle.read(132)
        except OSError as exc:
            raise RadzInputError(name, f"cannot open ({exc.strerror or type(exc).__name__})") from exc
    kind = sniff_format(head)
    if kind == "dicom":
        return read_dicom(source, frame=frame, max_pixels=max_pixels, max_side=max_side, min_size=min_size)
    if kind in ("png", "jpeg"):
        return read_image(source, max_pixels=max_pixels, max_side=max_side)
    if head[:2] in (b"\x02\x00", b"\x08\x00"):  # a group 0002 / 0008 tag first: DICOM without a preamble?
        return read_dicom(source, frame=frame, max_pixels=max_pixels, max_side=max_side, min_size=min_size)
    raise RadzInputError(name, "unrecognised content (not DICOM with a 'DICM' preamble, PNG or JPEG)")


def _to_grey(im: Image.Image, name: str, notes: list) -> tuple[np.ndarray, PixelSpec]:
    mode = im.mode
    if mode in ("1", "L", "LA"):
        return np.asarray(im.convert("L"), dtype=np.uint8), spec_for_8bit()
    if mode in _SIXTEEN_BIT_MODES:
        return np.asarray(im).astype(np.uint16), PixelSpec()
    if mode == "I":  # 32-bit integer grey (e.g. some 16-bit PNG/TIFF decoders)
        values = np.asarray(im, dtype=np.int64)
        low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
        if 0 <= low and high <= 65535:
            return values.astype(np.uint16), PixelSpec()
        if max(-low, high) <= 2**24:
            return values.astype(np.float32), PixelSpec()
        raise RadzInputError(name, f"pixel values {low}..{high} do not fit uint16/float32 exactly")
    if mode == "F":
        values = np.asarray(im, dtype=np.float32)
        if not np.all(np.isfinite(values)):
            raise RadzInputError(name, "float image contains NaN or Inf")
        return values, PixelSpec()
    rgb = np.asarray(im.convert("RGB"))  # P, PA, RGB(A), CMYK, YCbCr, LAB, HSV
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return np.ascontiguousarray(rgb[..., 0]), spec_for_8bit()  # grey saved as colour
    notes.append(f"{mode} image converted to luminance (ITU-R BT.601 weights)")
    return (rgb.astype(np.float64) @ _BT601).astype(np.float32), spec_for_8bit()


def _source_name(source) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    try:
        path = os.fspath(source)
    except TypeError:
        raise TypeError(f"source: need a path or bytes, got {type(source).__name__}") from None
    return path.decode(errors="replace") if isinstance(path, bytes) else path


def _short(message, limit: int = 300) -> str:
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
