"""Acquisition-shift augmentation: the ways real sites differ, applied to STORED pixels + PixelSpec.

Training feeds the result to the runtime's own C++ preprocessing (radz_engine.preprocess_batch),
so the model sees what the deployed engine would see from a site that acquires, post-processes
and stores its radiographs differently. numpy only (no torch, no scipy); see docs/AUGMENTATION.md.

One function per shift, one table (`SHIFTS`: name, probability, parameter ranges), one entry point:

    augment(stored, spec, rng, probabilities=None) -> (stored uint16 [H', W'], PixelSpec)

Order (the physical chain): the stored pixels are decoded to display intensities in [0, 1]
(the DICOM grayscale pipeline of the PixelSpec), the "content" shifts change what the detector
and the site's processing put in the image (exposure, gamma, blur, sharpening, grid lines,
noise, collimation, burned-in markers, resolution, letterbox; the opt-in field of view and tilt
first of all), then the "storage" shifts choose
how the site stores it (VOI window / function, MONOCHROME1, bits stored and headroom) and the
intensities are encoded as uint16 stored values with a PixelSpec that displays them.

Every default shift draws one uniform number for "does it fire" in table order, whether it fires
or not (an opt-in shift, table probability 0, draws only when enabled), and then the fired shifts
draw their parameters from the same generator, in the order they apply: the result depends only
on the input and the generator's seed. No shift removes or adds a finding: the tone shifts are
global and monotonic, blur/noise/grid are mild, collimation, markers and letterbox touch only the
borders (the collimation margins are those of the phantom generator), field of view shrinks and
tilts the whole image by at most 8 degrees, so labels and their sides stay valid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from radz_engine import PixelSpec

__all__ = [
    "BASE_SPEC",
    "SHIFTS",
    "Encoding",
    "Shift",
    "augment",
    "check_probabilities",
    "compact",
    "decode",
    "encode",
]

# uint16 0..65535 displayed exactly as 0..1 (LINEAR_EXACT: y = (v - c) / w + 0.5 = v / 65535)
BASE_SPEC = PixelSpec(window_center=65535 / 2, window_width=65535.0, voi_function="LINEAR_EXACT")


# -- decoding / encoding -------------------------------------------------------------------------
def decode(stored: np.ndarray, spec: PixelSpec) -> np.ndarray:
    """Stored pixels -> display intensities in [0, 1], float32 (the PixelSpec's DICOM pipeline).

    float32 arithmetic for the usual specs (window or min-max, no padding, no VOI LUT); the
    runtime's numpy reference (float64) for anything else.
    """
    simple = (
        spec.voi_lut is None
        and spec.padding_value is None
        and (stored.dtype == np.float32 or stored.dtype.kind == "u")
        and stored.ndim == 2
    )
    if not simple:
        from radz_engine.preprocessing.reference import stored_to_intensity

        return stored_to_intensity(stored, spec).astype(np.float32)
    values = stored
    if stored.dtype.kind == "u" and 0 < spec.bits_stored < stored.dtype.itemsize * 8:
        values = stored & stored.dtype.type((1 << spec.bits_stored) - 1)
    x = values.astype(np.float32)
    if spec.rescale_slope != 1.0 or spec.rescale_intercept != 0.0:
        x = x * np.float32(spec.rescale_slope) + np.float32(spec.rescale_intercept)
    if spec.window_center is not None:
        c, w = float(spec.window_center), float(spec.window_width)
        if spec.voi_function == "SIGMOID":
            with np.errstate(over="ignore"):
                y = 1.0 / (1.0 + np.exp(np.float32(-4.0 / w) * (x - np.float32(c))))
        elif spec.voi_function == "LINEAR_EXACT":
            y = (x - np.float32(c)) * np.float32(1.0 / w) + np.float32(0.5)
        elif w == 1.0:
            y = (x > c - 0.5).astype(np.float32)
        else:
            y = (x - np.float32(c - 0.5)) * np.float32(1.0 / (w - 1.0)) + np.float32(0.5)
    else:
        lo, hi = float(x.min()), float(x.max())
        y = (x - np.float32(lo)) * np.float32(1.0 / (hi - lo)) if hi > lo else np.zeros_like(x)
    y = np.clip(y, 0.0, 1.0, dtype=np.float32)
    return np.float32(1.0) - y if spec.invert else y


@dataclass(frozen=True)
class Encoding:
    """How intensities become stored values: the storage shifts change these fields.

    bits: BitsStored (12..16); low, span: where intensity 0 and the range 0..1 sit, as fractions
    of the stored range (real detectors leave headroom); invert: MONOCHROME1; window_shift:
    header window centre moved by this fraction of the displayed range; window_scale: header
    window width multiplied by this; voi_function: LINEAR or SIGMOID; windowed: False writes no
    window, so the runtime stretches the image's min..max.
    """

    bits: int = 16
    low: float = 0.05
    span: float = 0.9
    invert: bool = False
    window_shift: float = 0.0
    window_scale: float = 1.0
    voi_function: str = "LINEAR"
    windowed: bool = True


def encode(x: np.ndarray, enc: Encoding = Encoding()) -> tuple[np.ndarray, PixelSpec]:
    """Display intensities [0, 1] -> (stored uint16, PixelSpec). With the default Encoding the
    runtime gives back `x` to within one stored step (like phantom.storage.to_stored)."""
    top = float(2**enc.bits - 1)
    lo, span = round(enc.low * top), round(enc.span * top)
    lo = min(lo, int(top) - span)
    y = np.clip(x, 0.0, 1.0)
    if enc.invert:
        y = 1.0 - y
    stored = np.rint(np.float32(lo) + y * np.float32(span)).astype(np.uint16)
    if not enc.windowed:
        return stored, PixelSpec(invert=enc.invert, bits_stored=enc.bits)
    # LINEAR: y = (v - (c - 0.5)) / (w - 1) + 0.5 maps lo -> 0 and lo + span -> 1
    width = (span + 1.0) * enc.window_scale
    shift = enc.window_shift * span * (-1.0 if enc.invert else 1.0)  # same display change either way
    center = lo + span / 2 + 0.5 + shift
    return stored, PixelSpec(
        window_center=center,
        window_width=max(width, 2.0),
        voi_function=enc.voi_function,
        invert=enc.invert,
        bits_stored=enc.bits,
    )


# -- geometry helpers ------------------------------------------------------------------------------
def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    from radz_train.data.phantom.numeric import blur

    return blur(x, sigma)


def _area_resize_axis(x: np.ndarray, m: int, axis: int) -> np.ndarray:
    """Shrink one axis to m samples by exact area averaging (cumulative sums, no BLAS)."""
    n = x.shape[axis]
    if m >= n:
        return x
    c = np.cumsum(x, axis=axis, dtype=np.float32)
    c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)  # n + 1 entries
    edges = np.arange(m + 1, dtype=np.float64) * (n / m)
    i = np.minimum(np.floor(edges).astype(np.intp), n - 1)
    f = (edges - i).astype(np.float32)
    xi = np.take(x, i, axis=axis)
    ci = np.take(c, i, axis=axis)
    shape = [1, 1]
    shape[axis] = m + 1
    at = ci + f.reshape(shape) * xi
    lo = [slice(None)] * 2
    hi = [slice(None)] * 2
    lo[axis], hi[axis] = slice(0, m), slice(1, m + 1)
    return (at[tuple(hi)] - at[tuple(lo)]) * np.float32(m / n)


def area_resize(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Shrink [H, W] to [height, width] (each <= its side) by area averaging."""
    return _area_resize_axis(_area_resize_axis(x, height, 0), width, 1)


def _px(x: np.ndarray) -> float:
    """Pixels of this image per pixel of a 256-pixel image (parameters are given at 256)."""
    return max(x.shape) / 256.0


def _u(rng: np.random.Generator, bounds) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _log_u(rng: np.random.Generator, bounds) -> float:
    return float(math.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1]))))


