"""What the engine accepts as an image, turned into stored pixels + PixelSpec + metadata.

Accepted: a file path (DICOM, PNG, JPEG; chosen by content), a pydicom Dataset, bytes of such a
file, a 2-D numpy array of stored values (min-max to intensities unless a spec is given), a
(pixels, PixelSpec) pair, or an already decoded DicomImage / RasterImage. Bad inputs raise
RadzInputError naming the source; the engine turns that into a Result with `error` set.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from radz_engine.errors import RadzInputError
from radz_engine.preprocessing.pixel_spec import PixelSpec

__all__ = ["Decoded", "decode", "source_name", "is_single_image"]


@dataclass
class Decoded:
    pixels: np.ndarray
    spec: PixelSpec | None
    source: str
    metadata: dict = field(default_factory=dict)
    decode_ms: float = 0.0


def _is_dataset(item) -> bool:
    try:
        from pydicom.dataset import Dataset
    except ImportError:  # pragma: no cover - pydicom is a runtime dependency
        return False
    return isinstance(item, Dataset)


def is_single_image(item) -> bool:
    """True when `item` is one image rather than a sequence of images."""
    if isinstance(item, (str, os.PathLike, bytes, bytearray, memoryview)) or _is_dataset(item):
        return True
    if isinstance(item, np.ndarray):
        return item.ndim == 2
    if (
        isinstance(item, tuple)
        and len(item) == 2
        and isinstance(item[1], (PixelSpec, type(None)))
        and isinstance(item[0], np.ndarray)
    ):
        return True
    return hasattr(item, "pixels") and hasattr(item, "spec")


def source_name(item, index: int | None = None) -> str:
    """A name for results: the path, or "<array N>" / "<Dataset>" / "<bytes>"."""
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    suffix = "" if index is None else f" {index}"
    if _is_dataset(item):
        return f"<Dataset{suffix}>"
    if isinstance(item, (bytes, bytearray, memoryview)):
        return f"<bytes{suffix}>"
    if hasattr(item, "source") and hasattr(item, "pixels"):
        return str(item.source)
    return f"<array{suffix}>"


def decode(item, index: int | None = None, min_size: int | None = None) -> Decoded:
    """One input -> Decoded. Raises RadzInputError (a ValueError) naming the source.

    `min_size`: the model's input side; a JPEG 2000 / HTJ2K DICOM is then decoded at a reduced
    resolution whose sides stay >= min_size (see `read_dicom`). None: full resolution."""
    start = time.perf_counter()
    name = source_name(item, index)
    if isinstance(item, (str, os.PathLike, bytes, bytearray, memoryview)) or _is_dataset(item):
        from radz_engine.io.images import read_any

        image = read_any(item, min_size=min_size)
        pixels, spec, metadata = image.pixels, image.spec, dict(image.metadata)
    elif isinstance(item, np.ndarray):
        pixels, spec, metadata = item, None, {}
    elif isinstance(item, tuple) and len(item) == 2:
        pixels, spec, metadata = item[0], item[1], {}
        if spec is not None and not isinstance(spec, PixelSpec):
            raise RadzInputError(
                name, f"(pixels, spec): spec must be a radz_engine.PixelSpec, got {type(spec).__name__}"
            )
    elif hasattr(item, "pixels") and hasattr(item, "spec"):
        pixels, spec, metadata = item.pixels, item.spec, dict(getattr(item, "metadata", {}) or {})
    else:
        raise RadzInputError(
            name,
            f"unsupported input type {type(item).__name__} (need a path, pydicom Dataset, "
            "bytes, 2-D numpy array or (pixels, PixelSpec))",
        )
    if not isinstance(pixels, np.ndarray) or pixels.ndim != 2 or pixels.size == 0:
        shape = getattr(pixels, "shape", None)
        raise RadzInputError(name, f"need a non-empty 2-D array of stored pixels [H, W], got shape {shape}")
    if pixels.dtype.type not in (np.uint8, np.uint16, np.int16, np.float32):
        if pixels.dtype.kind in "iub" or pixels.dtype == np.float64:
            pixels = _convert(pixels, name)
        else:
            raise RadzInputError(name, f"pixel dtype {pixels.dtype} is not supported")
    return Decoded(pixels, spec, name, metadata, (time.perf_counter() - start) * 1000.0)


def _convert(pixels: np.ndarray, name: str) -> np.ndarray:
    """bool / int8 / int32 / uint32 / int64 / float64 -> a supported dtype with the same values
    where they fit (float32 otherwise, after checking the values are finite)."""
    if pixels.dtype == np.bool_:
        return pixels.astype(np.uint8)
    if pixels.dtype.kind in "iu":
        low, high = int(pixels.min()), int(pixels.max())
        if low >= 0 and high <= 65535:
            return pixels.astype(np.uint16)
        if -32768 <= low and high <= 32767:
            return pixels.astype(np.int16)
    values = pixels.astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise RadzInputError(name, "pixels contain NaN or Inf (or exceed the float32 range)")
    return values
