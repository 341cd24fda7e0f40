"""How stored pixel values become display intensities: the DICOM grayscale pipeline.

A `PixelSpec` travels with every image from the reader (DICOM, PNG, numpy) to the
preprocessor. The order of operations is the DICOM one (PS3.3 C.11):

    stored value -> bits-stored mask / sign extension -> padding test
    -> modality LUT (slope * v + intercept)
    -> VOI: LUT table, or window (LINEAR / LINEAR_EXACT / SIGMOID), or min-max of the image
    -> MONOCHROME1 inversion -> intensity in [0, 1] (padding pixels -> 0)

The numpy reference (`reference.py`) and the C++ core (`cpp/src/preprocess.cpp`)
implement exactly this; this module holds the parameters, and the C++ core validates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

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
    window_center: float | None = None
    window_width: float | None = None
    voi_function: str = "LINEAR"
    voi_lut: np.ndarray | None = field(default=None, compare=False)
    voi_lut_first: int = 0
    voi_lut_bits: int = 16
    invert: bool = False
    bits_stored: int = 0
    padding_value: float | None = None
    padding_limit: float | None = None

    def __post_init__(self) -> None:
        # Only conversions here (numbers, enum names, a 1-D table); the value rules are defined
        # once, in the C++ core (cpp/src/pixel_spec.cpp), and applied through to_core().
        for name in (
            "rescale_slope",
            "rescale_intercept",
            "window_center",
            "window_width",
            "padding_value",
            "padding_limit",
        ):
            value = getattr(self, name)
            if value is not None:
                _check_number(name, value)
        if self.voi_function not in VOI_FUNCTIONS:
            raise ValueError(f"voi_function: must be one of {VOI_FUNCTIONS}, got {self.voi_function!r}")
        if self.voi_lut is not None:
            lut = np.asarray(self.voi_lut)
            if lut.ndim != 1 or lut.size == 0:
                raise ValueError(f"voi_lut: must be a non-empty 1-D table, got shape {lut.shape}")
        to_core(self).validate()

    def with_(self, **changes) -> PixelSpec:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain types, for JSON and for the C++ binding."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "voi_lut"}
        out["voi_lut"] = None if self.voi_lut is None else np.asarray(self.voi_lut).tolist()
        return out


def _check_number(name: str, value) -> None:
    try:
        float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: must be a number, got {value!r}") from None


def to_core(spec: PixelSpec):
    """The C++ `_core.PixelSpec` of a PixelSpec (not validated: call .validate() on it)."""
    from radz_engine import _core

    out = _core.PixelSpec()
    out.rescale_slope = float(spec.rescale_slope)
    out.rescale_intercept = float(spec.rescale_intercept)
    out.window_center = None if spec.window_center is None else float(spec.window_center)
    out.window_width = None if spec.window_width is None else float(spec.window_width)
    out.voi_function = _core.VoiFunction.__members__[spec.voi_function]
    if spec.voi_lut is not None:
        out.voi_lut = np.asarray(spec.voi_lut, dtype=np.float64).tolist()
    out.voi_lut_first = int(spec.voi_lut_first)
    out.voi_lut_bits = int(spec.voi_lut_bits)
    out.invert = bool(spec.invert)
    out.bits_stored = int(spec.bits_stored)
    out.padding_value = None if spec.padding_value is None else float(spec.padding_value)
    out.padding_limit = None if spec.padding_limit is None else float(spec.padding_limit)
    return out


def spec_for_8bit() -> PixelSpec:
    """Ordinary 8-bit images (PNG, JPEG): 0..255 maps exactly onto 0..1."""
    return PixelSpec(window_center=127.5, window_width=255.0, voi_function="LINEAR_EXACT")