# -- content shifts: intensities [0, 1] float32 -> intensities ---------------------------------------
def exposure(x: np.ndarray, rng: np.random.Generator, r: Mapping) -> np.ndarray:
    """Exposure / processing level: contrast gain about mid grey, brightness offset, fog (lifted blacks)."""
    gain, offset, fog = _u(rng, r["gain"]), _u(rng, r["offset"]), _u(rng, r["fog"])
    y = np.clip((x - np.float32(0.5)) * np.float32(gain) + np.float32(0.5 + offset), 0.0, 1.0, dtype=np.float32)
    return np.float32(fog) + np.float32(1.0 - fog) * y


def gamma(x: np.ndarray, rng: np.random.Generator, r: Mapping) -> np.ndarray:
    """Display gamma (log-uniform): the tone curve of another vendor's processing."""
    return np.power(np.clip(x, 0.0, 1.0), np.float32(_log_u(rng, r["gamma"])), dtype=np.float32)


def detector_blur(x: np.ndarray, rng: np.random.Generator, r: Mapping) -> np.ndarray:
    """System blur (Gaussian, sigma in pixels at 256): a softer detector or a moving patient."""
    return _blur(x, _u(rng, r["sigma"]) * _px(x))


def sharpen(x: np.ndarray, rng: np.random.Generator, r: Mapping) -> np.ndarray:
    """Unsharp-mask edge enhancement (CR-style processing)."""
    from radz_train.data.phantom.numeric import box

    gain = _u(rng, r["gain"])
    w = int(round(_u(rng, r["box"]) * _px(x))) | 1
    if x.shape[0] != x.shape[1]:  # box() filters square images; use the separable blur instead
        base = _blur(x, w / 2.5)
    else:
        base = box(x, w)
    return x + np.float32(gain) * (x - base)


