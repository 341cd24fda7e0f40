// Float pixels: the branch-free affine path (cpp/src/intensity.cpp) against the per-pixel
// intensity() it replaces, on misaligned, strided rows; the exact path for the other mappings;
// padding bounds that no float equals; the NaN/Inf error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "intensity.h"

namespace {

constexpr float kFloatMax = std::numeric_limits<float>::max();
constexpr float kInf = std::numeric_limits<float>::infinity();

/// Float pixels in a byte buffer, each row starting 1 byte past a 4-byte boundary (misaligned)
/// and `pad` bytes longer than the row (strided).
struct FloatImage {
  FloatImage(const std::vector<float>& values, int64_t height, int64_t width, int64_t pad = 3)
      : height(height), width(width), stride(width * 4 + pad), bytes(static_cast<size_t>(1 + height * stride), 0xAB) {
    for (int64_t y = 0; y < height; ++y) {
      std::memcpy(bytes.data() + 1 + y * stride, values.data() + y * width, static_cast<size_t>(width) * 4);
    }
  }
  radz::ImageView view() const {
    return radz::ImageView{bytes.data() + 1, radz::PixelType::kFloat32, height, width, stride};
  }
  float at(int64_t y, int64_t x) const {
    float v;
    std::memcpy(&v, bytes.data() + 1 + y * stride + x * 4, 4);
    return v;
  }
  int64_t height;
  int64_t width;
  int64_t stride;
  std::vector<unsigned char> bytes;
};

std::vector<float> random_values(size_t n, uint32_t seed, double scale, double offset) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<float> values(n);
  for (float& v : values) v = static_cast<float>(normal(rng) * scale + offset);
  return values;
}

radz::PixelSpec window(double center, double width, radz::VoiFunction function) {
  radz::PixelSpec spec;
  spec.window_center = center;
  spec.window_width = width;
  spec.voi_function = function;
  return spec;
}

/// Every combination of the affine mappings with modality, inversion and padding.
std::vector<radz::PixelSpec> affine_specs() {
  std::vector<radz::PixelSpec> base = {
      window(1000.0, 400.0, radz::VoiFunction::kLinear), window(1000.0, 400.0, radz::VoiFunction::kLinearExact),
      window(1000.0, 2.5, radz::VoiFunction::kLinear),  // narrow: most pixels clamp
      radz::PixelSpec{},                                // min-max
  };
  std::vector<radz::PixelSpec> specs;
  for (const radz::PixelSpec& b : base) {
    for (int variant = 0; variant < 12; ++variant) {
      radz::PixelSpec spec = b;
      spec.invert = variant % 2 == 1;
      if (variant / 2 % 2 == 1) {
        spec.rescale_slope = -0.5;
        spec.rescale_intercept = 800.0;
      }
      if (variant / 4 == 1) spec.padding_value = 1000.0;
      if (variant / 4 == 2) {
        spec.padding_value = 1100.0;
        spec.padding_limit = 900.0;
      }
      specs.push_back(spec);
    }
  }
  return specs;
}

/// Checks map_row and accumulate_row against intensity() pixel by pixel.
void expect_rows_equal_intensity(const FloatImage& image, const radz::PixelSpec& spec, const char* strategy) {
  const radz::IntensityMapper mapper(image.view(), spec, "pixels");
  EXPECT_STREQ(mapper.strategy(), strategy);
  std::vector<float> row(static_cast<size_t>(image.width));
  std::vector<double> acc(static_cast<size_t>(image.width));
  for (int64_t y = 0; y < image.height; ++y) {
    mapper.map_row(y, row.data());
    for (int64_t x = 0; x < image.width; ++x) acc[x] = 0.25 * static_cast<double>(x);
    mapper.accumulate_row(y, 0.375, acc.data());
    for (int64_t x = 0; x < image.width; ++x) {
      const double want = mapper.intensity(image.at(y, x));
      ASSERT_NEAR(row[x], want, 1e-7) << "pixel " << image.at(y, x) << " at " << y << "," << x;
      ASSERT_NEAR(acc[x], 0.25 * static_cast<double>(x) + 0.375 * want, 1e-8) << image.at(y, x);
    }
  }
}

