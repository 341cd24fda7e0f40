#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "half.h"
#include "intensity.h"
#include "radz/preprocess.h"

namespace {

radz::ImageView view(const std::vector<uint16_t>& pixels, int64_t h, int64_t w) {
  return radz::ImageView{pixels.data(), radz::PixelType::kUint16, h, w, w * 2};
}

radz::OutputSpec grey_output(int64_t h, int64_t w, bool letterbox = false) {
  radz::OutputSpec out;
  out.height = h;
  out.width = w;
  out.mean = {0.0};
  out.std = {1.0};
  out.letterbox = letterbox;
  return out;
}

TEST(Intensity, LinearWindowFollowsDicomFormula) {
  std::vector<uint16_t> px = {0};
  radz::PixelSpec spec;
  spec.window_center = 100.0;
  spec.window_width = 51.0;
  radz::IntensityMapper mapper(view(px, 1, 1), spec, "pixels");
  // PS3.3 C.11.2.1.2.1: ((x - (c - 0.5)) / (w - 1) + 0.5), clamped.
  EXPECT_NEAR(mapper.intensity(100.0), (100.0 - 99.5) / 50.0 + 0.5, 1e-12);
  EXPECT_EQ(mapper.intensity(0.0), 0.0);
  EXPECT_EQ(mapper.intensity(1000.0), 1.0);
}

TEST(Intensity, Monochrome1InvertsAndPaddingIsBlack) {
  std::vector<uint16_t> px = {0};
  radz::PixelSpec spec;
  spec.window_center = 50.0;
  spec.window_width = 100.0;
  spec.voi_function = radz::VoiFunction::kLinearExact;
  spec.invert = true;
  spec.padding_value = 0.0;
  radz::IntensityMapper mapper(view(px, 1, 1), spec, "pixels");
  EXPECT_NEAR(mapper.intensity(25.0), 0.75, 1e-12);
  EXPECT_EQ(mapper.intensity(0.0), 0.0);  // padding stays black after inversion
}

TEST(Intensity, BitsStoredMasksHighBits) {
  std::vector<uint16_t> px = {0xF000 | 100, 200};  // overlay garbage above bit 12
  radz::PixelSpec spec;
  spec.bits_stored = 12;
  std::vector<float> row(2);
  radz::IntensityMapper(view(px, 1, 2), spec, "pixels").map_row(0, row.data());
  EXPECT_FLOAT_EQ(row[0], 0.0f);  // min-max over {100, 200}
  EXPECT_FLOAT_EQ(row[1], 1.0f);
}

TEST(Intensity, SignedBitsStoredSignExtends) {
  std::vector<int16_t> px = {static_cast<int16_t>(0x0FFF), 0};  // 12-bit -1 and 0
  radz::PixelSpec spec;
  spec.bits_stored = 12;
  spec.window_center = 0.0;
  spec.window_width = 2.0;
  spec.voi_function = radz::VoiFunction::kLinearExact;
  radz::ImageView v{px.data(), radz::PixelType::kInt16, 1, 2, 4};
  std::vector<float> row(2);
  radz::IntensityMapper(v, spec, "pixels").map_row(0, row.data());
  EXPECT_FLOAT_EQ(row[0], 0.0f);  // -1 -> (-1 - 0) / 2 + 0.5 = 0
  EXPECT_FLOAT_EQ(row[1], 0.5f);
}

TEST(Intensity, FloatNanIsRejected) {
  std::vector<float> px = {1.0f, std::numeric_limits<float>::quiet_NaN()};
  radz::ImageView v{px.data(), radz::PixelType::kFloat32, 1, 2, 8};
  EXPECT_THROW(radz::IntensityMapper(v, radz::PixelSpec{}, "pixels"), std::invalid_argument);
}

TEST(Preprocess, ConstantImageStaysConstant) {
  std::vector<uint16_t> px(37 * 53, 700);
  radz::PixelSpec spec;
  spec.window_center = 700.0;
  spec.window_width = 100.0;
  spec.voi_function = radz::VoiFunction::kLinearExact;
  const radz::OutputSpec out_spec = grey_output(16, 16);
  std::vector<float> out(16 * 16);
  radz::preprocess(view(px, 37, 53), spec, out_spec, out.data());
  for (float v : out) EXPECT_NEAR(v, 0.5f, 1e-6f);
}

TEST(Preprocess, AreaAveragingOfCheckerboardIsGrey) {
  std::vector<uint16_t> px(64 * 64);
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x) px[y * 64 + x] = ((x + y) % 2) ? 1000 : 0;
  std::vector<float> out(8 * 8);
  radz::preprocess(view(px, 64, 64), radz::PixelSpec{}, grey_output(8, 8), out.data());
  for (float v : out) EXPECT_NEAR(v, 0.5f, 1e-6f);  // anti-aliased: no moire
}

