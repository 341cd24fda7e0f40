"""How stored pixel values become display intensities: the DICOM grayscale pipeline.

A `PixelSpec` travels with every image from the reader (DICOM, PNG, numpy) to the
preprocessor. The order of operations is the DICOM one (PS3.3 C.11):

    stored value -> bits-stored mask / sign extension -> padding test
    -> modality LUT (slope * v + intercept)
    -> VOI: LUT table, or window (LINEAR / LINEAR_EXACT / SIGMOID), or min-max of the image
    -> MONOCHROME1 inversion -> intensity in [0, 1] (padding pixels -> 0)

The numpy reference (`preprocess_reference.py`) and the C++ core (`cpp/src/preprocess.cpp`)
implement exactly this; this module only holds and validates the parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


@dataclass(frozen=True)
class PixelSpec:
    """Parameters of the grayscale pipeline for one image.

    Attributes:
        rescale_slope, rescale_intercept: modality LUT (RescaleSlope / RescaleIntercept).
        window_center, window_width: VOI window; both or neither. Ignored when `voi_lut` is set.
        voi_function: DICOM VOILUTFunction: LINEAR, LINEAR_EXACT or SIGMOID.
        voi_lut: VOI LUT table (LUTData) as a 1-D array; input = modality value - voi_lut_first.
        voi_lut_first: first modality value mapped (LUTDescriptor[1]).
        voi_lut_bits: bits per LUT entry (LUTDescriptor[2]); output = entry / (2**bits - 1).
        invert: True for MONOCHROME1 (high values are dark).
        bits_stored: BitsStored; 0 means the full width of the pixel dtype. Integer pixels are
            masked (unsigned) or sign-extended (signed) to this many bits first.
        padding_value, padding_limit: PixelPaddingValue and PixelPaddingRangeLimit, in stored
            values. Padding pixels become intensity 0 and are excluded from min-max.
    """

    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    window_center: Optional[float] = None
    window_width: Optional[float] = None
    voi_function: str = "LINEAR"
    voi_lut: Optional[np.ndarray] = field(default=None, compare=False)
    voi_lut_first: int = 0
    voi_lut_bits: int = 16
    invert: bool = False
    bits_stored: int = 0
    padding_value: Optional[float] = None
    padding_limit: Optional[float] = None

    def __post_init__(self) -> None:
        _check_finite("rescale_slope", self.rescale_slope)
        _check_finite("rescale_intercept", self.rescale_intercept)
        if self.rescale_slope == 0:
            raise ValueError("rescale_slope: must not be 0")
        if (self.window_center is None) != (self.window_width is None):
            raise ValueError("window_center/window_width: give both or neither")
        if self.window_center is not None:
            _check_finite("window_center", self.window_center)
            _check_finite("window_width", self.window_width)
            if self.voi_function == "LINEAR" and not self.window_width >= 1.0:
                raise ValueError(f"window_width: must be >= 1 for LINEAR, got {self.window_width}")
            if not self.window_width > 0.0:
                raise ValueError(f"window_width: must be > 0, got {self.window_width}")
        if self.voi_function not in VOI_FUNCTIONS:
            raise ValueError(f"voi_function: must be one of {VOI_FUNCTIONS}, got {self.voi_function!r}")
        if self.voi_lut is not None:
            lut = np.asarray(self.voi_lut)
            if lut.ndim != 1 or lut.size == 0:
                raise ValueError(f"voi_lut: must be a non-empty 1-D table, got shape {lut.shape}")
            if not np.all(np.isfinite(lut.astype(np.float64))):
                raise ValueError("voi_lut: contains NaN or Inf")
            if not 1 <= self.voi_lut_bits <= 16:
                raise ValueError(f"voi_lut_bits: must be in 1..16, got {self.voi_lut_bits}")
        if not 0 <= self.bits_stored <= 32:
            raise ValueError(f"bits_stored: must be in 0..32, got {self.bits_stored}")
        for name in ("padding_value", "padding_limit"):
            value = getattr(self, name)
            if value is not None:
                _check_finite(name, value)
        if self.padding_limit is not None and self.padding_value is None:
            raise ValueError("padding_limit: needs padding_value")

    def with_(self, **changes) -> "PixelSpec":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain types, for JSON and for the C++ binding."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "voi_lut"}
        out["voi_lut"] = None if self.voi_lut is None else np.asarray(self.voi_lut).tolist()
        return out


def _check_finite(name: str, value) -> None:
    try:
        ok = math.isfinite(float(value))
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a number, got {value!r}") from None
    if not ok:
        raise ValueError(f"{name}: must be finite, got {value!r}")


def spec_for_8bit() -> PixelSpec:
    """Ordinary 8-bit images (PNG, JPEG): 0..255 maps exactly onto 0..1."""
    return PixelSpec(window_center=127.5, window_width=255.0, voi_function="LINEAR_EXACT")
