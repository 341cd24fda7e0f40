"""Stored DICOM pixel values of a display image, and back (VOI LINEAR window, MONOCHROME1 inversion)."""

from __future__ import annotations

import numpy as np

__all__ = ["from_stored", "to_stored"]


def to_stored(image: np.ndarray, bits: int = 12, monochrome: str = "MONOCHROME2") -> tuple[np.ndarray, float, float]:
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


def from_stored(stored: np.ndarray, center: float, width: float, monochrome: str = "MONOCHROME2") -> np.ndarray:
    """Apply the DICOM LINEAR VOI window (and MONOCHROME1 inversion): stored -> [0, 1]."""
    if monochrome not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(f"monochrome must be 'MONOCHROME1' or 'MONOCHROME2', got {monochrome!r}")
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    y = np.clip((np.asarray(stored, np.float64) - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)
    if monochrome == "MONOCHROME1":
        y = 1.0 - y
    return y.astype(np.float32)