def grid_lines(x: np.ndarray, rng: np.random.Generator, r: Mapping) -> np.ndarray:
    """Anti-scatter grid: fine periodic lines (period in pixels of this image), vertical or
    horizontal; the runtime's resize turns them into moire as a real downsampled grid does."""
    period, amp = _u(rng, r["period"]), _u(rng, r["amplitude"])
    vertical = rng.random() < 0.5
    phase = rng.uniform(0, 2 * math.pi)
    n = x.shape[1] if vertical else x.shape[0]
    wave = (np.float32(amp) * np.cos(np.arange(n, dtype=np.float32) * np.float32(2 * math.pi / period) + phase)).astype(
        np.float32
    )
    return x + (wave[None, :] if vertical else wave[:, None])


def noise(x: np.ndarray, rng: np.random.Generator, r: Mapping) -> np.ndarray:
    """Quantum noise (std ~ sqrt(signal)), white or grainy (correlated) as portable units."""
    sigma = _u(rng, r["sigma"])
    grainy = rng.random() < r["grainy_p"]
    grain = _u(rng, r["grain"]) * _px(x)
    field = rng.standard_normal(x.shape, dtype=np.float32)
    if grainy:
        field = _blur(field, grain) * np.float32(1.0 + grain)
    return x + np.float32(sigma) * np.sqrt(np.clip(x, 0.0, 1.0) + np.float32(0.05)) * field


def collimation(x: np.ndarray, rng: np.random.Generator, r: Mapping) -> np.ndarray:
    """Collimator borders: unexposed detector shows bright (margins as the phantom generator's)."""
    h, w = x.shape
    left, right, bottom = (int(_u(rng, r["margin"]) * w) for _ in range(3))
    top = int(_u(rng, r["margin"]) * 0.5 * h)
    bottom = int(bottom * h / w)
    level = _u(rng, r["level"])
    y = x.copy()
    for rows, cols in (
        (slice(0, top), slice(None)),
        (slice(h - bottom, h), slice(None)),
        (slice(None), slice(0, left)),
        (slice(None), slice(w - right, w)),
    ):
        part = y[rows, cols]
        part[...] = np.float32(level) + np.float32(0.02) * rng.standard_normal(part.shape, dtype=np.float32)
    return y


_GLYPHS = {
    "R": ["1110", "1001", "1001", "1110", "1010", "1001", "1001"],
    "L": ["1000", "1000", "1000", "1000", "1000", "1000", "1111"],
    "A": ["0110", "1001", "1001", "1111", "1001", "1001", "1001"],
    "P": ["1110", "1001", "1001", "1110", "1000", "1000", "1000"],
    "S": ["0111", "1000", "1000", "0110", "0001", "0001", "1110"],
    "U": ["1001", "1001", "1001", "1001", "1001", "1001", "0110"],
}
_GLYPH_BITMAPS = {k: np.array([[int(c) for c in row] for row in v], np.float32) for k, v in _GLYPHS.items()}


