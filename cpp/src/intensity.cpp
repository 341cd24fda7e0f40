#include "intensity.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <list>
#include <mutex>
#include <utility>

#include "radz/errors.h"

// Hot loops: cloned for AVX2 where the CPU has it (chosen at load time), portable otherwise.
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define RADZ_HOT __attribute__((target_clones("avx2", "default")))
#else
#define RADZ_HOT
#endif

namespace radz {
namespace {

template <typename T>
T load(const unsigned char* row, int64_t x) {
  T value;
  std::memcpy(&value, row + x * static_cast<int64_t>(sizeof(T)), sizeof(T));
  return value;
}

int type_bits(PixelType type) { return static_cast<int>(pixel_size(type) * 8); }

uint32_t load_pattern(PixelType type, const unsigned char* row, int64_t x) {
  return type == PixelType::kUint8 ? row[x] : load<uint16_t>(row, x);
}

/// min and max over row y of (pattern & mask) ^ flip.
std::pair<uint32_t, uint32_t> row_extremes(const ImageView& image, int64_t y, uint32_t mask, uint32_t flip) {
  const unsigned char* row = image.row(y);
  uint32_t lo = std::numeric_limits<uint32_t>::max();
  uint32_t hi = 0;
  if (image.type == PixelType::kUint8) {
    for (int64_t x = 0; x < image.width; ++x) {
      const uint32_t v = (row[x] & mask) ^ flip;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  } else if (reinterpret_cast<uintptr_t>(row) % alignof(uint16_t) == 0) {
    const uint16_t* px = reinterpret_cast<const uint16_t*>(row);
    for (int64_t x = 0; x < image.width; ++x) {
      const uint32_t v = (px[x] & mask) ^ flip;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  } else {
    for (int64_t x = 0; x < image.width; ++x) {
      const uint32_t v = (load<uint16_t>(row, x) & mask) ^ flip;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  return {lo, hi};
}

// -- float pixels --------------------------------------------------------------------------------
// The hot loops below have no branches and no floating-point selects (GCC keeps those as branches
// under the default -ftrapping-math and then does not vectorise): comparisons are made on
// integers, clamping on the bit patterns of doubles.

/// A float's bit pattern as an int32 whose signed order is the float order (for non-NaN values;
/// -0.0 sorts just below +0.0). Its own inverse.
inline int32_t order_key(int32_t bits) { return bits ^ ((bits >> 31) & 0x7fffffff); }

inline int32_t order_key(float value) {
  int32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return order_key(bits);
}

inline float from_order_key(int32_t key) {
  const int32_t bits = order_key(key);
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

/// clamp(y, 0, 1) for a non-NaN double, as its bit pattern: for y >= +0 the signed order of the
/// patterns is the order of the values, and every negative y (and -0) has a negative pattern.
inline int64_t clamp01_bits(double y) {
  constexpr int64_t kOne = 0x3FF0000000000000;  // 1.0
  int64_t bits;
  std::memcpy(&bits, &y, sizeof bits);
  bits = bits > 0 ? bits : 0;
  return bits < kOne ? bits : kOne;
}

inline double from_bits(int64_t bits) {
  double value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

/// Scans one row of float pixels: returns nonzero when a pixel is NaN or Inf; lowers *lo and
/// raises *hi to the order keys of its pixels outside the padding key range [pad_lo, pad_hi].
RADZ_HOT int32_t scan_float_row(const unsigned char* row, int64_t n, int32_t pad_lo, int32_t pad_hi, int32_t* lo,
                                int32_t* hi) {
  constexpr int32_t kExponent = 0x7f800000;
  int32_t l = *lo;
  int32_t h = *hi;
  int32_t bad = 0;
  for (int64_t x = 0; x < n; ++x) {
    const int32_t bits = load<int32_t>(row, x);
    bad |= static_cast<int32_t>((bits & kExponent) == kExponent);
    const int32_t key = order_key(bits);
    const int32_t keep = -static_cast<int32_t>((key < pad_lo) | (key > pad_hi));  // all ones: not padding
    const int32_t for_lo = (key & keep) | (std::numeric_limits<int32_t>::max() & ~keep);
    const int32_t for_hi = (key & keep) | (std::numeric_limits<int32_t>::min() & ~keep);
    l = l < for_lo ? l : for_lo;
    h = h > for_hi ? h : for_hi;
  }
  *lo = l;
  *hi = h;
  return bad;
}

/// out[x] = clamp(v * a + b, 0, 1) for the pixels v of a row, 0 for padding (keys in [pad_lo, pad_hi]).
RADZ_HOT void affine_map_row(const unsigned char* row, int64_t n, double a, double b, int32_t pad_lo, int32_t pad_hi,
                             float* out) {
  for (int64_t x = 0; x < n; ++x) {
    const double v = load<float>(row, x);
    const int32_t key = order_key(load<int32_t>(row, x));
    const int64_t keep = -static_cast<int64_t>((key < pad_lo) | (key > pad_hi));
    out[x] = static_cast<float>(from_bits(clamp01_bits(v * a + b) & keep));
  }
}

/// acc[x] += weight * (clamp(v * a + b, 0, 1), or 0 for padding), as affine_map_row.
RADZ_HOT void affine_accumulate_row(const unsigned char* row, int64_t n, double a, double b, int32_t pad_lo,
                                    int32_t pad_hi, double weight, double* acc) {
  for (int64_t x = 0; x < n; ++x) {
    const double v = load<float>(row, x);
    const int32_t key = order_key(load<int32_t>(row, x));
    const int64_t keep = -static_cast<int64_t>((key < pad_lo) | (key > pad_hi));
    acc[x] += weight * from_bits(clamp01_bits(v * a + b) & keep);
  }
}

/// The smallest float >= value, or +inf when there is none (value is finite).
float float_at_or_above(double value) {
  constexpr double kMax = std::numeric_limits<float>::max();
  if (value > kMax) return std::numeric_limits<float>::infinity();
  if (value <= -kMax) return -std::numeric_limits<float>::max();
  float f = static_cast<float>(value);
  if (static_cast<double>(f) < value) f = std::nextafter(f, std::numeric_limits<float>::infinity());
  return f;
}

/// The largest float <= value, or -inf when there is none (value is finite).
float float_at_or_below(double value) { return -float_at_or_above(-value); }

// -- the shared table cache ---------------------------------------------------------------------
// Key: every input of the table as doubles (pixel type, bits, each spec field, the VOI LUT).
// Values are validated finite, so == on the doubles is exact equality of the inputs.
std::vector<double> table_key(PixelType type, int bits, const PixelSpec& s) {
  std::vector<double> key = {static_cast<double>(type),
                             static_cast<double>(bits),
                             s.rescale_slope,
                             s.rescale_intercept,
                             s.window_width ? 1.0 : 0.0,
                             s.window_center.value_or(0.0),
                             s.window_width.value_or(0.0),
                             static_cast<double>(static_cast<int>(s.voi_function)),
                             static_cast<double>(s.voi_lut_first),
                             static_cast<double>(s.voi_lut_bits),
                             s.invert ? 1.0 : 0.0,
                             s.padding_value ? 1.0 : 0.0,
                             s.padding_value.value_or(0.0),
                             s.padding_limit ? 1.0 : 0.0,
                             s.padding_limit.value_or(0.0),
                             static_cast<double>(s.voi_lut.size())};
  key.insert(key.end(), s.voi_lut.begin(), s.voi_lut.end());
  return key;
}

uint64_t hash_key(const std::vector<double>& key) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the bytes
  const auto* bytes = reinterpret_cast<const unsigned char*>(key.data());
  for (size_t i = 0; i < key.size() * sizeof(double); ++i) h = (h ^ bytes[i]) * 1099511628211ull;
  return h;
}

/// Least-recently-used list of at most kIntensityCacheCapacity tables. A table is immutable once
/// made and shared by shared_ptr, so a mapper keeps using it after it is evicted.
class TableCache {
 public:
  using Table = std::shared_ptr<const std::vector<float>>;

  Table find(uint64_t hash, const std::vector<double>& key) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->hash == hash && it->key == key) {
        entries_.splice(entries_.begin(), entries_, it);  // most recently used first
        ++hits_;
        return it->table;
      }
    }
    ++misses_;
    return nullptr;
  }

  void insert(uint64_t hash, std::vector<double> key, Table table) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const Entry& entry : entries_) {
      if (entry.hash == hash && entry.key == key) return;  // another thread made it first
    }
    entries_.push_front(Entry{hash, std::move(key), std::move(table)});
    while (entries_.size() > kIntensityCacheCapacity) entries_.pop_back();
  }

  IntensityCacheStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return IntensityCacheStats{entries_.size(), hits_, misses_};
  }

  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    entries_.clear();
    hits_ = misses_ = 0;
  }

