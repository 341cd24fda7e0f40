"""Acquisition: site styles, patient placement, tone curve, blur, noise, collimation, side marker.

The acquisition depends on the site as well as the case, so the same patient acquired at two
sites differs only here (external-validation splits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from radz_train.data.phantom.numeric import blur, box, grid
from radz_train.data.phantom.patient import Anatomy
from radz_train.data.phantom.seeding import stream

__all__ = ["SITES", "SiteStyle", "acquire", "placement"]


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
}  # fmt: skip

_GLYPHS = {
    "R": ["1110", "1001", "1001", "1110", "1010", "1001", "1001"],
    "L": ["1000", "1000", "1000", "1000", "1000", "1000", "1111"],
    "A": ["0110", "1001", "1001", "1111", "1001", "1001", "1001"],
}


def placement(rng: np.random.Generator, style: SiteStyle, a: Anatomy) -> tuple[float, float, float, float]:
    """(scale, rotation in radians, x shift, y shift) of the patient in the image."""
    scale = 1.04 * style.fov_scale * rng.uniform(0.93, 1.07) * (0.96 + 0.3 * (0.14 - a.body_extra))
    rot = math.radians(rng.uniform(-style.rotation_deg, style.rotation_deg))
    tx, ty = rng.uniform(-0.04, 0.04), rng.uniform(-0.08, 0.01)
    return scale, rot, tx, ty


def _tone(D: np.ndarray, style: SiteStyle, rng: np.random.Generator) -> tuple[np.ndarray, float, float, float]:
    """Exposure window, S-shaped tone curve and gamma: (image, window low, window high, gamma)."""
    lo = rng.uniform(-0.06, 0.06)
    hi = rng.uniform(0.82, 1.0)
    gamma = style.gamma * rng.uniform(0.85, 1.15)
    x = np.clip((D - lo) / (hi - lo), 0.0, 1.0)
    c = style.contrast * rng.uniform(0.8, 1.2)
    if c > 0.05:
        s0, s1 = 1 / (1 + math.exp(c / 2)), 1 / (1 + math.exp(-c / 2))
        x = (1.0 / (1.0 + np.exp(-c * (x - 0.5))) - s0) / (s1 - s0)
    return np.clip(x, 0.0, 1.0) ** gamma, lo, hi, gamma


def _detector(img: np.ndarray, style: SiteStyle, px: float, nrng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """System blur, edge enhancement, quantum noise and fog: (image, the noise field)."""
    size = img.shape[0]
    img = blur(img.astype(np.float32), style.blur_px * px)
    if style.edge_enhance > 0:
        img = img + style.edge_enhance * (img - box(img, int(6 * px) | 1))
    noise = nrng.standard_normal((size, size), dtype=np.float32)
    if style.grain_px > 0:
        noise = blur(noise, style.grain_px * px) * (1.0 + style.grain_px)
    img = img + style.noise * np.sqrt(np.clip(img, 0.0, 1.0) + 0.05) * noise
    return style.fog + (1.0 - style.fog) * img, noise


def _collimate(img: np.ndarray, noise: np.ndarray, style: SiteStyle, rng: np.random.Generator) -> np.ndarray:
    """Collimator borders, sometimes: unexposed detector shows bright."""
    if rng.random() < style.collimation_prob:
        X, Y = grid(img.shape[0])
        m = rng.uniform(0.02, 0.1, 4)
        border = (X < -1 + m[0]) | (X > 1 - m[1]) | (Y < -1 + m[2] * 0.5) | (Y > 1 - m[3])
        img = np.where(border, np.float32(0.9) + 0.02 * noise, img)
    return img


def _side_marker(img: np.ndarray, style: SiteStyle) -> None:
    """The site's side-marker letter in the upper outer corner (outside the body), in place."""
    size = img.shape[0]
    glyph = _GLYPHS[style.marker]
    k = max(1, size // 128)
    bmp = np.kron(np.array([[int(ch) for ch in row] for row in glyph], np.float32), np.ones((k, k), np.float32))
    r0 = int(0.04 * size)
    c0 = int(0.05 * size) if style.marker != "L" else size - int(0.05 * size) - bmp.shape[1]
    patch = img[r0 : r0 + bmp.shape[0], c0 : c0 + bmp.shape[1]]
    img[r0 : r0 + bmp.shape[0], c0 : c0 + bmp.shape[1]] = np.maximum(patch, 0.95 * bmp)


def acquire(
    D: np.ndarray, style: SiteStyle, cseed: int, site_key: str, rng: np.random.Generator
) -> tuple[np.ndarray, dict]:
    """Attenuation map -> display image in [0, 1] and the acquisition parameters.

    `rng` is the case's acquisition stream (after `placement`); the noise has its own stream.
    """
    size = D.shape[0]
    px = size / 256.0
    img, lo, hi, gamma = _tone(D, style, rng)
    img, noise = _detector(img, style, px, stream(cseed, "noise", site_key))
    img = _collimate(img, noise, style, rng)
    _side_marker(img, style)
    img = np.clip(img, 0.0, 1.0).astype(np.float32)
    acq = {
        "site": style.name,
        "modality": style.modality,
        "photometric": style.photometric,
        "bits_stored": style.bits_stored,
        "view_position": style.view_position,
        "pixel_spacing_mm": style.pixel_spacing_mm * 2048 / size,
        "gamma": gamma,
        "window": (lo, hi),
    }
    return img, acq