def markers(x: np.ndarray, rng: np.random.Generator, r: Mapping) -> np.ndarray:
    """Burned-in side marker / annotation: 1-4 bright letters in a random corner."""
    h, w = x.shape
    letters = [str(c) for c in rng.choice(list(_GLYPHS), size=int(rng.integers(1, 5)))]
    k = max(1, int(round(_u(rng, r["scale"]) * _px(x))))
    bmp = np.concatenate([np.pad(_GLYPH_BITMAPS[c], ((0, 0), (0, 1))) for c in letters], axis=1)
    bmp = np.kron(bmp, np.ones((k, k), np.float32))
    bh, bw = min(bmp.shape[0], h), min(bmp.shape[1], w)
    bmp = bmp[:bh, :bw]
    level = np.float32(_u(rng, r["level"]))
    corner = int(rng.integers(4))
    dy, dx = int(_u(rng, r["inset"]) * h), int(_u(rng, r["inset"]) * w)
    r0 = dy if corner < 2 else max(0, h - dy - bh)
    c0 = dx if corner % 2 == 0 else max(0, w - dx - bw)
    y = x.copy()
    patch = y[r0 : r0 + bh, c0 : c0 + bw]
    np.maximum(patch, level * bmp[: patch.shape[0], : patch.shape[1]], out=patch)
    return y


def resolution(x: np.ndarray, rng: np.random.Generator, r: Mapping) -> np.ndarray:
    """Lower detector resolution / smaller matrix: area-average down by a factor (the runtime
    resizes it back up to the model's size)."""
    f = _u(rng, r["factor"])
    h, w = x.shape
    return area_resize(x, max(8, int(round(h * f))), max(8, int(round(w * f))))


def letterbox(x: np.ndarray, rng: np.random.Generator, r: Mapping) -> np.ndarray:
    """Non-square matrix: black bands on two sides (aspect longer/shorter side in range), so the
    runtime letterboxes a smaller patient."""
    aspect = _u(rng, r["aspect"])
    h, w = x.shape
    widen = rng.random() < 0.5
    extra = int(round((h * aspect - w) if widen else (w * aspect - h)))
    if extra <= 0:
        return x
    first = int(rng.integers(0, extra + 1))
    pad = ((0, 0), (first, extra - first)) if widen else ((first, extra - first), (0, 0))
    return np.pad(x, pad, mode="constant", constant_values=np.float32(_u(rng, r["level"])))


def field_of_view(x: np.ndarray, rng: np.random.Generator, r: Mapping) -> np.ndarray:
    """Another site's patient placement: a wider field of view (the anatomy scaled about the
    centre by a factor < 1) and an in-plane tilt (degrees); the uncovered border takes the image's
    edge level (median of the outermost rows and columns). Bilinear resampling."""
    scale, angle = _u(rng, r["scale"]), math.radians(_u(rng, r["rotation"]))
    h, w = x.shape
    fill = np.float32(np.median(np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])))
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    dy = np.arange(h, dtype=np.float32)[:, None] - np.float32(cy)
    dx = np.arange(w, dtype=np.float32)[None, :] - np.float32(cx)
    cos, sin = np.float32(math.cos(angle) / scale), np.float32(math.sin(angle) / scale)
    sy = cos * dy - sin * dx + np.float32(cy)  # output pixel -> where it comes from in the input
    sx = sin * dy + cos * dx + np.float32(cx)
    inside = (sy >= 0) & (sy <= h - 1) & (sx >= 0) & (sx <= w - 1)
    y0 = np.clip(np.floor(sy).astype(np.intp), 0, max(h - 2, 0))
    x0 = np.clip(np.floor(sx).astype(np.intp), 0, max(w - 2, 0))
    fy, fx = np.clip(sy - y0, 0, 1), np.clip(sx - x0, 0, 1)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    top = x[y0, x0] * (1 - fx) + x[y0, x1] * fx
    bottom = x[y1, x0] * (1 - fx) + x[y1, x1] * fx
    out = (top * (1 - fy) + bottom * fy).astype(np.float32)
    out[~inside] = fill
    return out