 private:
  struct Entry {
    uint64_t hash;
    std::vector<double> key;
    Table table;
  };
  std::mutex mutex_;
  std::list<Entry> entries_;
  size_t hits_ = 0;
  size_t misses_ = 0;
};

TableCache& table_cache() {
  static TableCache* cache = new TableCache();  // never destroyed: safe from threads at exit
  return *cache;
}

}  // namespace

IntensityCacheStats intensity_cache_stats() { return table_cache().stats(); }
void clear_intensity_cache() { table_cache().clear(); }

IntensityMapper::IntensityMapper(const ImageView& image, const PixelSpec& spec, const std::string& name)
    : image_(image), spec_(spec) {
  min_max_ = spec_.voi_lut.empty() && !spec_.window_width.has_value();
  if (image_.type == PixelType::kFloat32) {
    scan_float(name);
    return;
  }
  const int width = type_bits(image_.type);
  bits_ = (spec_.bits_stored == 0 || spec_.bits_stored >= width) ? width : spec_.bits_stored;
  mask_ = static_cast<uint32_t>((uint64_t{1} << bits_) - 1);
  const uint64_t entries = uint64_t{1} << bits_;
  // A table costs one evaluation per entry, computing directly one per pixel (about two with
  // the resampling taps): a table is built only for images with at least as many pixels as it has
  // entries (benchmarks/preprocess_bench.py measures both sides); a cached one is always used.
  const bool table_pays = entries <= static_cast<uint64_t>(image_.height * image_.width);
  if (min_max_) {
    find_min_max();  // the table depends on this image's range: never shared
    if (table_pays) table_ = build_table();
  } else {
    std::vector<double> key = table_key(image_.type, bits_, spec_);
    const uint64_t hash = hash_key(key);
    table_ = table_cache().find(hash, key);
    cached_ = table_ != nullptr;
    if (!table_ && table_pays) {
      table_ = build_table();
      table_cache().insert(hash, std::move(key), table_);
    }
  }
  if (table_) lut_ = table_->data();
}