TEST(FloatIntensity, AffinePathEqualsIntensityForEveryVariant) {
  const int64_t h = 23;
  const int64_t w = 37;  // not a multiple of any vector width: the loops' tails run too
  std::vector<float> values = random_values(static_cast<size_t>(h * w), 11, 300.0, 1000.0);
  for (size_t i = 0; i < values.size(); i += 7) values[i] = 1000.0f;                 // padding value pixels
  for (size_t i = 3; i < values.size(); i += 11) values[i] = std::round(values[i]);  // some in [900, 1100]
  const FloatImage image(values, h, w);
  for (const radz::PixelSpec& spec : affine_specs()) {
    SCOPED_TRACE(testing::Message() << "invert " << spec.invert << " slope " << spec.rescale_slope << " padding "
                                    << spec.padding_value.value_or(-1) << ".." << spec.padding_limit.value_or(-1)
                                    << " window " << spec.window_width.value_or(0));
    expect_rows_equal_intensity(image, spec, "float affine");
  }
}

TEST(FloatIntensity, OtherMappingsKeepTheExactPath) {
  const int64_t h = 9;
  const int64_t w = 19;
  const std::vector<float> values = random_values(static_cast<size_t>(h * w), 12, 300.0, 1000.0);
  std::vector<radz::PixelSpec> specs = {
      window(1000.0, 400.0, radz::VoiFunction::kSigmoid),
      window(1000.0, 1.0, radz::VoiFunction::kLinear),  // width 1: a threshold
      // 1e-3 wide at 70,000: folding would lose ~1e-8 of precision; the exact path keeps it
      window(70000.0, 1e-3, radz::VoiFunction::kLinearExact),
  };
  radz::PixelSpec lut;
  lut.voi_lut = {0.0, 100.0, 4000.0, 65535.0, 20000.0};
  lut.voi_lut_first = 998;
  specs.push_back(lut);
  radz::PixelSpec huge_slope = window(0.0, 1e-300, radz::VoiFunction::kLinearExact);  // 1/w overflows
  specs.push_back(huge_slope);
  for (radz::PixelSpec spec : specs) {
    for (int variant = 0; variant < 4; ++variant) {
      spec.invert = variant % 2 == 1;
      if (variant >= 2) {
        spec.padding_value = 900.0;
        spec.padding_limit = 1000.0;
      }
      expect_rows_equal_intensity(FloatImage(values, h, w), spec, "float");
    }
  }
  // Values near a narrow window take the fast path once they are small enough.
  expect_rows_equal_intensity(FloatImage(random_values(64, 13, 1e-3, 0.0), 8, 8),
                              window(0.0, 1e-3, radz::VoiFunction::kLinearExact), "float affine");
}

/// Min-max from a plain scan of the image here, not the mapper's.
TEST(FloatIntensity, MinMaxUsesTheRangeOfPixelsThatAreNotPadding) {
  const int64_t h = 17;
  const int64_t w = 29;
  std::vector<float> values = random_values(static_cast<size_t>(h * w), 14, 500.0, 0.0);
  values[5] = -5000.0f;  // padding: not the minimum
  values[9] = 7000.0f;   // not padding: the maximum
  for (const double slope : {1.0, -2.0}) {
    radz::PixelSpec spec;
    spec.rescale_slope = slope;
    spec.rescale_intercept = 10.0;
    spec.padding_value = -6000.0;
    spec.padding_limit = -4000.0;
    double low = std::numeric_limits<double>::infinity();
    double high = -low;
    for (const float v : values) {
      if (v >= -6000.0 && v <= -4000.0) continue;
      low = std::min(low, v * slope + 10.0);
      high = std::max(high, v * slope + 10.0);
    }
    const FloatImage image(values, h, w);
    const radz::IntensityMapper mapper(image.view(), spec, "pixels");
    EXPECT_STREQ(mapper.strategy(), "float affine");
    std::vector<float> row(static_cast<size_t>(w));
    for (int64_t y = 0; y < h; ++y) {
      mapper.map_row(y, row.data());
      for (int64_t x = 0; x < w; ++x) {
        const float v = image.at(y, x);
        const double want =
            (v >= -6000.0f && v <= -4000.0f) ? 0.0 : std::clamp((v * slope + 10.0 - low) / (high - low), 0.0, 1.0);
        ASSERT_NEAR(row[x], want, 1e-7) << v;
      }
    }
  }
}