# -- storage shifts: Encoding -> Encoding ------------------------------------------------------------
def window(enc: Encoding, rng: np.random.Generator, r: Mapping) -> Encoding:
    """Another site's VOI in the header: window centre and width moved, sometimes a SIGMOID VOI
    function, sometimes no window at all (the runtime then stretches min..max)."""
    shift, scale = _u(rng, r["shift"]), _log_u(rng, r["scale"])
    pick = rng.random()
    if pick < r["minmax_p"]:
        return replace(enc, windowed=False)
    function = "SIGMOID" if pick < r["minmax_p"] + r["sigmoid_p"] else "LINEAR"
    return replace(enc, window_shift=shift, window_scale=scale, voi_function=function)


def monochrome1(enc: Encoding, rng: np.random.Generator, r: Mapping) -> Encoding:
    """MONOCHROME1 storage: high stored values are dark (the runtime inverts them back)."""
    return replace(enc, invert=True)


def bits_stored(enc: Encoding, rng: np.random.Generator, r: Mapping) -> Encoding:
    """BitsStored 12..15 (16 otherwise) and where the data sit in the stored range (headroom)."""
    bits = int(rng.integers(r["bits"][0], r["bits"][1] + 1))
    span = _u(rng, r["span"])
    low = _u(rng, (0.0, 1.0 - span))
    return replace(enc, bits=bits, span=span, low=low)


# -- the table -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shift:
    """One acquisition shift: applied with probability p, parameters drawn from `ranges`."""

    name: str
    p: float
    kind: str  # "content" (intensities -> intensities) or "storage" (Encoding -> Encoding)
    fn: Callable
    ranges: Mapping


SHIFTS: tuple[Shift, ...] = (
    Shift("exposure", 0.5, "content", exposure, {"gain": (0.8, 1.2), "offset": (-0.08, 0.08), "fog": (0.0, 0.1)}),
    Shift("gamma", 0.5, "content", gamma, {"gamma": (0.7, 1.45)}),
    Shift("blur", 0.3, "content", detector_blur, {"sigma": (0.6, 2.0)}),
    Shift("sharpen", 0.2, "content", sharpen, {"gain": (0.3, 1.0), "box": (4.0, 8.0)}),
    Shift("grid_lines", 0.15, "content", grid_lines, {"period": (2.2, 5.0), "amplitude": (0.01, 0.04)}),
    Shift("noise", 0.5, "content", noise, {"sigma": (0.005, 0.035), "grainy_p": 0.5, "grain": (0.5, 1.5)}),
    Shift("collimation", 0.3, "content", collimation, {"margin": (0.01, 0.05), "level": (0.8, 0.95)}),
    Shift("markers", 0.3, "content", markers, {"scale": (1.5, 3.0), "level": (0.85, 1.0), "inset": (0.02, 0.06)}),
    Shift("resolution", 0.3, "content", resolution, {"factor": (0.4, 0.85)}),
    Shift("letterbox", 0.2, "content", letterbox, {"aspect": (1.08, 1.35), "level": (0.0, 0.05)}),
    Shift(
        "window",
        0.5,
        "storage",
        window,
        {"shift": (-0.1, 0.1), "scale": (0.75, 1.3), "sigmoid_p": 0.2, "minmax_p": 0.15},
    ),
    Shift("monochrome1", 0.5, "storage", monochrome1, {}),
    Shift("bits_stored", 0.5, "storage", bits_stored, {"bits": (12, 15), "span": (0.5, 0.95)}),
    # Off by default (p 0): opt in with augment_probabilities. A shift with p 0 in the table
    # draws nothing unless enabled, so adding one leaves every earlier run's stream unchanged.
    Shift("field_of_view", 0.0, "content", field_of_view, {"scale": (0.8, 1.0), "rotation": (-8.0, 8.0)}),
)
_FIRST = ("field_of_view",)  # patient placement comes before the detector and the site's processing
_BY_NAME = {s.name: s for s in SHIFTS}


