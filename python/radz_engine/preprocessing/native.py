"""Fast preprocessing through the C++ core: stored pixels -> normalised [C, H, W] tensors.

Same semantics as `reference.preprocess_reference` (the test oracle). This wrapper
only cleans inputs (dtype, contiguity, shapes) and raises ValueError naming the argument.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import numpy as np

from radz_engine.preprocessing.pixel_spec import PixelSpec, to_core
from radz_engine.preprocessing.reference import ASPECTS, CLIP_MEAN, CLIP_STD

try:
    from radz_engine import _core
except ImportError as error:  # pragma: no cover - only when the package was not built
    raise ImportError(
        "radz_engine._core (the C++ extension) is missing: install the package with "
        "`pip install .` from the repository root"
    ) from error

_SUPPORTED = (np.uint8, np.uint16, np.int16, np.float32)
_OUTPUT_DTYPES = {"float32": _core.OutputType.FLOAT32, "float16": _core.OutputType.FLOAT16}
_pool_lock = threading.Lock()
_pools: dict[int, _core.ThreadPool] = {}


def default_threads() -> int:
    """Threads used by preprocess_batch when not told: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _pool(num_threads: int | None) -> _core.ThreadPool:
    n = default_threads() if not num_threads else int(num_threads)
    if n < 1:
        raise ValueError(f"num_threads: must be >= 1, got {num_threads}")
    with _pool_lock:
        if n not in _pools:
            _pools[n] = _core.ThreadPool(n)
        return _pools[n]


def core_spec(spec: PixelSpec | None) -> _core.PixelSpec:
    """Convert the Python PixelSpec (already validated) to the C++ one."""
    spec = spec or PixelSpec()
    if not isinstance(spec, PixelSpec):
        raise ValueError(f"spec: need a radz_engine.PixelSpec, got {type(spec).__name__}")
    return to_core(spec)


def output_spec(
    out_size: int | Sequence[int] = 224,
    *,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
    aspect: str = "letterbox",
    pad_value: float = 0.0,
    dtype: str = "float32",
) -> _core.OutputSpec:
    """Validated C++ OutputSpec from keyword arguments."""
    if np.isscalar(out_size):
        height = width = out_size
    else:
        size = tuple(out_size)
        if len(size) != 2:
            raise ValueError(f"out_size: need an int or (height, width), got {out_size!r}")
        height, width = size
    for name, value in (("out_size height", height), ("out_size width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name}: must be a positive int, got {value!r}")
    if aspect not in ASPECTS:
        raise ValueError(f"aspect: must be one of {ASPECTS}, got {aspect!r}")
    if dtype not in _OUTPUT_DTYPES:
        raise ValueError(f"dtype: must be one of {tuple(_OUTPUT_DTYPES)}, got {dtype!r}")
    mean = [float(m) for m in mean]
    std = [float(s) for s in std]
    spec = _core.OutputSpec()
    spec.height, spec.width = int(height), int(width)
    spec.mean, spec.std = mean, std
    spec.letterbox = aspect == "letterbox"
    spec.pad_value = float(pad_value)
    spec.dtype = _OUTPUT_DTYPES[dtype]
    spec.validate()
    return spec


_spec_cache_lock = threading.Lock()
_spec_cache: dict[tuple, _core.OutputSpec] = {}


def _output_spec_cached(out_size, mean, std, aspect, pad_value, dtype) -> _core.OutputSpec:
    """output_spec(), built once per distinct argument set (an engine asks with the same ones on
    every call); the cached specs are never modified, so threads share them."""
    size = (out_size,) if np.isscalar(out_size) else tuple(out_size)
    try:
        key = (size, tuple(float(m) for m in mean), tuple(float(v) for v in std), aspect, float(pad_value), dtype)
    except (TypeError, ValueError):  # let output_spec() name the bad argument
        return output_spec(out_size, mean=mean, std=std, aspect=aspect, pad_value=pad_value, dtype=dtype)
    with _spec_cache_lock:
        spec = _spec_cache.get(key)
    if spec is None:
        spec = output_spec(out_size, mean=mean, std=std, aspect=aspect, pad_value=pad_value, dtype=dtype)
        with _spec_cache_lock:
            if len(_spec_cache) > 64:  # arbitrary callers: keep the cache bounded
                _spec_cache.clear()
            _spec_cache[key] = spec
    return spec


def _clean_pixels(pixels, name: str) -> np.ndarray:
    if not isinstance(pixels, np.ndarray):
        raise ValueError(f"{name}: need a numpy array, got {type(pixels).__name__}")
    if pixels.ndim != 2:
        raise ValueError(f"{name}: must be 2-D [H, W], got shape {pixels.shape}")
    if pixels.size == 0:
        raise ValueError(f"{name}: empty image, shape {pixels.shape}")
    if pixels.dtype.type not in _SUPPORTED or not pixels.dtype.isnative:
        raise ValueError(f"{name}: dtype {pixels.dtype} is not supported (uint8, uint16, int16, float32)")
    if pixels.strides[1] != pixels.itemsize:
        pixels = np.ascontiguousarray(pixels)  # rows must be contiguous; row stride may be anything
    return pixels


def preprocess(
    pixels: np.ndarray,
    spec: PixelSpec | None = None,
    out_size: int | Sequence[int] = 224,
    *,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
    aspect: str = "letterbox",
    pad_value: float = 0.0,
    dtype: str = "float32",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Stored pixels [H, W] -> normalised [C, out_h, out_w] float32/float16 (C = len(mean)).

    `spec` says how stored values become intensities (DICOM rescale, VOI, MONOCHROME1, padding);
    without it the image's own min..max is stretched onto 0..1. Pass `out` to reuse a buffer.
    """
    pixels = _clean_pixels(pixels, "pixels")
    output = _output_spec_cached(out_size, mean, std, aspect, pad_value, dtype)
    if out is None:
        out = np.empty((output.channels, output.height, output.width), dtype=dtype)
    _core.preprocess(pixels, core_spec(spec), output, out)
    return out


def preprocess_batch(
    images: Sequence[np.ndarray],
    specs: PixelSpec | Sequence[PixelSpec | None] | None = None,
    out_size: int | Sequence[int] = 224,
    *,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
    aspect: str = "letterbox",
    pad_value: float = 0.0,
    dtype: str = "float32",
    out: np.ndarray | None = None,
    num_threads: int | None = None,
) -> np.ndarray:
    """Many images of any sizes -> one contiguous [B, C, H, W] array, in parallel (GIL released).

    `specs` is one PixelSpec for all images or one per image. Errors name the index.
    """
    images = list(images)
    cleaned = [_clean_pixels(img, f"images[{i}]") for i, img in enumerate(images)]
    if specs is None or isinstance(specs, PixelSpec):
        core_specs = [core_spec(specs)] * len(cleaned)
    else:
        specs = list(specs)
        if len(specs) != len(cleaned):
            raise ValueError(f"specs: need one per image ({len(cleaned)} images, {len(specs)} specs)")
        core_specs = [core_spec(s) for s in specs]
    output = _output_spec_cached(out_size, mean, std, aspect, pad_value, dtype)
    if out is None:
        out = np.empty((len(cleaned), output.channels, output.height, output.width), dtype=dtype)
    _core.preprocess_batch(cleaned, core_specs, output, out, _pool(num_threads))
    return out
