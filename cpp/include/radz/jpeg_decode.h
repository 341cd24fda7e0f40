#pragma once
/// JPEG baseline (8-bit, grayscale) decoding with libjpeg-turbo's DCT scaling: the inverse DCT
/// is computed at 1/2, 1/4 or 1/8 size (at 1/8, each 8x8 block's mean), so a 2048-px radiograph
/// needed at 256 px never materialises at full size. Built only with libjpeg
/// (RADZ_HAVE_LIBJPEG); `jpeg_available()` says so. Thread-safe: one decompressor per call.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace radz {

struct JpegImage {
  int64_t height = 0;
  int64_t width = 0;
  int scale_denom = 1;  ///< the image is the full one / scale_denom (1, 2, 4 or 8)
  std::vector<uint8_t> data;
};

/// True when the core was built with libjpeg(-turbo).
bool jpeg_available();

/// The largest denom in {1, 2, 4, 8} with ceil(side / denom) >= min_size for both sides.
int jpeg_choose_scale(int64_t height, int64_t width, int64_t min_size);

/// Decodes an 8-bit single-component JPEG (baseline or extended DCT) at the largest 1/denom
/// scale that keeps both sides >= min_size (<= 0: full size). Throws std::invalid_argument on
/// data that is not such a JPEG, std::runtime_error when the core has no libjpeg.
JpegImage jpeg_decode(const uint8_t* data, size_t size, int64_t min_size);

}  // namespace radz