const char* IntensityMapper::strategy() const {
  if (image_.type == PixelType::kFloat32) return affine_ ? "float affine" : "float";
  if (!table_) return "direct";
  return cached_ ? "cached table" : "table";
}

void IntensityMapper::scan_float(const std::string& name) {
  if (spec_.padding_value) {
    // The padding test on the stored value (as a double) as one on float order keys: the floats
    // in [lo, hi] are those in [float_at_or_above(lo), float_at_or_below(hi)]; both zeros pad
    // when a bound is zero.
    const double limit = spec_.padding_limit.value_or(*spec_.padding_value);
    const float lo = float_at_or_above(std::min(*spec_.padding_value, limit));
    const float hi = float_at_or_below(std::max(*spec_.padding_value, limit));
    if (lo <= hi) {
      pad_lo_ = lo == 0.0f ? order_key(-0.0f) : order_key(lo);
      pad_hi_ = hi == 0.0f ? order_key(0.0f) : order_key(hi);
    }
  }
  int32_t lo = std::numeric_limits<int32_t>::max();
  int32_t hi = std::numeric_limits<int32_t>::min();
  for (int64_t y = 0; y < image_.height; ++y) {
    if (scan_float_row(image_.row(y), image_.width, pad_lo_, pad_hi_, &lo, &hi)) {
      throw_invalid(name, "contains NaN or Inf");
    }
  }
  low_ = std::numeric_limits<double>::infinity();
  high_ = -low_;
  double largest = 0.0;  // largest |v| that is not padding
  if (lo <= hi) {
    const double v_lo = from_order_key(lo);
    const double v_hi = from_order_key(hi);
    largest = std::max(std::fabs(v_lo), std::fabs(v_hi));
    if (min_max_) {
      // The modality is monotonic in v (and so is its rounding): its extremes are those of v's.
      const double m_lo = v_lo * spec_.rescale_slope + spec_.rescale_intercept;
      const double m_hi = v_hi * spec_.rescale_slope + spec_.rescale_intercept;
      low_ = std::min(m_lo, m_hi);
      high_ = std::max(m_lo, m_hi);
    }
  }
  prepare_affine(largest);
}

