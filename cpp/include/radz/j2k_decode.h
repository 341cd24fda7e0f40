#pragma once
/// JPEG 2000 / HTJ2K decoding at a reduced resolution level (OpenJPEG's resolution reduction).
///
/// A JPEG 2000 codestream holds its image as a wavelet pyramid: resolution level r (0 = full)
/// is the image low-passed and subsampled by 2^r, and OpenJPEG decodes it without touching the
/// finer levels, so a 2048-px radiograph needed at 224 px decodes at 256 px for a fraction of
/// the cost. Built only when OpenJPEG is found (RADZ_HAVE_OPENJPEG); `j2k_available()` says so.
/// Thread-safe: every call has its own codec; no global state. Single-component images only.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace radz {

/// One decoded grayscale component.
struct J2kImage {
  int64_t height = 0;
  int64_t width = 0;
  int precision = 0;       ///< bits per sample in the codestream (1..16 supported)
  bool is_signed = false;  ///< two's complement samples (stored as int16 bit patterns in `data`)
  int reduce = 0;          ///< resolution levels discarded: the image is the full one / 2^reduce
  int full_height = 0;     ///< the full-resolution size, from the header
  int full_width = 0;
  std::vector<uint16_t> data;  ///< height * width samples, row-major
};

/// True when the core was built with OpenJPEG.
bool j2k_available();

/// The OpenJPEG version string ("" without OpenJPEG).
std::string openjpeg_version();

/// The largest reduction r <= max_reduce with ceil(side / 2^r) >= min_size for both sides
/// (0 when min_size <= 0 or the image is already smaller than min_size).
int j2k_choose_reduce(int64_t height, int64_t width, int max_reduce, int64_t min_size);

/// Decodes a J2K codestream (or a JP2 file) at the largest reduction that keeps both sides
/// >= min_size (min_size <= 0: full resolution). Throws std::invalid_argument on data that is not
/// a single-component JPEG 2000 image of 1..16 bits, std::runtime_error when OpenJPEG fails or the
/// core was built without it.
J2kImage j2k_decode(const uint8_t* data, size_t size, int64_t min_size);

}  // namespace radz
