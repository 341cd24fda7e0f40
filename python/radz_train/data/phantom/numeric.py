"""Numeric building blocks of the renderer: pixel grids, blurs, smooth noise, soft masks.

Everything here avoids BLAS on purpose: multithreaded matmuls on small arrays are slower
than plain numpy when several generator processes share a few cores. No scipy either.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = ["angle_bins", "angle_profile", "blur", "box", "cage", "grid", "ramp", "smooth_noise"]


@lru_cache(maxsize=32)
def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(X, Y) pixel-centre coordinates in [-1, 1] of a size x size image (read-only views)."""
    c = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0).astype(np.float32)
    return np.broadcast_to(c[None, :], (size, size)), np.broadcast_to(c[:, None], (size, size))


def _blur_axis(img: np.ndarray, sigma: float, axis: int) -> np.ndarray:
    """Gaussian blur along one axis with edge padding: explicit taps for small sigma,
    three box passes (cumulative sums) for large sigma."""
    n = img.shape[axis]
    if sigma < 2.0:
        r = math.ceil(3 * sigma)
        k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
        k = (k / k.sum()).astype(np.float32)
        pad = [(0, 0), (0, 0)]
        pad[axis] = (r, r)
        p = np.pad(img, pad, mode="edge")
        out = np.zeros_like(img)
        for i, w in enumerate(k):
            out += w * (p[i : i + n] if axis == 0 else p[:, i : i + n])
        return out
    w = max(round(math.sqrt(4 * sigma * sigma + 1)), 1) | 1  # odd box width
    h = w // 2
    out = img
    for _ in range(3):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (h + 1, h)
        c = np.cumsum(np.pad(out, pad, mode="edge"), axis=axis, dtype=np.float32)
        out = ((c[w : w + n] - c[:n]) if axis == 0 else (c[:, w : w + n] - c[:, :n])) * (1.0 / w)
    return out


def box(img: np.ndarray, w: int) -> np.ndarray:
    """One separable box filter of odd width w (edge padded): cheap unsharp-mask base."""
    h, n = w // 2, img.shape[0]
    c = np.cumsum(np.pad(img, ((h + 1, h), (0, 0)), mode="edge"), axis=0, dtype=np.float32)
    out = c[w : w + n] - c[:n]
    c = np.cumsum(np.pad(out, ((0, 0), (h + 1, h)), mode="edge"), axis=1, dtype=np.float32)
    return (c[:, w : w + n] - c[:, :n]) * (1.0 / (w * w))


def blur(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Separable Gaussian blur (sigma in pixels); no scipy, no BLAS."""
    if sigma_px < 0.25:
        return img
    return _blur_axis(_blur_axis(img, sigma_px, 0), sigma_px, 1)


@lru_cache(maxsize=64)
def _upsample_index(size: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation indices/weights from a k-point coarse grid to `size` points."""
    pos = (np.arange(size, dtype=np.float64) + 0.5) / size * (k - 1)
    lo = np.clip(np.floor(pos).astype(np.intp), 0, k - 2)
    return lo, (pos - lo).astype(np.float32)


def smooth_noise(rng: np.random.Generator, size: int, k: int) -> np.ndarray:
    """Smooth unit-variance-ish random field (k x k control points, bilinear interpolation)."""
    z = rng.standard_normal((k, k)).astype(np.float32)
    lo, w = _upsample_index(size, k)
    rows = z[lo] * (1 - w)[:, None] + z[lo + 1] * w[:, None]  # size x k
    return rows[:, lo] * (1 - w)[None, :] + rows[:, lo + 1] * w[None, :]


def ramp(d, eps: float):
    """Soft step of a signed distance (positive inside), antialiased over ~1 pixel."""
    t = d * np.float32(1.0 / eps)
    t += np.float32(0.5)
    if isinstance(t, np.ndarray):
        np.minimum(t, np.float32(1.0), out=t)
        np.maximum(t, np.float32(0.0), out=t)
        return t
    return min(max(t, 0.0), 1.0)


def cage(x, y):
    """Superellipse-like norm, cheap: (x^2 + x^4)/2 + (y^2 + y^4)/2 (1 on the boundary)."""
    x2, y2 = x * x, y * y
    return 0.5 * (x2 + x2 * x2 + y2 + y2 * y2)


def angle_profile(rng: np.random.Generator, n_bumps: int, width: tuple[float, float], bins: int = 1024) -> np.ndarray:
    """Circular 1-D profile of random narrow bumps: radiating line patterns (vessels, bronchi)."""
    # spikes blurred circularly in the Fourier domain, two widths: cheap and periodic
    c = rng.integers(0, bins, n_bumps)
    w = rng.uniform(*width, n_bumps)
    a = rng.uniform(0.5, 1.0, n_bumps)
    f = np.fft.rfftfreq(bins)
    prof = np.zeros(bins)
    for sel, sig in (
        (w < np.mean(width), width[0] * 0.75 + width[1] * 0.25),
        (w >= np.mean(width), width[0] * 0.25 + width[1] * 0.75),
    ):
        spikes = np.zeros(bins)
        np.add.at(spikes, c[sel], a[sel])
        g = np.fft.irfft(np.fft.rfft(spikes) * np.exp(-2 * (math.pi * sig * f) ** 2), bins)
        prof = np.maximum(prof, g * (sig * math.sqrt(2 * math.pi)))
    return np.clip(prof, 0.0, 1.0).astype(np.float32)


def angle_bins(th: np.ndarray) -> np.ndarray:
    """Angle in radians -> index into a 1024-bin `angle_profile`."""
    return ((th + math.pi) * (1024 / (2 * math.pi))).astype(np.int32) % 1024
