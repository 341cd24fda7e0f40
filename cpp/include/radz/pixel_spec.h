#pragma once
/// The DICOM grayscale pipeline parameters of one image (mirrors python/radz_engine/pixel_spec.py).
///
/// stored value -> bits-stored mask / sign extension -> padding test
/// -> modality (slope * v + intercept)
/// -> VOI: LUT table, or window (LINEAR / LINEAR_EXACT / SIGMOID), or min-max of the image
/// -> MONOCHROME1 inversion -> intensity in [0, 1]; padding pixels -> 0.

#include <cstdint>
#include <optional>
#include <vector>

namespace radz {

/// DICOM VOILUTFunction (PS3.3 C.11.2.1.3).
enum class VoiFunction { kLinear, kLinearExact, kSigmoid };

struct PixelSpec {
  /// Modality LUT: modality = stored * rescale_slope + rescale_intercept.
  double rescale_slope = 1.0;
  double rescale_intercept = 0.0;
  /// VOI window; both set or neither. Ignored when voi_lut is non-empty.
  std::optional<double> window_center;
  std::optional<double> window_width;
  VoiFunction voi_function = VoiFunction::kLinear;
  /// VOI LUT table; entry index = round(modality) - voi_lut_first, clamped to the table.
  std::vector<double> voi_lut;
  int64_t voi_lut_first = 0;
  /// Bits per LUT entry: intensity = entry / (2^voi_lut_bits - 1).
  int voi_lut_bits = 16;
  /// MONOCHROME1: high stored values are dark.
  bool invert = false;
  /// BitsStored; 0 = the full width of the pixel type.
  int bits_stored = 0;
  /// PixelPaddingValue and PixelPaddingRangeLimit, in stored values.
  std::optional<double> padding_value;
  std::optional<double> padding_limit;
};

/// Throws std::invalid_argument naming the offending field ("spec.window_width: ...").
void validate(const PixelSpec& spec);

}  // namespace radz