def check_probabilities(probabilities: Mapping[str, float] | None) -> dict[str, float]:
    """The table's probabilities with `probabilities` overriding some; clear errors for typos."""
    out = {s.name: s.p for s in SHIFTS}
    for name, p in (probabilities or {}).items():
        if name not in _BY_NAME:
            raise ValueError(f"augmentation {name!r}: unknown (known: {', '.join(_BY_NAME)})")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"augmentation {name!r}: probability must be a number in [0, 1], got {p!r}")
        out[name] = float(p)
    return out


def augment(
    stored: np.ndarray,
    spec: PixelSpec,
    rng: np.random.Generator,
    probabilities: Mapping[str, float] | None = None,
) -> tuple[np.ndarray, PixelSpec]:
    """A randomly re-acquired copy of one image: (stored pixels, PixelSpec) for the runtime.

    `probabilities` overrides the table's per-shift probabilities ({"noise": 0.0} turns noise
    off, {"gamma": 1.0} always applies it). When no shift fires the input is returned unchanged.
    """
    probs = check_probabilities(probabilities) if probabilities else {s.name: s.p for s in SHIFTS}
    drawn = [s for s in SHIFTS if s.p > 0 or probs[s.name] > 0]
    draws = rng.random(len(drawn))  # one draw per shift, always: fixed stream layout
    fired = [s for s, u in zip(drawn, draws) if u < probs[s.name]]
    fired.sort(key=lambda s: s.name not in _FIRST)  # stable: the table's order otherwise
    if not fired:
        return stored, spec
    x = decode(stored, spec)
    enc = Encoding()
    for shift in fired:
        if shift.kind == "content":
            x = shift.fn(x, rng, shift.ranges)
        else:
            enc = shift.fn(enc, rng, shift.ranges)
    return encode(x, enc)


def compact(stored: np.ndarray, spec: PixelSpec, max_side: int) -> tuple[np.ndarray, PixelSpec]:
    """A small in-memory base for augmentation: float images and images larger than `max_side`
    become uint16 intensities (BASE_SPEC), area-averaged down so the longer side is <= max_side.
    Integer images that already fit are kept as they are (stored values and spec)."""
    h, w = stored.shape
    if stored.dtype != np.float32 and max(h, w) <= max_side:
        return stored, spec
    x = decode(stored, spec)
    if max(h, w) > max_side:
        f = max_side / max(h, w)
        x = area_resize(x, max(1, int(round(h * f))), max(1, int(round(w * f))))
    return np.rint(np.clip(x, 0.0, 1.0) * np.float32(65535)).astype(np.uint16), BASE_SPEC


def _time_per_image(size: int, n: int) -> None:
    """Milliseconds per image of each shift alone, of the whole table, and of the C++
    preprocessing to 128 px (one thread), on a uint8 phantom as a PNG arrives."""
    import time

    from radz_engine import preprocess_batch
    from radz_engine.preprocessing.pixel_spec import spec_for_8bit
    from radz_train.data.phantom import generate_case

    img = np.rint(generate_case(3, size=size).image * 255).astype(np.uint8)
    spec = spec_for_8bit()

    def ms(run) -> str:
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return f"{wall / n * 1e3:7.2f} {cpu / n * 1e3:7.2f}"

    def table(probabilities):
        return lambda: [augment(img, spec, np.random.default_rng(seed), probabilities) for seed in range(n)]

    print(f"{size}x{size} uint8 phantom, {n} copies each; ms per image: wall, CPU (this process)")
    for s in SHIFTS:
        print(f"  {s.name:12s} alone (p=1) {ms(table({t.name: float(t is s) for t in SHIFTS}))}")
    print(f"  {'whole table':12s} defaults    {ms(table(None))}")
    pairs = [augment(img, spec, np.random.default_rng(seed)) for seed in range(n)]
    images, specs = [a for a, _ in pairs], [b for _, b in pairs]
    run = lambda: preprocess_batch(images, specs, 128, mean=(0.0,), std=(1.0,), num_threads=1)  # noqa: E731
    print(f"  then the C++ preprocessing to 128, one thread: {ms(run)}")