void IntensityMapper::prepare_affine(double largest) {
  const bool window = spec_.window_width.has_value();
  const bool linear = window && spec_.voi_function == VoiFunction::kLinear && *spec_.window_width != 1.0;
  const bool exact = window && spec_.voi_function == VoiFunction::kLinearExact;
  if (!spec_.voi_lut.empty() || (window && !linear && !exact)) return;  // VOI LUT, SIGMOID, threshold
  double scale = 0.0;  // y = m * scale + offset on the modality m, as build_table
  double offset = 0.0;
  if (linear) {
    scale = 1.0 / (*spec_.window_width - 1.0);
    offset = 0.5 - (*spec_.window_center - 0.5) * scale;
  } else if (exact) {
    scale = 1.0 / *spec_.window_width;
    offset = 0.5 - *spec_.window_center * scale;
  } else if (high_ > low_) {
    scale = 1.0 / (high_ - low_);
    offset = -low_ * scale;
  }
  const double a = spec_.rescale_slope * scale;
  const double b = spec_.rescale_intercept * scale + offset;
  // Folded or not, the rounding error is a few ulps of the largest term (for intensity(): of the
  // modality and the centre over the width). Fold only while that stays below 2^-26 (float
  // output rounding is 2^-24): a window 1e-3 wide centred at 70,000 keeps the exact path.
  const double magnitude =
      largest * std::fabs(a) + std::fabs(spec_.rescale_intercept * scale) + std::fabs(offset) + 1.0;
  if (!(magnitude <= 0x1p24)) return;  // also false for inf and NaN
  a_ = spec_.invert ? -a : a;          // 1 - clamp(v * a + b, 0, 1) == clamp(v * -a + (1 - b), 0, 1)
  b_ = spec_.invert ? 1.0 - b : b;
  affine_ = true;
}

void IntensityMapper::find_min_max() {
  double low = std::numeric_limits<double>::infinity();
  double high = -low;
  auto include = [&](double stored) {
    const double m = stored * spec_.rescale_slope + spec_.rescale_intercept;
    low = std::min(low, m);
    high = std::max(high, m);
  };
  if (spec_.padding_value) {
    // Which indices occur (one cheap pass), then the padding test once per distinct index.
    std::vector<unsigned char> present(static_cast<size_t>(mask_) + 1, 0);
    for (int64_t y = 0; y < image_.height; ++y) {
      const unsigned char* row = image_.row(y);
      for (int64_t x = 0; x < image_.width; ++x) present[load_pattern(image_.type, row, x) & mask_] = 1;
    }
    for (uint32_t i = 0; i <= mask_; ++i) {
      if (!present[i]) continue;
      const double v = stored_value(i);
      if (!is_padding(v)) include(v);
    }
  } else {
    // The modality is monotonic in the stored value: its extremes come from the stored extremes.
    const bool is_signed = image_.type == PixelType::kInt16;
    const int64_t sign = is_signed ? int64_t{1} << (bits_ - 1) : 0;
    uint32_t lo_bits = std::numeric_limits<uint32_t>::max();
    uint32_t hi_bits = 0;
    for (int64_t y = 0; y < image_.height; ++y) {
      // Vectorisable per-row min/max of (pattern & mask) ^ sign; the sign flip makes the unsigned
      // order that of the sign-extended values.
      const auto row = row_extremes(image_, y, mask_, static_cast<uint32_t>(sign));
      lo_bits = std::min(lo_bits, row.first);
      hi_bits = std::max(hi_bits, row.second);
    }
    const int64_t lo = static_cast<int64_t>(lo_bits) - sign;
    const int64_t hi = static_cast<int64_t>(hi_bits) - sign;
    include(static_cast<double>(lo));
    include(static_cast<double>(hi));
  }
  low_ = low;
  high_ = high;
}

