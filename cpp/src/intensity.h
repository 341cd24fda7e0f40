#pragma once
/// Stored pixel rows -> display intensities in [0, 1] (the grayscale pipeline of PixelSpec).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "radz/image.h"
#include "radz/pixel_spec.h"

namespace radz {

/// Maps rows of one image. Integer images use a table with one entry per stored bit pattern
/// that BitsStored allows (2^BitsStored entries, index = pattern & mask), so the per-pixel cost
/// is one lookup whatever the spec:
///   - specs that do not depend on the image (window, VOI LUT) share their table through a
///     bounded, thread-safe cache keyed by pixel type, BitsStored and every spec field;
///   - min-max specs (no window, no LUT) depend on the image's range: a table is built for the
///     image when it has at least as many pixels as the table has entries, else each pixel is
///     computed directly (a 16x16 image does not pay for 65,536 entries).
/// Float images are mapped pixel by pixel in double precision: when the mapping is a clamped affine
/// function of the stored value (no VOI LUT; LINEAR or LINEAR_EXACT window, or min-max; with or
/// without inversion and padding) by one branch-free loop with per-image coefficients, otherwise
/// (SIGMOID, VOI LUT, a LINEAR window of width 1, extreme coefficients) by intensity().
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

  /// How this mapper maps pixels (exposed for tests): "table", "cached table", "direct" (integer
  /// types), "float affine" or "float".
  const char* strategy() const;

 private:
  bool is_padding(double stored) const;
  double stored_value(uint32_t index) const;  // index = pattern & mask_: sign-extended for signed types
  float direct(uint32_t pattern) const { return static_cast<float>(intensity(stored_value(pattern & mask_))); }
  void find_min_max();
  void scan_float(const std::string& name);  // NaN/Inf check, padding keys, min-max, then prepare_affine
  void prepare_affine(double largest);
  std::shared_ptr<const std::vector<float>> build_table() const;

  ImageView image_;
  PixelSpec spec_;
  std::shared_ptr<const std::vector<float>> table_;  // integer types: intensity per index (or null: direct)
  const float* lut_ = nullptr;                       // table_->data()
  uint32_t mask_ = 0;                                // integer types: 2^bits - 1
  int bits_ = 0;                                     // integer types: effective BitsStored
  bool cached_ = false;
  bool min_max_ = false;  // no LUT and no window: stretch the image's own range
  double low_ = 0.0;
  double high_ = 0.0;
  // Float pixels on the affine path: y = clamp(v * a_ + b_, 0, 1), inversion folded in.
  bool affine_ = false;
  double a_ = 0.0;
  double b_ = 0.0;
  // Float pixels: the padding range as float order keys (empty, lo > hi, without padding).
  int32_t pad_lo_ = INT32_MAX;
  int32_t pad_hi_ = INT32_MIN;
};

/// The shared table cache: counters for tests and benchmarks.
struct IntensityCacheStats {
  size_t entries = 0;
  size_t hits = 0;
  size_t misses = 0;
};
IntensityCacheStats intensity_cache_stats();
/// Empties the cache and zeroes its counters (tests, benchmarks).
void clear_intensity_cache();
/// Most tables the cache keeps (least recently used ones are dropped first).
constexpr size_t kIntensityCacheCapacity = 32;

}  // namespace radz