TEST(Preprocess, LetterboxPadsWithPadValueNormalised) {
  std::vector<uint16_t> px(10 * 40, 5);
  radz::OutputSpec out_spec = grey_output(40, 40, true);
  out_spec.mean = {0.5};
  out_spec.std = {0.25};
  out_spec.pad_value = 0.0;
  std::vector<float> out(40 * 40);
  radz::preprocess(view(px, 10, 40), radz::PixelSpec{}, out_spec, out.data());
  EXPECT_FLOAT_EQ(out[0], (0.0f - 0.5f) / 0.25f);             // top border
  EXPECT_FLOAT_EQ(out[20 * 40 + 20], (0.0f - 0.5f) / 0.25f);  // constant image -> min-max gives 0
}

TEST(Preprocess, ReplicatesIntoChannelsWithOwnNormalisation) {
  std::vector<uint16_t> px = {0, 10};
  radz::OutputSpec out_spec = grey_output(1, 2);
  out_spec.mean = {0.0, 0.5, 1.0};
  out_spec.std = {1.0, 0.5, 2.0};
  std::vector<float> out(3 * 2);
  radz::preprocess(view(px, 1, 2), radz::PixelSpec{}, out_spec, out.data());
  EXPECT_FLOAT_EQ(out[1], 1.0f);
  EXPECT_FLOAT_EQ(out[3], 1.0f);  // (1 - 0.5) / 0.5
  EXPECT_FLOAT_EQ(out[5], 0.0f);  // (1 - 1) / 2
}

TEST(Preprocess, Float16OutputMatchesFloat32Rounded) {
  std::mt19937 rng(7);
  std::vector<uint16_t> px(97 * 61);
  for (auto& p : px) p = static_cast<uint16_t>(rng() % 4096);
  radz::OutputSpec f32 = grey_output(32, 32);
  radz::OutputSpec f16 = f32;
  f16.dtype = radz::OutputType::kFloat16;
  std::vector<float> a(32 * 32);
  std::vector<uint16_t> b(32 * 32);
  radz::preprocess(view(px, 97, 61), radz::PixelSpec{}, f32, a.data());
  radz::preprocess(view(px, 97, 61), radz::PixelSpec{}, f16, b.data());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(b[i], radz::float_to_half(a[i]));
}

TEST(Preprocess, RejectsBadArgumentsByName) {
  std::vector<uint16_t> px(4, 1);
  std::vector<float> out(4);
  radz::PixelSpec nan_spec;
  nan_spec.rescale_slope = std::nan("");
  try {
    radz::preprocess(view(px, 2, 2), nan_spec, grey_output(2, 2), out.data());
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("rescale_slope"), std::string::npos);
  }
  radz::OutputSpec zero_width = grey_output(2, 0);
  EXPECT_THROW(radz::preprocess(view(px, 2, 2), radz::PixelSpec{}, zero_width, out.data()), std::invalid_argument);
  EXPECT_THROW(radz::preprocess(view(px, 0, 2), radz::PixelSpec{}, grey_output(2, 2), out.data()),
               std::invalid_argument);
  radz::PixelSpec narrow;
  narrow.window_center = 1.0;
  narrow.window_width = 0.5;  // LINEAR needs >= 1
  EXPECT_THROW(radz::preprocess(view(px, 2, 2), narrow, grey_output(2, 2), out.data()), std::invalid_argument);
}

