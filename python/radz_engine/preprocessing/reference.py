"""Numpy reference of the C++ preprocessing: the test oracle, written for clarity not speed.

Everything is computed in float64. The C++ core (`cpp/src/preprocess.cpp`) must agree with
`preprocess_reference` within 1e-5 on float32 output. Keep the two in step: any change of
semantics goes into both, and into the docstring of `PixelSpec`.

Geometry:
- letterbox: scale = min(out_h / h, out_w / w); the image is resized to
  (max(1, floor(h * scale + 0.5)), max(1, floor(w * scale + 0.5))), clipped to the output, and
  centred with offsets ((out_h - nh) // 2, (out_w - nw) // 2); the border gets `pad_value`.
- stretch: the image is resized to (out_h, out_w).
- Each axis is resampled on its own: area averaging when it shrinks (exact box coverage),
  bilinear with half-pixel centres and edge clamping when it grows or keeps its size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from radz_engine.preprocessing.pixel_spec import PixelSpec

SUPPORTED_DTYPES = (np.uint8, np.uint16, np.int16, np.float32)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
ASPECTS = ("letterbox", "stretch")


def stored_to_intensity(pixels: np.ndarray, spec: PixelSpec) -> np.ndarray:
    """Stored values [H, W] -> intensities in [0, 1], float64 (padding pixels -> 0)."""
    values = _apply_bits_stored(pixels, spec.bits_stored).astype(np.float64)
    padding = _padding_mask(values, spec)
    modality = values * spec.rescale_slope + spec.rescale_intercept
    if spec.voi_lut is not None:
        lut = np.asarray(spec.voi_lut, dtype=np.float64)
        index = np.floor(modality + 0.5) - spec.voi_lut_first
        index = np.clip(index, 0, lut.size - 1).astype(np.int64)
        intensity = lut[index] / float(2**spec.voi_lut_bits - 1)
        intensity = np.clip(intensity, 0.0, 1.0)
    elif spec.window_center is not None:
        intensity = _window(modality, spec.window_center, spec.window_width, spec.voi_function)
    else:
        intensity = _min_max(modality, padding)
    if spec.invert:
        intensity = 1.0 - intensity
    intensity[padding] = 0.0
    return intensity


def _apply_bits_stored(pixels: np.ndarray, bits_stored: int) -> np.ndarray:
    if pixels.dtype == np.float32:
        return pixels
    width = pixels.dtype.itemsize * 8
    if bits_stored == 0 or bits_stored >= width:
        return pixels
    as_unsigned = pixels.view(np.dtype(f"u{pixels.dtype.itemsize}")).astype(np.int64)
    masked = as_unsigned & ((1 << bits_stored) - 1)
    if pixels.dtype.kind == "i":  # sign-extend from bit bits_stored - 1
        sign = 1 << (bits_stored - 1)
        masked = (masked ^ sign) - sign
    return masked


def _padding_mask(values: np.ndarray, spec: PixelSpec) -> np.ndarray:
    if spec.padding_value is None:
        return np.zeros(values.shape, dtype=bool)
    if spec.padding_limit is None:
        return values == spec.padding_value
    low, high = sorted((spec.padding_value, spec.padding_limit))
    return (values >= low) & (values <= high)


def _window(x: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 (LINEAR, SIGMOID) and C.11.2.1.3.2 (LINEAR_EXACT), onto [0, 1]."""
    if function == "LINEAR":
        if width == 1.0:  # the standard's degenerate case: a threshold at c - 0.5
            return (x > center - 0.5).astype(np.float64)
        y = (x - (center - 0.5)) / (width - 1.0) + 0.5
    elif function == "LINEAR_EXACT":
        y = (x - center) / width + 0.5
    else:  # SIGMOID; exp overflowing to inf is the right limit (intensity 0)
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    return np.clip(y, 0.0, 1.0)


def _min_max(x: np.ndarray, padding: np.ndarray) -> np.ndarray:
    valid = x[~padding]
    if valid.size == 0:
        return np.zeros_like(x)
    low, high = valid.min(), valid.max()
    if high <= low:
        return np.zeros_like(x)
    return np.clip((x - low) / (high - low), 0.0, 1.0)


def resample_weights(n_in: int, n_out: int) -> np.ndarray:
    """Dense [n_out, n_in] matrix: area averaging when shrinking, bilinear otherwise."""
    weights = np.zeros((n_out, n_in), dtype=np.float64)
    if n_out < n_in:
        scale = n_in / n_out
        for i in range(n_out):
            start, stop = i * scale, (i + 1) * scale
            for j in range(int(np.floor(start)), min(int(np.ceil(stop)), n_in)):
                overlap = min(stop, j + 1.0) - max(start, float(j))
                if overlap > 0:
                    weights[i, j] = overlap / scale
    else:
        scale = n_in / n_out
        for i in range(n_out):
            x = min(max((i + 0.5) * scale - 0.5, 0.0), n_in - 1.0)
            j0 = int(np.floor(x))
            j1 = min(j0 + 1, n_in - 1)
            frac = x - j0
            weights[i, j0] += 1.0 - frac
            weights[i, j1] += frac
    return weights


def letterbox_geometry(h: int, w: int, out_h: int, out_w: int, aspect: str) -> tuple[int, int, int, int]:
    """(resized_h, resized_w, top, left) of the image inside the output."""
    if aspect == "stretch":
        return out_h, out_w, 0, 0
    scale = min(out_h / h, out_w / w)
    nh = min(out_h, max(1, int(np.floor(h * scale + 0.5))))
    nw = min(out_w, max(1, int(np.floor(w * scale + 0.5))))
    return nh, nw, (out_h - nh) // 2, (out_w - nw) // 2


def preprocess_reference(
    pixels: np.ndarray,
    spec: PixelSpec | None = None,
    out_size: int | Sequence[int] = 224,
    *,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
    aspect: str = "letterbox",
    pad_value: float = 0.0,
    dtype: str = "float32",
) -> np.ndarray:
    """Stored pixels [H, W] -> normalised [C, out_h, out_w] (C = len(mean))."""
    spec = spec or PixelSpec()
    out_h, out_w = (out_size, out_size) if np.isscalar(out_size) else tuple(out_size)
    pixels = np.asarray(pixels)
    if pixels.dtype.type not in SUPPORTED_DTYPES or pixels.ndim != 2 or pixels.size == 0:
        raise ValueError(
            f"pixels: need a non-empty 2-D uint8/uint16/int16/float32 array, got {pixels.dtype} {pixels.shape}"
        )
    if pixels.dtype == np.float32 and not np.all(np.isfinite(pixels)):
        raise ValueError("pixels: contains NaN or Inf")
    intensity = stored_to_intensity(pixels, spec)
    h, w = intensity.shape
    nh, nw, top, left = letterbox_geometry(h, w, out_h, out_w, aspect)
    resized = resample_weights(h, nh) @ intensity @ resample_weights(w, nw).T
    canvas = np.full((out_h, out_w), float(pad_value), dtype=np.float64)
    canvas[top : top + nh, left : left + nw] = resized
    mean_arr = np.asarray(mean, dtype=np.float64)[:, None, None]
    std_arr = np.asarray(std, dtype=np.float64)[:, None, None]
    out = (canvas[None] - mean_arr) / std_arr
    return out.astype(np.float32).astype(dtype)
