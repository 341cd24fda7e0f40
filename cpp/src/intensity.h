#pragma once
/// Stored pixel rows -> display intensities in [0, 1] (the grayscale pipeline of PixelSpec).

#include <cstdint>
#include <vector>

#include "radz/image.h"
#include "radz/pixel_spec.h"

namespace radz {

/// Maps rows of one image. Integer images use a table over every possible stored bit pattern
/// (256 or 65536 entries), so the per-pixel cost is one lookup whatever the spec; float images
/// are mapped pixel by pixel in double precision.
class IntensityMapper {
 public:
  /// Scans the image once when the spec needs it (min-max VOI, NaN check for float pixels).
  /// Throws std::invalid_argument("<name>: ...") for float pixels that are NaN or Inf.
  IntensityMapper(const ImageView& image, const PixelSpec& spec, const std::string& name);

  /// Writes the intensities of row y (image.width values) to out.
  void map_row(int64_t y, float* out) const;

  /// acc[x] += weight * intensity of row y, pixel x (fused map + accumulate for resampling).
  void accumulate_row(int64_t y, double weight, double* acc) const;

  /// Intensity of one stored value after bits-stored handling (exposed for tests).
  double intensity(double stored) const;

 private:
  bool is_padding(double stored) const;
  double stored_value(uint32_t bit_pattern) const;  // integer types: mask / sign-extend

  ImageView image_;
  PixelSpec spec_;
  std::vector<float> table_;  // integer types: intensity per bit pattern
  bool min_max_ = false;      // no LUT and no window: stretch the image's own range
  double low_ = 0.0;
  double high_ = 0.0;
};

}  // namespace radz
