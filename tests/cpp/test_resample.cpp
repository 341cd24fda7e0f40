#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

#include "resample.h"

namespace {

double tap_sum(const radz::AxisTaps& taps, int64_t i) {
  double sum = 0.0;
  for (int32_t k = 0; k < taps.count[i]; ++k) sum += taps.weights[taps.offset[i] + k];
  return sum;
}

TEST(AxisTaps, WeightsSumToOneForShrinkAndGrow) {
  for (int64_t n_in : {1, 2, 3, 7, 224, 1000, 4097}) {
    for (int64_t n_out : {1, 2, 5, 224, 513}) {
      const radz::AxisTaps taps = radz::make_axis_taps(n_in, n_out);
      ASSERT_EQ(taps.size(), n_out);
      for (int64_t i = 0; i < n_out; ++i) {
        EXPECT_NEAR(tap_sum(taps, i), 1.0, 1e-12) << n_in << "->" << n_out << " at " << i;
        EXPECT_GE(taps.first[i], 0);
        EXPECT_LE(taps.first[i] + taps.count[i], n_in);
      }
    }
  }
}

TEST(AxisTaps, SameSizeIsIdentity) {
  const radz::AxisTaps taps = radz::make_axis_taps(9, 9);
  for (int64_t i = 0; i < 9; ++i) {
    EXPECT_EQ(taps.first[i], i);
    EXPECT_DOUBLE_EQ(taps.weights[taps.offset[i]], 1.0);
  }
}

TEST(AxisTaps, HalvingAveragesPairs) {
  const radz::AxisTaps taps = radz::make_axis_taps(8, 4);
  for (int64_t i = 0; i < 4; ++i) {
    ASSERT_EQ(taps.count[i], 2);
    EXPECT_EQ(taps.first[i], 2 * i);
    EXPECT_DOUBLE_EQ(taps.weights[taps.offset[i]], 0.5);
    EXPECT_DOUBLE_EQ(taps.weights[taps.offset[i] + 1], 0.5);
  }
}

TEST(AxisTaps, ShrinkByNonIntegerFactorWeightsCoverage) {
  // 3 -> 2: output 0 covers [0, 1.5): pixel 0 fully, pixel 1 half; each /1.5.
  const radz::AxisTaps taps = radz::make_axis_taps(3, 2);
  EXPECT_EQ(taps.first[0], 0);
  EXPECT_NEAR(taps.weights[taps.offset[0]], 1.0 / 1.5, 1e-15);
  EXPECT_NEAR(taps.weights[taps.offset[0] + 1], 0.5 / 1.5, 1e-15);
}

TEST(AxisTaps, RejectsEmptyAxes) {
  EXPECT_THROW(radz::make_axis_taps(0, 4), std::invalid_argument);
  EXPECT_THROW(radz::make_axis_taps(4, 0), std::invalid_argument);
}

TEST(Placement, LetterboxKeepsAspectAndCentres) {
  const radz::Placement p = radz::place_image(2500, 2000, 224, 224, true);
  EXPECT_EQ(p.height, 224);
  EXPECT_EQ(p.width, 179);  // 2000 * 224 / 2500 = 179.2
  EXPECT_EQ(p.top, 0);
  EXPECT_EQ(p.left, (224 - 179) / 2);
  const radz::Placement thin = radz::place_image(1, 5000, 224, 224, true);
  EXPECT_EQ(thin.height, 1);  // never zero rows
  EXPECT_EQ(thin.width, 224);
  const radz::Placement stretch = radz::place_image(1, 5000, 224, 100, false);
  EXPECT_EQ(stretch.height, 224);
  EXPECT_EQ(stretch.width, 100);
}

}  // namespace
