#include "intensity.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "radz/errors.h"

namespace radz {
namespace {

template <typename T>
T load(const unsigned char* row, int64_t x) {
  T value;
  std::memcpy(&value, row + x * static_cast<int64_t>(sizeof(T)), sizeof(T));
  return value;
}

int type_bits(PixelType type) { return static_cast<int>(pixel_size(type) * 8); }

}  // namespace

IntensityMapper::IntensityMapper(const ImageView& image, const PixelSpec& spec, const std::string& name)
    : image_(image), spec_(spec) {
  min_max_ = spec_.voi_lut.empty() && !spec_.window_width.has_value();
  if (image_.type == PixelType::kFloat32) {
    double low = std::numeric_limits<double>::infinity();
    double high = -low;
    for (int64_t y = 0; y < image_.height; ++y) {
      const unsigned char* row = image_.row(y);
      for (int64_t x = 0; x < image_.width; ++x) {
        const double v = load<float>(row, x);
        if (!std::isfinite(v)) throw_invalid(name, "contains NaN or Inf");
        if (min_max_ && !is_padding(v)) {
          const double m = v * spec_.rescale_slope + spec_.rescale_intercept;
          low = std::min(low, m);
          high = std::max(high, m);
        }
      }
    }
    low_ = low;
    high_ = high;
    return;
  }
  const uint32_t patterns = 1u << type_bits(image_.type);
  if (min_max_) {
    // Which bit patterns occur: one cheap pass, then min/max over the (small) table.
    std::vector<unsigned char> present(patterns, 0);
    for (int64_t y = 0; y < image_.height; ++y) {
      const unsigned char* row = image_.row(y);
      if (image_.type == PixelType::kUint8) {
        for (int64_t x = 0; x < image_.width; ++x) present[row[x]] = 1;
      } else {
        for (int64_t x = 0; x < image_.width; ++x) present[load<uint16_t>(row, x)] = 1;
      }
    }
    double low = std::numeric_limits<double>::infinity();
    double high = -low;
    for (uint32_t p = 0; p < patterns; ++p) {
      if (!present[p]) continue;
      const double v = stored_value(p);
      if (is_padding(v)) continue;
      const double m = v * spec_.rescale_slope + spec_.rescale_intercept;
      low = std::min(low, m);
      high = std::max(high, m);
    }
    low_ = low;
    high_ = high;
  }
  table_.resize(patterns);
  for (uint32_t p = 0; p < patterns; ++p) table_[p] = static_cast<float>(intensity(stored_value(p)));
}

double IntensityMapper::stored_value(uint32_t bit_pattern) const {
  const int width = type_bits(image_.type);
  const bool is_signed = image_.type == PixelType::kInt16;
  int bits = spec_.bits_stored;
  if (bits == 0 || bits >= width) {
    if (is_signed) return static_cast<double>(static_cast<int16_t>(static_cast<uint16_t>(bit_pattern)));
    return static_cast<double>(bit_pattern);
  }
  const int64_t masked = static_cast<int64_t>(bit_pattern & ((1u << bits) - 1u));
  if (!is_signed) return static_cast<double>(masked);
  const int64_t sign = int64_t{1} << (bits - 1);
  return static_cast<double>((masked ^ sign) - sign);
}

bool IntensityMapper::is_padding(double stored) const {
  if (!spec_.padding_value) return false;
  if (!spec_.padding_limit) return stored == *spec_.padding_value;
  const double lo = std::min(*spec_.padding_value, *spec_.padding_limit);
  const double hi = std::max(*spec_.padding_value, *spec_.padding_limit);
  return stored >= lo && stored <= hi;
}

double IntensityMapper::intensity(double stored) const {
  if (is_padding(stored)) return 0.0;
  const double m = stored * spec_.rescale_slope + spec_.rescale_intercept;
  double y;
  if (!spec_.voi_lut.empty()) {
    const double last = static_cast<double>(spec_.voi_lut.size() - 1);
    const double index = std::clamp(std::floor(m + 0.5) - static_cast<double>(spec_.voi_lut_first), 0.0, last);
    const double full_scale = static_cast<double>((int64_t{1} << spec_.voi_lut_bits) - 1);
    y = std::clamp(spec_.voi_lut[static_cast<size_t>(index)] / full_scale, 0.0, 1.0);
  } else if (spec_.window_width) {
    const double c = *spec_.window_center;
    const double w = *spec_.window_width;
    switch (spec_.voi_function) {
      case VoiFunction::kLinear:
        y = (w == 1.0) ? (m > c - 0.5 ? 1.0 : 0.0) : std::clamp((m - (c - 0.5)) / (w - 1.0) + 0.5, 0.0, 1.0);
        break;
      case VoiFunction::kLinearExact:
        y = std::clamp((m - c) / w + 0.5, 0.0, 1.0);
        break;
      case VoiFunction::kSigmoid:
      default:
        y = 1.0 / (1.0 + std::exp(-4.0 * (m - c) / w));
        break;
    }
  } else {
    y = (high_ > low_) ? std::clamp((m - low_) / (high_ - low_), 0.0, 1.0) : 0.0;
  }
  return spec_.invert ? 1.0 - y : y;
}

// Hot loops: cloned for AVX2 where the CPU has it (chosen at load time), portable otherwise.
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define RADZ_HOT __attribute__((target_clones("avx2", "default")))
#else
#define RADZ_HOT
#endif

namespace {

RADZ_HOT void accumulate_u8(const unsigned char* row, int64_t n, const float* table, double weight, double* acc) {
  for (int64_t x = 0; x < n; ++x) acc[x] += weight * static_cast<double>(table[row[x]]);
}

RADZ_HOT void accumulate_u16(const uint16_t* row, int64_t n, const float* table, double weight, double* acc) {
  for (int64_t x = 0; x < n; ++x) acc[x] += weight * static_cast<double>(table[row[x]]);
}

}  // namespace

void IntensityMapper::accumulate_row(int64_t y, double weight, double* acc) const {
  const unsigned char* row = image_.row(y);
  const int64_t n = image_.width;
  switch (image_.type) {
    case PixelType::kUint8:
      accumulate_u8(row, n, table_.data(), weight, acc);
      break;
    case PixelType::kUint16:
    case PixelType::kInt16:
      if (reinterpret_cast<uintptr_t>(row) % alignof(uint16_t) == 0) {
        accumulate_u16(reinterpret_cast<const uint16_t*>(row), n, table_.data(), weight, acc);
      } else {
        for (int64_t x = 0; x < n; ++x) acc[x] += weight * static_cast<double>(table_[load<uint16_t>(row, x)]);
      }
      break;
    case PixelType::kFloat32:
      for (int64_t x = 0; x < n; ++x) acc[x] += weight * intensity(load<float>(row, x));
      break;
  }
}

void IntensityMapper::map_row(int64_t y, float* out) const {
  const unsigned char* row = image_.row(y);
  const int64_t n = image_.width;
  switch (image_.type) {
    case PixelType::kUint8:
      for (int64_t x = 0; x < n; ++x) out[x] = table_[row[x]];
      break;
    case PixelType::kUint16:
    case PixelType::kInt16:
      for (int64_t x = 0; x < n; ++x) out[x] = table_[load<uint16_t>(row, x)];
      break;
    case PixelType::kFloat32:
      for (int64_t x = 0; x < n; ++x) out[x] = static_cast<float>(intensity(load<float>(row, x)));
      break;
  }
}

}  // namespace radz