TEST(PreprocessBatch, EqualsSingleImageCallsAndNamesFailingIndex) {
  std::mt19937 rng(11);
  std::vector<std::vector<uint16_t>> pixels;
  std::vector<radz::ImageView> views;
  const int64_t sizes[][2] = {{50, 70}, {1, 1}, {300, 20}, {64, 64}};
  for (const auto& s : sizes) {
    pixels.emplace_back(static_cast<size_t>(s[0] * s[1]));
    for (auto& p : pixels.back()) p = static_cast<uint16_t>(rng());
  }
  for (size_t i = 0; i < pixels.size(); ++i) views.push_back(view(pixels[i], sizes[i][0], sizes[i][1]));
  const std::vector<radz::PixelSpec> specs(views.size());
  radz::OutputSpec out_spec;
  out_spec.height = 24;
  out_spec.width = 24;
  std::vector<float> batch(views.size() * 3 * 24 * 24);
  radz::ThreadPool pool(3);
  radz::preprocess_batch(views, specs, out_spec, batch.data(), pool);
  for (size_t i = 0; i < views.size(); ++i) {
    std::vector<float> one(3 * 24 * 24);
    radz::preprocess(views[i], specs[i], out_spec, one.data());
    for (size_t k = 0; k < one.size(); ++k) ASSERT_EQ(batch[i * one.size() + k], one[k]);
  }
  views[2].height = 0;
  try {
    radz::preprocess_batch(views, specs, out_spec, batch.data(), pool);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("images[2]"), std::string::npos);
  }
}

// -- the intensity table: sized by BitsStored, shared through a bounded cache ------------------

std::vector<float> map_all(const radz::ImageView& v, const radz::PixelSpec& spec, std::string* strategy = nullptr) {
  radz::IntensityMapper mapper(v, spec, "pixels");
  if (strategy) *strategy = mapper.strategy();
  std::vector<float> out(static_cast<size_t>(v.height * v.width));
  for (int64_t y = 0; y < v.height; ++y) mapper.map_row(y, out.data() + y * v.width);
  return out;
}

radz::PixelSpec window_spec(double center, double width, radz::VoiFunction f, int bits, bool invert) {
  radz::PixelSpec spec;
  spec.window_center = center;
  spec.window_width = width;
  spec.voi_function = f;
  spec.bits_stored = bits;
  spec.invert = invert;
  return spec;
}

std::vector<radz::PixelSpec> assorted_specs(size_t n) {
  const radz::VoiFunction functions[] = {radz::VoiFunction::kLinear, radz::VoiFunction::kLinearExact,
                                         radz::VoiFunction::kSigmoid};
  std::vector<radz::PixelSpec> specs;
  for (size_t i = 0; i < n; ++i) {
    radz::PixelSpec spec = window_spec(500.0 + 37.0 * static_cast<double>(i), 300.0 + 11.0 * static_cast<double>(i),
                                       functions[i % 3], static_cast<int>(10 + i % 7), i % 2 == 1);
    if (i % 5 == 0) spec.padding_value = 3.0;
    if (i % 4 == 0) spec.rescale_slope = -0.5;
    specs.push_back(spec);
  }
  return specs;
}

TEST(IntensityTable, CachedEqualsFreshAndDirect) {
  std::mt19937 rng(5);
  std::vector<uint16_t> big(300 * 300);
  for (auto& p : big) p = static_cast<uint16_t>(rng());
  std::vector<uint16_t> small(big.begin(), big.begin() + 16 * 16);
  for (const radz::PixelSpec& spec : assorted_specs(12)) {
    radz::clear_intensity_cache();
    std::string first, second, tiny;
    const std::vector<float> fresh = map_all(view(big, 300, 300), spec, &first);
    const std::vector<float> cached = map_all(view(big, 300, 300), spec, &second);
    EXPECT_EQ(first, "table");
    EXPECT_EQ(second, "cached table");
    ASSERT_EQ(fresh, cached);  // bit for bit
    // A 16x16 image with 2^bits > 256 entries: computed directly when nothing is cached ...
    radz::clear_intensity_cache();
    const std::vector<float> direct = map_all(view(small, 16, 16), spec, &tiny);
    EXPECT_EQ(tiny, spec.bits_stored > 8 ? "direct" : "table");
    radz::IntensityMapper mapper(view(small, 16, 16), spec, "pixels");
    for (size_t i = 0; i < small.size(); ++i) {
      const uint32_t index = small[i] & ((1u << spec.bits_stored) - 1u);
      ASSERT_NEAR(direct[i], mapper.intensity(static_cast<double>(index)), 1e-6) << i;
      ASSERT_NEAR(direct[i], fresh[i], 1e-6) << i;  // ... and agrees with the table
    }
  }
}

