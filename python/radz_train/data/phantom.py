"""Seeded phantom frontal chest radiographs with multi-label findings and a free-text report.

No real labelled radiographs can be downloaded in this project, so it draws its own. Each
image is rendered analytically (numpy only, vectorised) as an attenuation map in *patient
coordinates* and then passed through a site-specific acquisition: field of view, rotation,
tone curve, blur, noise, collimation and a side marker.

Anatomy: body and shoulders, two lung fields (apex, lateral chest wall, diaphragm domes,
costophrenic angles), heart and mediastinum with aortic knob, trachea and main bronchi, hila
with radiating vascular markings, posterior and anterior ribs, clavicles, spine, gastric
bubble, optional breast shadows and arms.

Findings are *shapes and textures*, never a global intensity shift, so that a histogram
baseline cannot solve the task (see benchmarks/phantom_fairness.py and docs/PHANTOMS.md):
cardiomegaly (cardiothoracic ratio), pleural effusion (meniscus, blunted angle), pneumothorax
(visceral pleural line, absent markings), consolidation (patchy airspace opacity with air
bronchograms), nodule (< 3 cm round opacity), mass (> 3 cm lobulated opacity), atelectasis
(plate-like bands, elevated hemidiaphragm, lobar collapse), edema (Kerley lines, perihilar
haze, upper-lobe diversion), emphysema (flat low diaphragms, narrow heart, bullae, pruned
vessels).

Conventions: image x grows to the image right, which is the *patient's left* (PA view).
Patient coordinates u, v span about [-1, 1]; v grows downwards.

Determinism: every image depends only on (seed, index, site, size). Anatomy and findings
depend on (seed, index) only, so the same case index rendered at two sites is the same
patient; the acquisition depends on the site as well. Independent random streams per part
(anatomy, findings, each finding's rendering, acquisition, noise) mean that removing one
finding with `generate_case(..., findings=[...])` leaves everything else unchanged.

Public API:
    FINDINGS, LABELS, SEVERITIES, LATERALITIES, SITES
    Finding, SiteStyle, PhantomCase
    case_seed(seed, index) -> int
    sample_findings(index, *, seed=0) -> list[Finding]
    generate_case(index, *, seed=0, site="site_a", size=256, findings=None) -> PhantomCase
    generate_cases(n, *, seed=0, sites=("site_a",), size=256, start=0) -> Iterator[PhantomCase]
    to_stored(image, bits=12, monochrome="MONOCHROME2") -> (uint16 array, center, width)
    from_stored(stored, center, width, monochrome) -> float32 image (inverse of to_stored)
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterator, Sequence

import numpy as np

__all__ = [
    "FINDINGS", "LABELS", "SEVERITIES", "LATERALITIES", "SITES",
    "Finding", "SiteStyle", "PhantomCase",
    "case_seed", "sample_findings", "generate_case", "generate_cases",
    "to_stored", "from_stored", "labels_from_findings",
]

FINDINGS = (
    "cardiomegaly", "pleural_effusion", "pneumothorax", "consolidation", "nodule",
    "mass", "atelectasis", "edema", "emphysema",
)
LABELS = FINDINGS + ("no_finding",)
SEVERITIES = ("mild", "moderate", "severe")
LATERALITIES = ("left", "right", "bilateral")
ZONES = ("upper", "middle", "lower")

# Which attributes apply to which finding.
_HAS_SEVERITY = {"cardiomegaly", "pleural_effusion", "pneumothorax", "consolidation",
                 "atelectasis", "edema", "emphysema"}
_HAS_SIDE = {"pleural_effusion", "pneumothorax", "consolidation", "nodule", "mass",
             "atelectasis", "edema", "emphysema"}
_HAS_ZONE = {"consolidation", "nodule", "mass"}

_MM_PER_UNIT = 190.0  # patient units -> millimetres (thorax inner width ~1.55 units ~ 300 mm)


@dataclass(frozen=True)
class Finding:
    """One finding on one image.

    Attributes:
        name: one of FINDINGS.
        severity: "mild" | "moderate" | "severe", or None where it does not apply
            (nodule, mass: their size is `size_mm`).
        laterality: "left" | "right" | "bilateral" (patient side), or None (cardiomegaly).
        location: lung zone "upper" | "middle" | "lower" for focal findings, else None.
        size_mm: diameter of a nodule or mass in millimetres, else None.
    """

    name: str
    severity: str | None = None
    laterality: str | None = None
    location: str | None = None
    size_mm: float | None = None

    def __post_init__(self) -> None:
        if self.name not in FINDINGS:
            raise ValueError(f"name must be one of {FINDINGS}, got {self.name!r}")
        if self.severity is not None and self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES} or None, got {self.severity!r}")
        if self.laterality is not None and self.laterality not in LATERALITIES:
            raise ValueError(
                f"laterality must be one of {LATERALITIES} or None, got {self.laterality!r}")
        if self.location is not None and self.location not in ZONES:
            raise ValueError(f"location must be one of {ZONES} or None, got {self.location!r}")

    def to_dict(self) -> dict:
        """Plain dict without the None fields (for JSON)."""
        return {k: v for k, v in (("name", self.name), ("severity", self.severity),
                                  ("laterality", self.laterality), ("location", self.location),
                                  ("size_mm", self.size_mm)) if v is not None}


@dataclass(frozen=True)
class SiteStyle:
    """Acquisition style of one site (hospital / device), for external-validation splits.

    Attributes:
        name: site key.
        modality: "CR" or "DX" (DICOM SOP class written by dicom_out).
        photometric: "MONOCHROME1" (high stored value = dark) or "MONOCHROME2".
        bits_stored: DICOM BitsStored (12..16).
        view_position: "PA" or "AP".
        fov_scale: anatomy size relative to the image (smaller = wider field of view).
        rotation_deg: max absolute patient rotation in the image plane.
        contrast: strength of the S-shaped tone curve (0 = linear).
        gamma: display gamma applied after the tone curve.
        fog: lifted black level (scatter, low-contrast portable units).
        noise: quantum noise standard deviation at mid grey.
        grain_px: correlation length of the noise in pixels at 256 (0 = white noise).
        blur_px: system blur (Gaussian sigma, pixels at 256): lower effective resolution.
        edge_enhance: unsharp-mask gain (CR-style processing).
        collimation_prob: probability of visible collimator borders.
        marker: side-marker letter drawn in a corner.
        pixel_spacing_mm: detector pixel spacing at 2048 pixels across.
    """

    name: str
    modality: str
    photometric: str
    bits_stored: int
    view_position: str
    fov_scale: float
    rotation_deg: float
    contrast: float
    gamma: float
    fog: float
    noise: float
    grain_px: float
    blur_px: float
    edge_enhance: float
    collimation_prob: float
    marker: str
    pixel_spacing_mm: float


SITES: dict[str, SiteStyle] = {
    # Fixed DR room, PA, clean and linear.
    "site_a": SiteStyle("site_a", "DX", "MONOCHROME2", 12, "PA", 1.00, 3.0, 2.0, 1.00, 0.00,
                        0.020, 0.0, 0.5, 0.0, 0.15, "R", 0.175),
    # CR reader: MONOCHROME1 storage, strong S-curve, edge enhancement, tight collimation.
    "site_b": SiteStyle("site_b", "CR", "MONOCHROME1", 15, "PA", 1.07, 4.0, 4.0, 0.85, 0.00,
                        0.012, 0.0, 0.3, 0.8, 0.7, "L", 0.150),
    # Portable AP unit: wide field of view, low contrast, fog, grainy, blurrier, tilted.
    "site_c": SiteStyle("site_c", "DX", "MONOCHROME2", 16, "AP", 0.86, 7.0, 1.0, 1.15, 0.08,
                        0.030, 1.2, 1.1, 0.0, 0.3, "A", 0.200),
}


@dataclass
class PhantomCase:
    """One generated radiograph with its ground truth.

    Attributes:
        index, seed: the case index and the base seed it was generated from.
        site: site key (see SITES).
        findings: the findings present (empty list = normal study).
        labels: {label: 0/1} for every name in LABELS (no_finding = 1 iff no findings).
        report: free-text report (FINDINGS + IMPRESSION), see radz_train.data.reports.
        image: float32 [size, size] display intensity in [0, 1]; 1 = bright (bone).
        acquisition: per-image acquisition parameters (site, scale, rotation, ...), for DICOM.
    """

    index: int
    seed: int
    site: str
    findings: list[Finding]
    labels: dict[str, int]
    report: str
    image: np.ndarray
    acquisition: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- seeding


def _check_int(name: str, value: int, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def case_seed(seed: int, index: int) -> int:
    """The per-image seed: a 63-bit integer derived from (seed, index) only."""
    seed = _check_int("seed", seed)
    index = _check_int("index", index)
    state = np.random.SeedSequence([seed, index, 0x5AD1]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def _rng(cseed: int, *keys: int | str) -> np.random.Generator:
    """An independent random stream for one part of one case."""
    ints = [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    return np.random.default_rng(np.random.SeedSequence([cseed & 0xFFFFFFFF, cseed >> 32, *ints]))


# --------------------------------------------------------------------------- findings


def sample_findings(index: int, *, seed: int = 0) -> list[Finding]:
    """Draw the findings of case `index` (depends on (seed, index) only).

    About 35% of studies are normal. Co-occurrence follows the clinical picture: edema
    brings cardiomegaly and (mostly bilateral) effusions, effusion brings basal atelectasis,
    pneumonia-like consolidation brings a parapneumonic effusion, emphysema brings nodules,
    masses and pneumothorax.
    """
    rng = _rng(case_seed(seed, index), "findings")
    if rng.random() < 0.35:
        return []
    present: dict[str, dict] = {}

    def side(p_bilateral: float) -> str:
        r = rng.random()
        return "bilateral" if r < p_bilateral else ("right" if r < (1 + p_bilateral) / 2 else "left")

    if rng.random() < 0.13:
        present["edema"] = {"laterality": "bilateral"}
        if rng.random() < 0.7:
            present["cardiomegaly"] = {}
        if rng.random() < 0.6:
            present["pleural_effusion"] = {"laterality": side(0.75)}
    if rng.random() < 0.12:
        present.setdefault("cardiomegaly", {})
    if rng.random() < 0.13:
        present.setdefault("pleural_effusion", {"laterality": side(0.25)})
    if rng.random() < 0.14:
        present["consolidation"] = {"laterality": side(0.2)}
        if rng.random() < 0.25:
            present.setdefault("pleural_effusion", {"laterality": present["consolidation"]["laterality"]})
    if rng.random() < 0.10:
        present["emphysema"] = {"laterality": "bilateral"}
        if rng.random() < 0.25:
            present["pneumothorax"] = {"laterality": side(0.0)}
        if rng.random() < 0.2:
            present["nodule"] = {"laterality": side(0.0)}
        if rng.random() < 0.15:
            present["mass"] = {"laterality": side(0.0)}
    if rng.random() < 0.08:
        present.setdefault("pneumothorax", {"laterality": side(0.0)})
    if rng.random() < 0.11:
        present.setdefault("nodule", {"laterality": side(0.0)})
    if rng.random() < 0.08:
        present.setdefault("mass", {"laterality": side(0.0)})
    p_atel = 0.4 if "pleural_effusion" in present else 0.10
    if rng.random() < p_atel:
        eff = present.get("pleural_effusion", {}).get("laterality")
        present["atelectasis"] = {"laterality": eff or side(0.25)}
    if not present:
        name = FINDINGS[int(rng.integers(len(FINDINGS)))]
        present[name] = {"laterality": "bilateral" if name in ("edema", "emphysema") else
                         (None if name == "cardiomegaly" else side(0.15 if name not in ("nodule", "mass", "pneumothorax") else 0.0))}

    out = []
    for name in FINDINGS:  # fixed order keeps the random draws reproducible
        if name not in present:
            continue
        attrs = present[name]
        sev = SEVERITIES[int(rng.choice(3, p=[0.4, 0.35, 0.25]))] if name in _HAS_SEVERITY else None
        lat = attrs.get("laterality") if name in _HAS_SIDE else None
        if name in _HAS_SIDE and lat is None:
            lat = side(0.0)
        loc = ZONES[int(rng.integers(3))] if name in _HAS_ZONE else None
        if name == "nodule":
            size = float(np.round(rng.uniform(10, 28)))
        elif name == "mass":
            size = float(np.round(rng.uniform(38, 80)))
        else:
            size = None
        out.append(Finding(name, sev, lat, loc, size))
    return out


def labels_from_findings(findings: Sequence[Finding]) -> dict[str, int]:
    """{label: 0/1} for every name in LABELS."""
    names = {f.name for f in findings}
    labels = {n: int(n in names) for n in FINDINGS}
    labels["no_finding"] = int(not names)
    return labels


# --------------------------------------------------------------------------- numeric helpers


@lru_cache(maxsize=32)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0).astype(np.float32)
    return np.broadcast_to(c[None, :], (size, size)), np.broadcast_to(c[:, None], (size, size))


# Everything below avoids BLAS on purpose: multithreaded matmuls on small arrays are slower
# than plain numpy when several generator processes share a few cores.


def _blur_axis(img: np.ndarray, sigma: float, axis: int) -> np.ndarray:
    """Gaussian blur along one axis with edge padding: explicit taps for small sigma,
    three box passes (cumulative sums) for large sigma."""
    n = img.shape[axis]
    if sigma < 2.0:
        r = int(math.ceil(3 * sigma))
        k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
        k = (k / k.sum()).astype(np.float32)
        pad = [(0, 0), (0, 0)]
        pad[axis] = (r, r)
        p = np.pad(img, pad, mode="edge")
        out = np.zeros_like(img)
        for i, w in enumerate(k):
            out += w * (p[i:i + n] if axis == 0 else p[:, i:i + n])
        return out
    w = max(int(round(math.sqrt(4 * sigma * sigma + 1))), 1) | 1  # odd box width
    h = w // 2
    out = img
    for _ in range(3):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (h + 1, h)
        c = np.cumsum(np.pad(out, pad, mode="edge"), axis=axis, dtype=np.float32)
        out = ((c[w:w + n] - c[:n]) if axis == 0 else (c[:, w:w + n] - c[:, :n])) * (1.0 / w)
    return out


def _box(img: np.ndarray, w: int) -> np.ndarray:
    """One separable box filter of odd width w (edge padded): cheap unsharp-mask base."""
    h, n = w // 2, img.shape[0]
    c = np.cumsum(np.pad(img, ((h + 1, h), (0, 0)), mode="edge"), axis=0, dtype=np.float32)
    out = (c[w:w + n] - c[:n])
    c = np.cumsum(np.pad(out, ((0, 0), (h + 1, h)), mode="edge"), axis=1, dtype=np.float32)
    return (c[:, w:w + n] - c[:, :n]) * (1.0 / (w * w))


def _blur(img: np.ndarray, sigma_px: float) -> np.ndarray:
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


def _smooth_noise(rng: np.random.Generator, size: int, k: int) -> np.ndarray:
    """Smooth unit-variance-ish random field (k x k control points, bilinear interpolation)."""
    z = rng.standard_normal((k, k)).astype(np.float32)
    lo, w = _upsample_index(size, k)
    rows = z[lo] * (1 - w)[:, None] + z[lo + 1] * w[:, None]  # size x k
    return rows[:, lo] * (1 - w)[None, :] + rows[:, lo + 1] * w[None, :]


def _ramp(d, eps: float):
    """Soft step of a signed distance (positive inside), antialiased over ~1 pixel."""
    t = d * np.float32(1.0 / eps)
    t += np.float32(0.5)
    if isinstance(t, np.ndarray):
        np.minimum(t, np.float32(1.0), out=t)
        np.maximum(t, np.float32(0.0), out=t)
        return t
    return min(max(t, 0.0), 1.0)


def _cage(x, y):
    """Superellipse-like norm, cheap: (x^2 + x^4)/2 + (y^2 + y^4)/2 (1 on the boundary)."""
    x2, y2 = x * x, y * y
    return 0.5 * (x2 + x2 * x2 + y2 + y2 * y2)


def _angle_profile(rng: np.random.Generator, n_bumps: int, width: tuple[float, float],
                   bins: int = 1024) -> np.ndarray:
    """Circular 1-D profile of random narrow bumps: radiating line patterns (vessels, bronchi)."""
    # spikes blurred circularly in the Fourier domain, two widths: cheap and periodic
    c = rng.integers(0, bins, n_bumps)
    w = rng.uniform(*width, n_bumps)
    a = rng.uniform(0.5, 1.0, n_bumps)
    f = np.fft.rfftfreq(bins)
    prof = np.zeros(bins)
    for sel, sig in ((w < np.mean(width), width[0] * 0.75 + width[1] * 0.25),
                     (w >= np.mean(width), width[0] * 0.25 + width[1] * 0.75)):
        spikes = np.zeros(bins)
        np.add.at(spikes, c[sel], a[sel])
        g = np.fft.irfft(np.fft.rfft(spikes) * np.exp(-2 * (math.pi * sig * f) ** 2), bins)
        prof = np.maximum(prof, g * (sig * math.sqrt(2 * math.pi)))
    return np.clip(prof, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- anatomy


@dataclass
class _Anatomy:
    W: float          # thoracic cage inner half width
    H: float          # cage half height
    cyc: float        # cage centre v
    apex: float       # lung apex v
    yd_r: float       # right dome peak v (patient right = image left)
    yd_l: float
    hd_r: float       # dome height (how much lower the costophrenic angle is)
    hd_l: float
    ctr: float        # cardiothoracic ratio
    heart_top: float
    heart_round: float
    med_r: float      # mediastinal half widths
    med_l: float
    shift: float      # mediastinal shift (+ = towards patient left)
    body_extra: float  # soft tissue beyond the cage (habitus)
    soft: float       # soft tissue density
    breasts: float    # breast shadow strength (0 = none)
    arms: bool
    rib_a: float
    rib_b: float
    rib_q0: float
    rib_sp: float
    vessel_len: float
    vessel_amp: float
    lung_air: float


def _sample_anatomy(cseed: int) -> _Anatomy:
    r = _rng(cseed, "anatomy")
    yd_r = r.uniform(0.22, 0.42)
    return _Anatomy(
        W=r.uniform(0.70, 0.80), H=r.uniform(0.84, 0.92), cyc=r.uniform(0.0, 0.08),
        apex=r.uniform(-0.80, -0.70), yd_r=yd_r, yd_l=yd_r + r.uniform(0.0, 0.08),
        hd_r=r.uniform(0.13, 0.21), hd_l=r.uniform(0.13, 0.21),
        ctr=r.uniform(0.38, 0.49), heart_top=r.uniform(-0.24, -0.12),
        heart_round=r.uniform(0.85, 1.1),
        med_r=r.uniform(0.08, 0.11), med_l=r.uniform(0.07, 0.10), shift=r.uniform(-0.02, 0.02),
        body_extra=r.uniform(0.06, 0.22), soft=r.uniform(0.55, 0.68),
        breasts=float(r.uniform(0.03, 0.08)) if r.random() < 0.45 else 0.0,
        arms=bool(r.random() < 0.5),
        rib_a=r.uniform(0.25, 0.42), rib_b=r.uniform(0.45, 0.65), rib_q0=r.uniform(-0.84, -0.76),
        rib_sp=r.uniform(0.095, 0.115), vessel_len=r.uniform(0.40, 0.55),
        vessel_amp=r.uniform(0.07, 0.11), lung_air=r.uniform(0.36, 0.44),
    )


def _apply_anatomy_effects(a: _Anatomy, findings: Sequence[Finding]) -> None:
    """Findings that change the anatomy itself (heart size, diaphragm, mediastinum)."""
    sev_i = {"mild": 0, "moderate": 1, "severe": 2}
    for f in findings:
        s = sev_i.get(f.severity or "mild", 0)
        if f.name == "cardiomegaly":
            a.ctr = (0.545, 0.595, 0.65)[s] + 0.04 * ((a.heart_round - 0.85) / 0.25)
            a.heart_round *= 1.12
        elif f.name == "emphysema":
            drop = (0.07, 0.11, 0.15)[s]
            a.yd_r += drop
            a.yd_l += drop
            a.hd_r *= (0.55, 0.4, 0.25)[s]
            a.hd_l *= (0.55, 0.4, 0.25)[s]
            a.ctr = min(a.ctr, 0.40) * (0.95, 0.9, 0.85)[s]
            a.heart_round *= 0.8
            a.rib_b *= 0.6
            a.rib_a *= 0.7
            a.rib_sp *= 1.08
            a.vessel_len *= (0.8, 0.7, 0.6)[s]
        elif f.name == "atelectasis" and s >= 1:
            lift = (0.0, 0.07, 0.11)[s]
            if f.laterality in ("right", "bilateral"):
                a.yd_r -= lift
            if f.laterality in ("left", "bilateral"):
                a.yd_l -= lift
            if s == 2 and f.laterality in ("left", "right"):
                a.shift += 0.04 if f.laterality == "left" else -0.04


def _lung_mask(xl, v, a: _Anatomy, yd, hd, med, eps: float):
    """Soft lung-field mask from lateral distance `xl` (>= 0) and height `v`.

    Intersection of: thoracic cage (superellipse), apex dome, diaphragm dome (parabola,
    peak at 40% of the half width, costophrenic angle at the chest wall) and the medial
    mediastinal border.
    """
    cage = 1.0 - _cage(xl * (1.0 / a.W), (v - a.cyc) * (1.0 / a.H))
    m = _ramp(cage * (a.W / 3.0), eps)
    xpk = 0.4 * a.W
    dome = yd + hd * ((xl - xpk) / (0.6 * a.W)) ** 2
    m = m * _ramp(dome - v, eps)
    apex = a.apex + 1.1 * (xl - 0.42 * a.W) ** 2
    m = m * _ramp(v - apex, eps)
    return m * _ramp(xl - med, eps)


# --------------------------------------------------------------------------- rendering


class _Canvas:
    """Patient-coordinate grids and the accumulators for one rendering."""

    def __init__(self, size: int, scale: float, rot: float, tx: float, ty: float, a: _Anatomy):
        X, Y = _grid(size)
        c, s = math.cos(rot), math.sin(rot)
        self.size, self.scale, self.rot, self.tx, self.ty = size, scale, rot, tx, ty
        Xs, Ys = (X - tx) / scale, (Y - ty) / scale
        self.u = (c * Xs + s * Ys).astype(np.float32)
        self.v = (-s * Xs + c * Ys).astype(np.float32)
        self.eps = float(2.0 / size / scale)  # one pixel in patient units
        self.right = self.u < a.shift  # patient right = image left
        self.xl = np.abs(self.u - a.shift)

    def to_pixel(self, u: float, v: float) -> tuple[float, float]:
        """Patient (u, v) -> pixel (col, row)."""
        c, s = math.cos(self.rot), math.sin(self.rot)
        X = self.tx + self.scale * (c * u - s * v)
        Y = self.ty + self.scale * (s * u + c * v)
        return (X + 1) * self.size / 2 - 0.5, (Y + 1) * self.size / 2 - 0.5

    def window(self, u: float, v: float, radius: float) -> tuple[slice, slice]:
        """Pixel slices of a square around patient point (u, v) with patient radius."""
        col, row = self.to_pixel(u, v)
        r = radius * self.scale * self.size / 2 * 1.5 + 3
        r0, r1 = max(int(row - r), 0), min(int(row + r) + 1, self.size)
        c0, c1 = max(int(col - r), 0), min(int(col + r) + 1, self.size)
        return slice(r0, max(r0, r1)), slice(c0, max(c0, c1))


def _side_u(a: _Anatomy, side: str, xl: float) -> float:
    """Patient u of a point at lateral distance xl on the given patient side."""
    return a.shift + (-xl if side == "right" else xl)


def _pick_point(a: _Anatomy, rng: np.random.Generator, side: str, zone: str | None,
                margin: float) -> tuple[float, float]:
    """A point well inside the lung of `side` (rejection sampling on the lung mask)."""
    ranges = {"upper": (-0.62, -0.30), "middle": (-0.30, 0.0), "lower": (0.0, 0.35)}
    lo, hi = ranges.get(zone or "", (-0.6, 0.3))
    yd, hd, med = (a.yd_r, a.hd_r, a.med_r) if side == "right" else (a.yd_l, a.hd_l, a.med_l)
    best = (0.5 * a.W, -0.25)
    for _ in range(40):
        xl = rng.uniform(0.25 * a.W, 0.85 * a.W)
        v = rng.uniform(lo, min(hi, yd - 0.05))
        heart_x = a.ctr * 2 * a.W * (0.62 if side == "left" else 0.38)
        if v > a.heart_top and xl < heart_x + margin:
            continue
        inside = _lung_mask(np.float32(xl - margin), np.float32(v), a, yd, hd, med, 0.01)
        inside *= _lung_mask(np.float32(xl + margin), np.float32(v), a, yd, hd, med, 0.01)
        inside *= _lung_mask(np.float32(xl), np.float32(v - margin), a, yd, hd, med, 0.01)
        inside *= _lung_mask(np.float32(xl), np.float32(v + margin), a, yd, hd, med, 0.01)
        if inside > 0.99:
            return _side_u(a, side, xl), v
    return _side_u(a, side, best[0]), best[1]


def _sides(lat: str | None) -> list[str]:
    return ["right", "left"] if lat == "bilateral" else [lat or "right"]


def _render(a: _Anatomy, findings: Sequence[Finding], cseed: int, style: SiteStyle,
            size: int, site_key: str) -> tuple[np.ndarray, dict]:
    acq_rng = _rng(cseed, "acquisition", site_key)
    scale = 1.04 * style.fov_scale * acq_rng.uniform(0.93, 1.07) * (0.96 + 0.3 * (0.14 - a.body_extra))
    rot = math.radians(acq_rng.uniform(-style.rotation_deg, style.rotation_deg))
    tx, ty = acq_rng.uniform(-0.04, 0.04), acq_rng.uniform(-0.08, 0.01)
    cv = _Canvas(size, scale, rot, tx, ty, a)
    u, v, xl, R, eps = cv.u, cv.v, cv.xl, cv.right, cv.eps
    by_name = {f.name: f for f in findings}

    # --- body and soft tissue -----------------------------------------------------------
    bw = np.interp(v, [-1.2, -0.95, -0.78, -0.55, 0.3, 1.2],
                   [0.24, 0.27, a.W + a.body_extra + 0.2, a.W + a.body_extra + 0.06,
                    a.W + a.body_extra + 0.04, a.W + a.body_extra - 0.02]).astype(np.float32)
    t = np.clip(1.0 - (xl / bw) ** 2, 0.0, 1.0)
    D = a.soft * np.sqrt(np.sqrt(t)) * _ramp(bw - xl, eps)
    if a.arms:
        arm_c = a.W + a.body_extra + 0.24
        ta = np.clip(1.0 - ((xl - arm_c) / 0.11) ** 2, 0.0, 1.0) * _ramp(v + 0.7, 0.05)
        D = np.maximum(D, 0.8 * a.soft * np.sqrt(ta))
    if a.breasts > 0:
        bx, by = 0.55 * a.W, 0.28
        br = 1.0 - ((xl - bx) / (0.5 * a.W)) ** 2 - ((v - by) / 0.3) ** 2
        D += a.breasts * _ramp(br * 0.15, eps) * _ramp(v - 0.05, 0.15)

    # --- lungs -----------------------------------------------------------------------------
    yd = np.where(R, a.yd_r, a.yd_l).astype(np.float32)
    hd = np.where(R, a.hd_r, a.hd_l).astype(np.float32)
    med = np.where(R, a.med_r, a.med_l).astype(np.float32)
    # aortic knob widens the left upper mediastinum
    med = med + np.where(R, 0.0, 0.07 * np.exp(-((v + 0.36) / 0.07) ** 2)).astype(np.float32)
    lung = _lung_mask(xl, v, a, yd, hd, med, eps)
    depth = 0.55 + 0.45 * np.clip((v - a.apex) / 0.7, 0.0, 1.0)  # thicker towards the bases
    air = a.lung_air * depth  # air column where there is lung (multiplied by lung later)
    visible = lung.copy()  # where lung markings are drawn (reduced by pneumothorax, bullae)
    extra = np.zeros_like(D)  # finding densities added on top

    # heart: rotated ellipse sitting on the left dome
    half_w = a.ctr * a.W  # CTR = heart width / thoracic width (2W)
    hcx = a.shift + half_w * 0.24
    hb = max((a.yd_l + 0.1 - a.heart_top) / 2.0, 0.12) * (0.9 + 0.1 * a.heart_round)
    hcy = a.heart_top + hb
    ang = math.radians(-22.0)
    ca, sa = math.cos(ang), math.sin(ang)
    ha = math.sqrt(max(half_w ** 2 - (hb * sa) ** 2, 1e-4)) / abs(ca)
    du, dv = u - hcx, v - hcy
    e = ((ca * du + sa * dv) / ha) ** 2 + ((-sa * du + ca * dv) / hb) ** 2
    heart = _ramp((1.0 - e) * min(ha, hb) * 0.5, eps)
    # right atrium bulge keeps the right heart border convex
    ra = ((u - (a.shift - half_w * 0.55)) / (0.11 * a.heart_round)) ** 2 + ((v - (hcy + 0.06)) / 0.16) ** 2
    heart = np.maximum(heart, _ramp((1.0 - ra) * 0.05, eps))

    # --- findings that live in the lungs ----------------------------------------------------
    for f in findings:
        frng = _rng(cseed, "render", f.name)
        sev = {"mild": 0, "moderate": 1, "severe": 2}.get(f.severity or "mild", 0)
        if f.name == "pleural_effusion":
            for side in _sides(f.laterality):
                sm = R if side == "right" else ~R
                ydx, hdx = (a.yd_r, a.hd_r) if side == "right" else (a.yd_l, a.hd_l)
                cp = ydx + hdx  # costophrenic angle level
                h = (0.13, 0.30, 0.52)[sev] * frng.uniform(0.9, 1.15)
                surf = cp - h * (0.35 + 0.65 * (xl / a.W) ** 2)  # meniscus: higher laterally
                fluid = _ramp(v - surf, 0.02) * sm
                # lateral layering along the chest wall
                wall = 1.0 - _cage(xl * (1.0 / a.W), (v - a.cyc) * (1.0 / a.H))
                fluid = np.maximum(fluid, sm * _ramp(0.05 * (1 + sev) - wall, 0.02) * _ramp(v - surf + 0.15 + 0.1 * sev, 0.05))
                air = air * (1.0 - 0.92 * fluid)
                visible = visible * (1.0 - fluid)
                extra += 0.03 * fluid * lung
        elif f.name == "pneumothorax":
            side = f.laterality if f.laterality in ("left", "right") else "right"
            sm = R if side == "right" else ~R
            k = (0.88, 0.78, 0.64)[sev] * frng.uniform(0.97, 1.03)
            yd_s, hd_s, med_s = (a.yd_r, a.hd_r, a.med_r) if side == "right" else (a.yd_l, a.hd_l, a.med_l)
            ax, ay = 0.12, yd_s + 0.05  # collapse towards the lower hilum
            inner = _lung_mask(ax + (xl - ax) / k, ay + (v - ay) / k, a, yd_s, hd_s, med_s, eps * 1.2)
            inner = inner * lung
            space = np.clip(lung - inner, 0.0, 1.0) * sm
            line = 4.0 * inner * (1.0 - inner) * sm
            visible = visible - space
            air = air * (1.0 + 0.12 * space) * (1.0 - (0.0, 0.08, 0.2)[sev] * inner * sm)
            extra += 0.10 * line
        elif f.name == "consolidation":
            for side in _sides(f.laterality):
                cu, cvv = _pick_point(a, frng, side, f.location, 0.05)
                rx = (0.13, 0.19, 0.27)[sev] * frng.uniform(0.9, 1.1)
                ry = rx * frng.uniform(0.7, 1.0)
                rs, cs = cv.window(cu, cvv, rx * 1.6)
                uu, vv = u[rs, cs], v[rs, cs]
                nz = _smooth_noise(frng, size, 12)[rs, cs]
                fine = _smooth_noise(frng, size, 40)[rs, cs]
                blob = 1.0 - ((uu - cu) / rx) ** 2 - ((vv - cvv) / ry) ** 2 + 0.6 * nz - 0.05
                blob = np.clip(blob / 0.5, 0.0, 1.0) * np.clip(0.75 + 0.25 * fine, 0.0, 1.0) * lung[rs, cs]
                # air bronchograms: dark branching tubes radiating from the hilum
                hx = _side_u(a, side, 0.16)
                th = np.arctan2(vv + 0.1, np.abs(uu - hx) + 1e-3)
                prof = _angle_profile(frng, 14, (3.0, 6.0))
                br = prof[((th + math.pi) * (1024 / (2 * math.pi))).astype(np.int32) % 1024] ** 3
                core = np.clip((blob - 0.45) / 0.3, 0.0, 1.0)
                sub = air[rs, cs] * (1.0 - 0.85 * blob) + 0.7 * a.lung_air * br * core
                air[rs, cs] = sub
                visible[rs, cs] = visible[rs, cs] * (1.0 - blob)
        elif f.name in ("nodule", "mass"):
            side = f.laterality if f.laterality in ("left", "right") else "right"
            rad = (f.size_mm or 20.0) / 2.0 / _MM_PER_UNIT
            for _ in range(1):  # one lesion: the report describes exactly one
                cu, cvv = _pick_point(a, frng, side, f.location, rad * 1.1)
                rs, cs = cv.window(cu, cvv, rad * 1.6)
                uu, vv = u[rs, cs], v[rs, cs]
                du, dv = uu - cu, vv - cvv
                dist = np.sqrt(du * du + dv * dv)
                if f.name == "mass":
                    th = np.arctan2(dv, du)
                    p = frng.uniform(0, 2 * math.pi, 3)
                    rr = rad * (1 + 0.12 * np.sin(3 * th + p[0]) + 0.07 * np.sin(5 * th + p[1])
                                + 0.04 * np.sin(9 * th + p[2]))
                    disc = _ramp(rr - dist, eps * 1.5)
                    spic = _angle_profile(frng, 10, (2.0, 4.0))[((th + math.pi) * (1024 / (2 * math.pi))).astype(np.int32) % 1024] ** 4
                    disc = np.maximum(disc, 0.7 * spic * _ramp(rr * 1.35 - dist, rad * 0.2) * (dist > rr * 0.9))
                    # dome-like density: thicker in the middle
                    dens = disc * (0.75 + 0.25 * np.sqrt(np.clip(1 - (dist / rad) ** 2, 0, 1)))
                else:
                    disc = _ramp(rad - dist, eps * 1.2)
                    dens = disc * (0.7 + 0.3 * np.sqrt(np.clip(1 - (dist / rad) ** 2, 0, 1)))
                air[rs, cs] = air[rs, cs] * (1.0 - 0.9 * dens)
                extra[rs, cs] += 0.05 * dens
        elif f.name == "atelectasis":
            for side in _sides(f.laterality):
                sm = R if side == "right" else ~R
                yd_s = a.yd_r if side == "right" else a.yd_l
                n_plates = (1, 2, 1)[sev]
                for _ in range(n_plates):
                    cx = frng.uniform(0.35, 0.7) * a.W
                    cy = yd_s - frng.uniform(0.06, 0.16)
                    tilt = frng.uniform(-0.25, 0.1)
                    length = frng.uniform(0.16, 0.26)
                    thick = frng.uniform(0.014, 0.024)
                    d_perp = (v - cy - tilt * (xl - cx)) / thick
                    d_along = np.abs(xl - cx) / length
                    plate = np.clip(1.0 - d_perp ** 2, 0.0, 1.0) * _ramp(1.0 - d_along, 0.15) * sm * lung * (1.0 - heart)
                    air = air * (1.0 - 0.85 * plate)
                if sev == 2:  # lower-lobe collapse: triangular "sail" opacity at the medial base
                    top = yd_s - 0.42
                    tri = _ramp((v - top) * 0.2 - (xl - (a.med_r if side == "right" else a.med_l)) * 0.3, 0.01)
                    tri = tri * sm * lung * _ramp(v - top, 0.03)
                    air = air * (1.0 - 0.75 * tri)
                    visible = visible * (1.0 - 0.8 * tri)
        elif f.name == "edema":
            # perihilar (bat-wing) haze with fluffy texture
            hx = 0.18
            sx, sy = (0.20, 0.26, 0.34)[sev], (0.22, 0.28, 0.34)[sev]
            haze = np.exp(-((xl - hx) / sx) ** 2 - ((v + 0.05) / sy) ** 2)
            fluffy = 0.65 + 0.35 * _smooth_noise(frng, size, 24)
            amount = (0.35, 0.5, 0.7)[sev]
            air = air * (1.0 - amount * haze * np.clip(fluffy, 0, 1.3) * lung)
            # Kerley B lines: short horizontal lines at the lateral lung bases
            wall = 1.0 - _cage(xl * (1.0 / a.W), (v - a.cyc) * (1.0 / a.H))
            periph = _ramp(0.16 - wall, 0.03) * _ramp(v - 0.0, 0.08) * lung
            ph = (v + 0.3 * frng.random()) / 0.045
            ph = ph - np.floor(ph)
            kerley = np.clip(1.0 - np.abs(ph - 0.5) / 0.16, 0.0, 1.0) * periph
            air = air * (1.0 - 0.6 * kerley)
    # --- emphysema bullae (lucent, thin-walled, no markings) --------------------------------
    if "emphysema" in by_name:
        f = by_name["emphysema"]
        frng = _rng(cseed, "render", "emphysema-bullae")
        sev = {"mild": 0, "moderate": 1, "severe": 2}[f.severity or "mild"]
        for i in range((2, 3, 5)[sev]):
            side = ("right", "left")[i % 2]
            rad = frng.uniform(0.05, 0.10)
            cu, cvv = _pick_point(a, frng, side, "upper" if i < 3 else "middle", rad)
            rs, cs = cv.window(cu, cvv, rad * 1.3)
            du, dv = u[rs, cs] - cu, v[rs, cs] - cvv
            dist = np.sqrt(du * du + dv * dv)
            inside = _ramp(rad - dist, eps)
            ring = np.clip(1.0 - np.abs(dist - rad) / (1.5 * eps), 0.0, 1.0)
            visible[rs, cs] = visible[rs, cs] * (1.0 - inside)
            extra[rs, cs] += 0.06 * ring * lung[rs, cs] - 0.04 * inside * lung[rs, cs]

    # heart overlies the lungs (silhouette): little air behind it
    lung_air_map = air * lung * (1.0 - 0.9 * heart)
    D = D - lung_air_map + extra

    # --- vascular markings radiating from the hila ------------------------------------------
    vr = _rng(cseed, "vessels")
    hxl, hyv = 0.15, -0.08
    dxh, dvh = xl - hxl, v - hyv
    rh = np.sqrt(dxh * dxh + dvh * dvh)
    th = (np.arctan2(dvh, dxh) + 0.07 * np.sin(9.0 * rh + vr.uniform(0, 6.3)) + 0.05 * np.sin(23.0 * rh + 5 * dvh)
          + 0.04 * _smooth_noise(vr, size, 10))
    idx = ((th + math.pi) * (1024 / (2 * math.pi))).astype(np.int32) + np.where(R, 0, 512)
    idx %= 1024
    p1 = _angle_profile(vr, 34, (2.5, 5.0))
    p2 = _angle_profile(vr, 90, (1.2, 2.5))
    # profile ** exponent via exp(log): one transcendental instead of pow
    l1 = np.log(p1 + 1e-6)[idx]
    l2 = np.log(p2 + 1e-6)[idx]
    vessels = (np.exp(l1 * (1.0 + 4.0 * rh) - rh / a.vessel_len)
               + 0.6 * np.exp(l2 * (2.0 + 6.0 * rh) - rh / a.vessel_len) * _ramp(rh - 0.12, 0.05))
    amp = a.vessel_amp * (1.0 + 0.3 * np.clip(v - hyv, 0, 0.5))  # lower-zone vessels larger
    if "edema" in by_name:  # upper-lobe diversion and indistinct vessels
        amp = amp * (1.0 + 0.9 * _ramp(-0.2 - v, 0.1))
    hila = np.exp(-((xl - 0.16) / 0.06) ** 2 - ((v + 0.1) / 0.1) ** 2)
    texture = 0.02 * _smooth_noise(vr, size, max(16, size // 8))
    D = D + amp * vessels * np.clip(visible, 0.0, 1.0) * (1.0 - heart) + 0.06 * hila + texture * lung

    # --- mediastinum, trachea, spine ------------------------------------------------------------
    mediast = _ramp(med + 0.01 - xl, eps) * _ramp(a.heart_top + 0.1 - v, eps) * _ramp(v + 1.0, 0.05)
    D += 0.04 * mediast
    tr_u = a.shift * 0.5
    trachea = _ramp(0.032 - np.abs(u - tr_u), eps) * _ramp(-0.33 - v, 0.02)
    carina = -0.33
    for sgn in (-1.0, 1.0):  # main bronchi
        bu, bv = u - tr_u, v - carina
        along = (sgn * bu * 0.6 + bv * 0.8)
        perp = np.abs(sgn * bu * 0.8 - bv * 0.6)
        trachea = np.maximum(trachea, _ramp(0.022 - perp, eps) * _ramp(along, eps) * _ramp(0.2 - along, 0.02))
    D -= 0.11 * trachea
    spine = _ramp(0.07 - np.abs(u - a.shift * 0.3), eps) * _ramp(v + 1.1, 0.05)
    vert = 0.45 + 0.55 * np.abs(np.sin((v + 0.02) * (math.pi / 0.085)))  # disc spaces
    D += 0.06 * spine * vert

    # --- ribs (posterior arcs and fainter anterior ribs) ---------------------------------
    dx = np.maximum(xl - 0.05, 0.0)
    q = v + a.rib_a * dx - a.rib_b * dx * dx
    g = 0.22
    tq = np.log1p(g * np.maximum(q - a.rib_q0, 0.0) / a.rib_sp) / g
    ph = tq - np.floor(tq)
    rw = 0.42
    edge = 0.5 * eps / a.rib_sp + 0.03
    inside = np.clip(np.minimum(ph, rw - ph) / edge, 0.0, 1.0)
    rib = inside * (0.55 + 0.45 * (2.0 * ph / rw - 1.0) ** 2)
    ribmask = _ramp(tq + 0.3, 0.1) * _ramp(10.2 - tq, 0.2) * _ramp(a.W + 0.05 - xl, 0.03) * _ramp(xl - 0.06, 0.02)
    D += 0.085 * rib * ribmask * (0.45 + 0.55 * lung)
    q2 = v - 0.5 * (a.W - xl)
    tq2 = (q2 - (a.rib_q0 - 0.05)) / (a.rib_sp * 1.25)
    ph2 = tq2 - np.floor(tq2)
    rib2 = np.clip(np.minimum(ph2, 0.36 - ph2) / 0.06, 0.0, 1.0)
    D += 0.04 * rib2 * _ramp(tq2, 0.1) * _ramp(6.0 - tq2, 0.2) * _ramp(xl - 0.3, 0.08) * _ramp(a.W - xl, 0.03)

    # --- clavicles and humeral heads ------------------------------------------------------
    s_cl = np.clip((xl - 0.06) / 0.58, 0.0, 1.0)
    cl_v = a.apex + 0.1 - 0.16 * s_cl + 0.035 * np.sin(2 * math.pi * s_cl)
    cl_half = 0.032 + 0.014 * (1 - s_cl)
    clav = np.clip(1.0 - ((v - cl_v) / cl_half) ** 2, 0.0, 1.0) * _ramp(xl - 0.05, 0.01) * _ramp(0.64 - xl, 0.02)
    D += 0.14 * np.sqrt(clav)
    hum = 1.0 - ((xl - (a.W + a.body_extra + 0.12)) / 0.13) ** 2 - ((v - (a.apex + 0.02)) / 0.13) ** 2
    D += 0.12 * np.sqrt(np.clip(hum, 0.0, 1.0))

    # --- gastric bubble under the left dome ---------------------------------------------
    gb = 1.0 - ((u - (a.shift + 0.38 * a.W)) / 0.09) ** 2 - ((v - (a.yd_l + 0.12)) / 0.05) ** 2
    D -= 0.12 * _ramp(gb * 0.04, eps) * _ramp(v - (a.yd_l + 0.09), eps)

    img, acq = _acquire(D, cv, style, cseed, site_key, acq_rng)
    acq.update({"scale": scale, "rotation_deg": math.degrees(rot), "shift": (tx, ty),
                "cardiothoracic_ratio": round(a.ctr, 3)})
    return img, acq


# --------------------------------------------------------------------------- acquisition

_GLYPHS = {
    "R": ["1110", "1001", "1001", "1110", "1010", "1001", "1001"],
    "L": ["1000", "1000", "1000", "1000", "1000", "1000", "1111"],
    "A": ["0110", "1001", "1001", "1111", "1001", "1001", "1001"],
}


def _acquire(D: np.ndarray, cv: _Canvas, style: SiteStyle, cseed: int, site_key: str,
             rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Attenuation map -> display image: tone curve, blur, edge enhancement, noise, borders."""
    size = D.shape[0]
    px = size / 256.0
    lo = rng.uniform(-0.06, 0.06)
    hi = rng.uniform(0.82, 1.0)
    gamma = style.gamma * rng.uniform(0.85, 1.15)
    x = np.clip((D - lo) / (hi - lo), 0.0, 1.0)
    c = style.contrast * rng.uniform(0.8, 1.2)
    if c > 0.05:
        s0, s1 = 1 / (1 + math.exp(c / 2)), 1 / (1 + math.exp(-c / 2))
        x = (1.0 / (1.0 + np.exp(-c * (x - 0.5))) - s0) / (s1 - s0)
    img = np.clip(x, 0.0, 1.0) ** gamma
    img = _blur(img.astype(np.float32), style.blur_px * px)
    if style.edge_enhance > 0:
        img = img + style.edge_enhance * (img - _box(img, int(6 * px) | 1))
    nrng = _rng(cseed, "noise", site_key)
    noise = nrng.standard_normal((size, size), dtype=np.float32)
    if style.grain_px > 0:
        noise = _blur(noise, style.grain_px * px) * (1.0 + style.grain_px)
    img = img + style.noise * np.sqrt(np.clip(img, 0.0, 1.0) + 0.05) * noise
    img = style.fog + (1.0 - style.fog) * img
    # collimator borders: unexposed detector shows bright
    if rng.random() < style.collimation_prob:
        X, Y = _grid(size)
        m = rng.uniform(0.02, 0.1, 4)
        border = (X < -1 + m[0]) | (X > 1 - m[1]) | (Y < -1 + m[2] * 0.5) | (Y > 1 - m[3])
        img = np.where(border, np.float32(0.9) + 0.02 * noise, img)
    # side marker in the upper outer corner (outside the body)
    glyph = _GLYPHS[style.marker]
    k = max(1, size // 128)
    bmp = np.kron(np.array([[int(ch) for ch in row] for row in glyph], np.float32), np.ones((k, k), np.float32))
    r0 = int(0.04 * size)
    c0 = int(0.05 * size) if style.marker != "L" else size - int(0.05 * size) - bmp.shape[1]
    patch = img[r0:r0 + bmp.shape[0], c0:c0 + bmp.shape[1]]
    img[r0:r0 + bmp.shape[0], c0:c0 + bmp.shape[1]] = np.maximum(patch, 0.95 * bmp)
    img = np.clip(img, 0.0, 1.0).astype(np.float32)
    acq = {"site": style.name, "modality": style.modality, "photometric": style.photometric,
           "bits_stored": style.bits_stored, "view_position": style.view_position,
           "pixel_spacing_mm": style.pixel_spacing_mm * 2048 / size, "gamma": gamma,
           "window": (lo, hi)}
    return img, acq


# --------------------------------------------------------------------------- public API


def generate_case(index: int, *, seed: int = 0, site: str = "site_a", size: int = 256,
                  findings: Sequence[Finding] | None = None, withhold: Sequence[str] = ()) -> PhantomCase:
    """Generate case `index` of the phantom series `seed` as acquired at `site`.

    Args:
        index: case number (>= 0); with `seed` it fixes anatomy and findings.
        seed: base seed of the series (>= 0).
        site: key of SITES; changes the acquisition only.
        size: image side in pixels (32..4096).
        findings: override the sampled findings (e.g. to render the same patient without
            one finding); None draws them with `sample_findings`.
        withhold: finding names the report must not name (described by their signs only).

    Returns:
        PhantomCase with image, labels and report.
    """
    index = _check_int("index", index)
    seed = _check_int("seed", seed)
    if site not in SITES:
        raise ValueError(f"site must be one of {tuple(SITES)}, got {site!r}")
    size = _check_int("size", size, 32)
    if size > 4096:
        raise ValueError(f"size must be <= 4096, got {size}")
    cseed = case_seed(seed, index)
    found = list(sample_findings(index, seed=seed) if findings is None else findings)
    for f in found:
        if not isinstance(f, Finding):
            raise ValueError(f"findings must contain Finding objects, got {type(f).__name__}")
    anat = _sample_anatomy(cseed)
    _apply_anatomy_effects(anat, found)
    image, acq = _render(anat, found, cseed, SITES[site], size, site)
    from .reports import write_report  # local import: reports imports this module

    report = write_report(found, seed=cseed, withhold=withhold)
    return PhantomCase(index=index, seed=seed, site=site, findings=found,
                       labels=labels_from_findings(found), report=report, image=image,
                       acquisition=acq)


def generate_cases(n: int, *, seed: int = 0, sites: Sequence[str] = ("site_a",),
                   size: int = 256, start: int = 0, withhold: Sequence[str] = ()) -> Iterator[PhantomCase]:
    """Yield cases start .. start+n-1; case i is acquired at sites[i % len(sites)]."""
    n = _check_int("n", n)
    start = _check_int("start", start)
    if isinstance(sites, str) or not sites:
        raise ValueError(f"sites must be a non-empty sequence of site names, got {sites!r}")
    for s in sites:
        if s not in SITES:
            raise ValueError(f"sites must contain only {tuple(SITES)}, got {s!r}")
    for i in range(start, start + n):
        yield generate_case(i, seed=seed, site=sites[i % len(sites)], size=size, withhold=withhold)


def to_stored(image: np.ndarray, bits: int = 12,
              monochrome: str = "MONOCHROME2") -> tuple[np.ndarray, float, float]:
    """Display image in [0, 1] -> stored uint16 pixels and a VOI window that displays it.

    The image is mapped to the middle 90% of the stored range (real detectors leave
    headroom); MONOCHROME1 stores high values for dark pixels. Displaying the stored
    values with the returned window (DICOM LINEAR function) and, for MONOCHROME1, inverting,
    gives back `image` to within one stored step (see `from_stored`).

    Returns:
        (stored uint16 array, WindowCenter, WindowWidth)
    """
    if not isinstance(bits, (int, np.integer)) or not 12 <= bits <= 16:
        raise ValueError(f"bits must be an integer in 12..16, got {bits!r}")
    if monochrome not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(f"monochrome must be 'MONOCHROME1' or 'MONOCHROME2', got {monochrome!r}")
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {img.shape}")
    top = float(2 ** int(bits) - 1)
    lo, span = round(0.05 * top), round(0.9 * top)
    x = np.clip(img, 0.0, 1.0)
    if monochrome == "MONOCHROME1":
        x = 1.0 - x
    stored = np.rint(lo + x * span).astype(np.uint16)
    # LINEAR: y = ((v - (c - 0.5)) / (w - 1) + 0.5) maps lo -> 0 and lo+span -> 1
    width = float(span + 1)
    center = float(lo + span / 2 + 0.5)
    return stored, center, width


def from_stored(stored: np.ndarray, center: float, width: float,
                monochrome: str = "MONOCHROME2") -> np.ndarray:
    """Apply the DICOM LINEAR VOI window (and MONOCHROME1 inversion): stored -> [0, 1]."""
    if monochrome not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(f"monochrome must be 'MONOCHROME1' or 'MONOCHROME2', got {monochrome!r}")
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    y = np.clip((np.asarray(stored, np.float64) - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)
    if monochrome == "MONOCHROME1":
        y = 1.0 - y
    return y.astype(np.float32)