TEST(FloatIntensity, ConstantAndAllPaddingImages) {
  const std::vector<float> constant(40, 123.5f);
  radz::PixelSpec spec;
  for (const bool invert : {false, true}) {
    spec.invert = invert;
    std::vector<float> row(40);
    radz::IntensityMapper(FloatImage(constant, 1, 40).view(), spec, "pixels").map_row(0, row.data());
    for (const float v : row) EXPECT_EQ(v, invert ? 1.0f : 0.0f);  // min-max of one value: 0
    radz::PixelSpec padded = spec;
    padded.padding_value = 123.5;
    radz::IntensityMapper(FloatImage(constant, 1, 40).view(), padded, "pixels").map_row(0, row.data());
    for (const float v : row) EXPECT_EQ(v, 0.0f);  // padding stays black after inversion
  }
}

/// Bounds no float equals, zeros of both signs, the ends of the float range: the fast path pads
/// exactly the pixels whose value (as a double) lies in [low, high].
TEST(FloatIntensity, PaddingBoundsMatchTheDoubleTest) {
  const float denormal = std::numeric_limits<float>::denorm_min();
  std::vector<float> probes = {0.0f, -0.0f, denormal, -denormal, kFloatMax, -kFloatMax, 1.0f, -1.0f, 5.0f};
  const std::vector<std::pair<double, std::optional<double>>> paddings = {
      {0.1, std::nullopt}, {0.1, 0.3},          {0.3, 0.1},     {0.0, std::nullopt}, {-0.0, 0.0},
      {0.0, 5.0},          {-5.0, 0.0},         {1e39, 2e39},   {1e38, 1e39},        {-1e39, -1.0},
      {-1e39, 1e39},       {5.0, std::nullopt}, {1e-46, 2e-46}, {-1e-46, 1e-46},     {3.0, 3.0}};
  for (const auto& [value, limit] : paddings) {
    for (const double bound : {value, limit.value_or(value)}) {
      if (std::fabs(bound) > kFloatMax) continue;
      const float f = static_cast<float>(bound);
      for (const float p : {f, std::nextafter(f, kInf), std::nextafter(f, -kInf)}) {
        if (std::isfinite(p)) probes.push_back(p);
      }
    }
  }
  // A window every finite float maps to >= 0.5 under: 0 in the output means padding.
  radz::PixelSpec spec = window(-4e38, 1e39, radz::VoiFunction::kLinearExact);
  const FloatImage image(probes, 1, static_cast<int64_t>(probes.size()));
  for (const auto& [value, limit] : paddings) {
    spec.padding_value = value;
    spec.padding_limit = limit;
    const radz::IntensityMapper mapper(image.view(), spec, "pixels");
    ASSERT_STREQ(mapper.strategy(), "float affine");
    std::vector<float> row(probes.size());
    mapper.map_row(0, row.data());
    const double low = std::min(value, limit.value_or(value));
    const double high = std::max(value, limit.value_or(value));
    for (size_t i = 0; i < probes.size(); ++i) {
      const double v = probes[i];
      const bool padding = v >= low && v <= high;
      EXPECT_EQ(row[i] == 0.0f, padding) << "pixel " << v << " padding " << value << ".." << limit.value_or(value);
      EXPECT_NEAR(row[i], mapper.intensity(v), 1e-7);
    }
  }
}

TEST(FloatIntensity, NanOrInfAnywhereNamesTheInput) {
  const std::vector<float> bad = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                                  -std::numeric_limits<float>::infinity()};
  radz::PixelSpec padded = window(0.0, 10.0, radz::VoiFunction::kLinearExact);
  padded.padding_value = -1e39;  // a padding range that holds every float, even -Inf
  padded.padding_limit = 1e39;
  for (const float b : bad) {
    for (const int64_t at : {int64_t{0}, int64_t{36}, int64_t{17 * 37 - 1}}) {
      for (const radz::PixelSpec& spec : {radz::PixelSpec{}, padded}) {
        std::vector<float> values(17 * 37, 1.0f);
        values[static_cast<size_t>(at)] = b;
        try {
          radz::IntensityMapper(FloatImage(values, 17, 37).view(), spec, "images[3]");
          ADD_FAILURE() << "no error for " << b << " at " << at;
        } catch (const std::invalid_argument& e) {
          EXPECT_EQ(std::string(e.what()), "images[3]: contains NaN or Inf");
        }
      }
    }
  }
}

}  // namespace