TEST(IntensityTable, SignedBitsStoredTableAndDirectAgree) {
  std::mt19937 rng(9);
  std::vector<int16_t> px(128 * 128);
  for (auto& p : px) p = static_cast<int16_t>(rng());
  const radz::ImageView big{px.data(), radz::PixelType::kInt16, 128, 128, 256};
  const radz::ImageView tiny{px.data(), radz::PixelType::kInt16, 4, 128, 256};  // 512 px < 4096 entries
  for (int bits : {12, 16}) {
    for (bool min_max : {true, false}) {
      radz::clear_intensity_cache();
      radz::PixelSpec spec =
          min_max ? radz::PixelSpec{} : window_spec(-20.0, 900.0, radz::VoiFunction::kLinear, 0, false);
      spec.bits_stored = bits;
      std::string a, b;
      const std::vector<float> table = map_all(big, spec, &a);
      radz::clear_intensity_cache();
      const std::vector<float> direct = map_all(tiny, spec, &b);
      EXPECT_EQ(a, bits == 12 ? "table" : "direct");  // 16,384 pixels < 65,536 entries
      EXPECT_EQ(b, "direct");
      if (min_max) continue;  // the full image and its first rows have different ranges
      for (size_t i = 0; i < direct.size(); ++i) ASSERT_NEAR(direct[i], table[i], 1e-6) << i;
    }
  }
}

TEST(IntensityTable, CacheIsBoundedAndCountsHits) {
  radz::clear_intensity_cache();
  std::vector<uint16_t> px(64 * 64);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint16_t>(i);
  const std::vector<radz::PixelSpec> specs = assorted_specs(3 * radz::kIntensityCacheCapacity);
  for (const auto& spec : specs) {
    radz::PixelSpec s = spec;
    s.bits_stored = 12;  // 4096 entries <= 4096 pixels: tables are built and cached
    map_all(view(px, 64, 64), s);
  }
  radz::IntensityCacheStats stats = radz::intensity_cache_stats();
  EXPECT_EQ(stats.entries, radz::kIntensityCacheCapacity);
  EXPECT_EQ(stats.misses, specs.size());
  EXPECT_EQ(stats.hits, 0u);
  radz::PixelSpec last = specs.back();
  last.bits_stored = 12;
  std::string strategy;
  map_all(view(px, 64, 64), last, &strategy);
  EXPECT_EQ(strategy, "cached table");
  EXPECT_EQ(radz::intensity_cache_stats().hits, 1u);
}

TEST(IntensityTable, ManyThreadsManySpecsEqualSerialResults) {
  // More specs than the cache holds, so threads evict tables others are still using.
  radz::clear_intensity_cache();
  std::mt19937 rng(3);
  std::vector<uint16_t> px(96 * 96);
  for (auto& p : px) p = static_cast<uint16_t>(rng());
  const std::vector<radz::PixelSpec> specs = assorted_specs(2 * radz::kIntensityCacheCapacity + 5);
  std::vector<std::vector<float>> want;
  for (const auto& spec : specs) want.push_back(map_all(view(px, 96, 96), spec));
  radz::clear_intensity_cache();
  std::vector<int> failures(8, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 6; ++round) {
        for (size_t k = 0; k < specs.size(); ++k) {
          const size_t i = (k * 7 + static_cast<size_t>(t) * 13 + static_cast<size_t>(round)) % specs.size();
          if (map_all(view(px, 96, 96), specs[i]) != want[i]) ++failures[static_cast<size_t>(t)];
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int f : failures) EXPECT_EQ(f, 0);
  EXPECT_LE(radz::intensity_cache_stats().entries, radz::kIntensityCacheCapacity);
}

TEST(Half, RoundsToNearestEven) {
  EXPECT_EQ(radz::float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(radz::float_to_half(-2.0f), 0xc000);
  EXPECT_EQ(radz::float_to_half(65504.0f), 0x7bff);
  EXPECT_EQ(radz::float_to_half(1e6f), 0x7c00);
  EXPECT_EQ(radz::float_to_half(1.0f + 1.0f / 2048.0f), 0x3c00);   // tie -> even
  EXPECT_EQ(radz::float_to_half(5.960464477539063e-08f), 0x0001);  // smallest subnormal
}

}  // namespace