def _coverage(n: int, variants: int = 3) -> None:
    """Model-input statistics (128 px through the C++ preprocessing) of n phantoms per site, stored
    as the site's DICOMs are, and of `variants` augmented copies of each site_a phantom: which
    share of site_b / site_c images fall inside the 5-95% range of site_a, and of augmented site_a."""
    from radz_engine import preprocess_batch
    from radz_train.data.phantom import SITES, generate_case, to_stored

    def stats(pairs) -> dict[str, np.ndarray]:
        g = preprocess_batch([a for a, _ in pairs], [b for _, b in pairs], 128, mean=(0.0,), std=(1.0,))[:, 0]
        g = g.astype(np.float64)
        flat = g.reshape(len(g), -1)
        lap = 4 * g[:, 1:-1, 1:-1] - g[:, :-2, 1:-1] - g[:, 2:, 1:-1] - g[:, 1:-1, :-2] - g[:, 1:-1, 2:]
        k = 4
        frame = np.concatenate(
            [g[:, :k], g[:, -k:], g[:, :, :k].transpose(0, 2, 1), g[:, :, -k:].transpose(0, 2, 1)], 1
        )
        return {
            "mean": flat.mean(1),
            "std": flat.std(1),
            "p05": np.percentile(flat, 5, axis=1),
            "p95": np.percentile(flat, 95, axis=1),
            "laplacian": np.abs(lap).mean((1, 2)),
            "frame": frame.reshape(len(g), -1).mean(1),
        }

    def site(name: str, augmented: bool) -> dict[str, np.ndarray]:
        style, pairs = SITES[name], []
        for i in range(n):
            stored, center, width = to_stored(
                generate_case(i, seed=5, site=name).image, bits=style.bits_stored, monochrome=style.photometric
            )
            spec = PixelSpec(
                window_center=center,
                window_width=width,
                invert=style.photometric == "MONOCHROME1",
                bits_stored=style.bits_stored,
            )
            if augmented:
                pairs += [augment(stored, spec, np.random.default_rng([9, r, i])) for r in range(variants)]
            else:
                pairs.append((stored, spec))
        return stats(pairs)

    a, a_aug, b, c = site("site_a", False), site("site_a", True), site("site_b", False), site("site_c", False)

    def inside(ref, other, key) -> float:
        lo, hi = np.percentile(ref[key], [5, 95])
        return float(np.mean((other[key] >= lo) & (other[key] <= hi)))

    def cell(d, key) -> str:
        lo, mid, hi = np.percentile(d[key], [5, 50, 95])
        return f"{mid:.3f} [{lo:.3f}, {hi:.3f}]"

    print(f"{n} phantoms per site (seed 5, 256 px), {variants} augmented variants of each site_a phantom")
    print(
        "| statistic | site_a | site_a augmented | site_b | site_c | site_b inside: site_a / augmented | "
        "site_c inside: site_a / augmented |"
    )
    print("|---|---|---|---|---|---:|---:|")
    for key in a:
        print(
            f"| {key} | {cell(a, key)} | {cell(a_aug, key)} | {cell(b, key)} | {cell(c, key)} | "
            f"{inside(a, b, key):.2f} / {inside(a_aug, b, key):.2f} | {inside(a, c, key):.2f} / {inside(a_aug, c, key):.2f} |"
        )


def _main(argv: list[str] | None = None) -> None:
    """`python -m radz_train.data.augment time|coverage`: the measurements in docs/AUGMENTATION.md."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m radz_train.data.augment", description=_main.__doc__)
    sub = p.add_subparsers(dest="what", required=True)
    t = sub.add_parser("time", help="cost per image of each shift and of the whole table")
    t.add_argument("--size", type=int, default=256, help="phantom side in pixels")
    t.add_argument("--n", type=int, default=300, help="augmented copies per measurement")
    c = sub.add_parser("coverage", help="other sites' image statistics against augmented site_a")
    c.add_argument("--n", type=int, default=150, help="phantoms per site")
    args = p.parse_args(argv)
    if args.what == "time":
        _time_per_image(args.size, args.n)
    else:
        _coverage(args.n)


if __name__ == "__main__":
    _main()