std::shared_ptr<const std::vector<float>> IntensityMapper::build_table() const {
  auto table = std::make_shared<std::vector<float>>(static_cast<size_t>(mask_) + 1);
  float* out = table->data();
  const uint32_t n = mask_ + 1;
  const bool is_signed = image_.type == PixelType::kInt16;
  const bool window = spec_.window_width.has_value();
  const bool linear = window && spec_.voi_function == VoiFunction::kLinear && *spec_.window_width != 1.0;
  const bool exact = window && spec_.voi_function == VoiFunction::kLinearExact;
  if (spec_.voi_lut.empty() && !spec_.padding_value && (linear || exact || !window)) {
    // The common cases, y = clamp(m * scale + offset) on the modality value m, in one
    // branch-free loop the compiler vectorises: ~40x faster than intensity() per entry.
    double scale = 0.0;
    double offset = 0.0;
    if (linear) {  // (m - (c - 0.5)) / (w - 1) + 0.5
      scale = 1.0 / (*spec_.window_width - 1.0);
      offset = 0.5 - (*spec_.window_center - 0.5) * scale;
    } else if (exact) {  // (m - c) / w + 0.5
      scale = 1.0 / *spec_.window_width;
      offset = 0.5 - *spec_.window_center * scale;
    } else if (high_ > low_) {  // (m - low) / (high - low)
      scale = 1.0 / (high_ - low_);
      offset = -low_ * scale;
    }
    const double slope = spec_.rescale_slope;
    const double intercept = spec_.rescale_intercept;
    const int32_t sign = is_signed ? int32_t{1} << (bits_ - 1) : 0;
    const bool invert = spec_.invert;
    for (int32_t i = 0; i < static_cast<int32_t>(n); ++i) {
      const double stored = static_cast<double>((i ^ sign) - sign);  // int32: converts in SIMD
      const double y = std::clamp((stored * slope + intercept) * scale + offset, 0.0, 1.0);
      out[i] = static_cast<float>(invert ? 1.0 - y : y);
    }
    return table;
  }
  for (uint32_t i = 0; i < n; ++i) out[i] = static_cast<float>(intensity(stored_value(i)));
  return table;
}

double IntensityMapper::stored_value(uint32_t index) const {
  if (image_.type != PixelType::kInt16) return static_cast<double>(index);
  const int64_t sign = int64_t{1} << (bits_ - 1);
  return static_cast<double>((static_cast<int64_t>(index) ^ sign) - sign);
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

namespace {

RADZ_HOT void accumulate_u8(const unsigned char* row, int64_t n, const float* table, uint32_t mask, double weight,
                            double* acc) {
  for (int64_t x = 0; x < n; ++x) acc[x] += weight * static_cast<double>(table[row[x] & mask]);
}

RADZ_HOT void accumulate_u16(const uint16_t* row, int64_t n, const float* table, uint32_t mask, double weight,
                             double* acc) {
  for (int64_t x = 0; x < n; ++x) acc[x] += weight * static_cast<double>(table[row[x] & mask]);
}

}  // namespace

void IntensityMapper::accumulate_row(int64_t y, double weight, double* acc) const {
  const unsigned char* row = image_.row(y);
  const int64_t n = image_.width;
  if (affine_) {
    affine_accumulate_row(row, n, a_, b_, pad_lo_, pad_hi_, weight, acc);
  } else if (image_.type == PixelType::kFloat32) {
    for (int64_t x = 0; x < n; ++x) acc[x] += weight * intensity(load<float>(row, x));
  } else if (lut_ == nullptr) {
    for (int64_t x = 0; x < n; ++x) acc[x] += weight * static_cast<double>(direct(load_pattern(image_.type, row, x)));
  } else if (image_.type == PixelType::kUint8) {
    accumulate_u8(row, n, lut_, mask_, weight, acc);
  } else if (reinterpret_cast<uintptr_t>(row) % alignof(uint16_t) == 0) {
    accumulate_u16(reinterpret_cast<const uint16_t*>(row), n, lut_, mask_, weight, acc);
  } else {
    for (int64_t x = 0; x < n; ++x) acc[x] += weight * static_cast<double>(lut_[load<uint16_t>(row, x) & mask_]);
  }
}

void IntensityMapper::map_row(int64_t y, float* out) const {
  const unsigned char* row = image_.row(y);
  const int64_t n = image_.width;
  if (affine_) {
    affine_map_row(row, n, a_, b_, pad_lo_, pad_hi_, out);
  } else if (image_.type == PixelType::kFloat32) {
    for (int64_t x = 0; x < n; ++x) out[x] = static_cast<float>(intensity(load<float>(row, x)));
  } else if (lut_ == nullptr) {
    for (int64_t x = 0; x < n; ++x) out[x] = direct(load_pattern(image_.type, row, x));
  } else {
    for (int64_t x = 0; x < n; ++x) out[x] = lut_[load_pattern(image_.type, row, x) & mask_];
  }
}

}  // namespace radz
