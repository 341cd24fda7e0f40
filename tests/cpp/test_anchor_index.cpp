#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "radz/anchor_index.h"
#include "radz/calibration.h"

namespace {

using radz::AnchorIndex;
using radz::Calibration;
using radz::ClassVectors;
using radz::ScoringMode;

constexpr double kTol = 1e-6;

ClassVectors prompt(std::vector<float> v) { return ClassVectors{std::move(v), {}, {}, {}}; }
ClassVectors anchor(std::vector<float> v) { return ClassVectors{{}, {}, {}, std::move(v)}; }

double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

// Expects `fn` to throw std::invalid_argument whose message starts with "<argument>:".
template <typename Fn>
void expect_invalid(Fn&& fn, const std::string& argument) {
  try {
    fn();
    ADD_FAILURE() << "no exception, expected one naming " << argument;
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).rfind(argument + ":", 0), 0u) << e.what();
  }
}

TEST(AnchorIndex, SoftmaxByHand) {
  AnchorIndex index(2, ScoringMode::kSoftmax, 0.5);
  index.add_class("a", prompt({1, 0}));
  index.add_class("b", prompt({0, 1}));
  const float x[] = {1, 0, 0.6f, 0.8f};
  const radz::Scores s = index.score(x, 2);
  ASSERT_EQ(s.n, 2u);
  ASSERT_EQ(s.num_classes, 2u);
  EXPECT_EQ(s.class_names, (std::vector<std::string>{"a", "b"}));
  // Row 0: logits 1/0.5 = 2 and 0.
  EXPECT_NEAR(s.raw[0], std::exp(2.0) / (std::exp(2.0) + 1.0), kTol);
  EXPECT_NEAR(s.raw[1], 1.0 / (std::exp(2.0) + 1.0), kTol);
  // Row 1: logits 1.2 and 1.6.
  EXPECT_NEAR(s.raw[2], sigmoid(1.2 - 1.6), kTol);
  EXPECT_NEAR(s.raw[3], sigmoid(1.6 - 1.2), kTol);
  // Default calibration: none, threshold 0.5.
  EXPECT_EQ(s.probabilities, s.raw);
  EXPECT_EQ(s.positive, (std::vector<uint8_t>{1, 0, 0, 1}));
}

TEST(AnchorIndex, PosNegByHand) {
  AnchorIndex index(2, ScoringMode::kPosNeg, 0.1);
  index.add_class("a", ClassVectors{{}, {1, 0}, {0, 1}, {}});
  index.add_class("b", ClassVectors{{}, {0, 1}, {1, 0}, {}});
  const float x[] = {0.6f, 0.8f};
  const radz::Scores s = index.score(x, 1);
  EXPECT_NEAR(s.raw[0], sigmoid((0.6 - 0.8) / 0.1), kTol);
  EXPECT_NEAR(s.raw[1], sigmoid((0.8 - 0.6) / 0.1), kTol);
}

TEST(AnchorIndex, AnchorBackgroundColumnIsDropped) {
  AnchorIndex index(2, ScoringMode::kAnchor, 1.0);
  index.add_class("a", anchor({1, 0}));
  const float x[] = {1, 0};
  EXPECT_NEAR(index.score(x, 1).raw[0], 1.0, kTol);  // alone in its softmax
  index.set_background(std::vector<float>{0, 1});
  EXPECT_TRUE(index.has_background());
  radz::Scores s = index.score(x, 1);
  ASSERT_EQ(s.num_classes, 1u);
  EXPECT_NEAR(s.raw[0], std::exp(1.0) / (std::exp(1.0) + 1.0), kTol);
  index.set_background(std::nullopt);
  EXPECT_FALSE(index.has_background());
  EXPECT_NEAR(index.score(x, 1).raw[0], 1.0, kTol);
}

TEST(AnchorIndex, VectorsAreNormalisedOnEntry) {
  AnchorIndex scaled(2, ScoringMode::kSoftmax, 0.05);
  AnchorIndex unit(2, ScoringMode::kSoftmax, 0.05);
  scaled.add_class("a", prompt({3, 4}));
  scaled.add_class("b", prompt({-7, 0}));
  unit.add_class("a", prompt({0.6f, 0.8f}));
  unit.add_class("b", prompt({-1, 0}));
  const float x[] = {0.8f, 0.6f};
  const auto s = scaled.score(x, 1);
  const auto u = unit.score(x, 1);
  for (size_t c = 0; c < 2; ++c) EXPECT_NEAR(s.raw[c], u.raw[c], kTol);
}

TEST(AnchorIndex, UnusedVectorsAreCheckedAndStored) {
  AnchorIndex index(2, ScoringMode::kAnchor, 0.05);
  index.add_class("a", ClassVectors{{1, 0}, {0, 1}, {1, 0}, {1, 0}});
  expect_invalid([&] { index.add_class("b", ClassVectors{{1, 0, 0}, {}, {}, {1, 0}}); }, "prompt");
}

TEST(AnchorIndex, EmptyIndexAndEmptyBatch) {
  AnchorIndex index(3, ScoringMode::kSoftmax, 0.05);
  const float x[] = {1, 0, 0};
  radz::Scores s = index.score(x, 1);
  EXPECT_EQ(s.n, 1u);
  EXPECT_EQ(s.num_classes, 0u);
  EXPECT_TRUE(s.raw.empty());
  index.add_class("a", prompt({1, 0, 0}));
  s = index.score(nullptr, 0);
  EXPECT_EQ(s.n, 0u);
  EXPECT_EQ(s.num_classes, 1u);
  EXPECT_EQ(index.top_k(x, 1, 5).k, 1u);
}

TEST(AnchorIndex, AddReplaceRemove) {
  AnchorIndex index(2, ScoringMode::kAnchor, 1.0);
  index.add_class("a", anchor({1, 0}));
  index.add_class("b", anchor({0, 1}));
  index.add_class("c", anchor({-1, 0}));
  EXPECT_EQ(index.size(), 3u);
  expect_invalid([&] { index.add_class("b", anchor({1, 0})); }, "name");
  expect_invalid([&] { index.add_class("", anchor({1, 0})); }, "name");

  index.set_calibration("b", Calibration::from_params("platt", {2.0, -1.0}, 0.7));
  index.replace_class("b", anchor({1, 0}));  // b now equals a
  EXPECT_EQ(index.class_names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(index.calibration("b").method, radz::CalibrationMethod::kPlatt);  // kept
  const float x[] = {1, 0};
  radz::Scores s = index.score(x, 1);
  EXPECT_NEAR(s.raw[0], s.raw[1], kTol);
  EXPECT_NEAR(s.probabilities[1], sigmoid(2.0 * s.raw[1] - 1.0), kTol);
  expect_invalid([&] { index.replace_class("z", anchor({1, 0})); }, "name");

  index.remove_class("a");
  EXPECT_EQ(index.class_names(), (std::vector<std::string>{"b", "c"}));
  s = index.score(x, 1);
  EXPECT_NEAR(s.raw[0], std::exp(1.0) / (std::exp(1.0) + std::exp(-1.0)), kTol);
  expect_invalid([&] { index.remove_class("a"); }, "name");
  index.add_class("a", anchor({0, 1}));  // re-added: last column, default calibration
  EXPECT_EQ(index.class_names(), (std::vector<std::string>{"b", "c", "a"}));
  EXPECT_EQ(index.calibration("a").method, radz::CalibrationMethod::kNone);
}

TEST(AnchorIndex, FailedEditChangesNothing) {
  AnchorIndex index(2, ScoringMode::kSoftmax, 0.05);
  index.add_class("a", prompt({1, 0}));
  expect_invalid([&] { index.add_class("a", prompt({0, 1})); }, "name");
  expect_invalid([&] { index.set_calibration("nope", Calibration()); }, "name");
  EXPECT_EQ(index.size(), 1u);
  const float x[] = {1, 0};
  EXPECT_NEAR(index.score(x, 1).raw[0], 1.0, kTol);
}

TEST(Calibration, MathMatchesCalibrationPy) {
  const Calibration none = Calibration::from_params("none", {}, 0.5);
  EXPECT_DOUBLE_EQ(none.apply(0.3), 0.3);
  const Calibration platt = Calibration::from_params("platt", {3.0, -2.0}, 0.5);
  EXPECT_NEAR(platt.apply(0.4), sigmoid(3.0 * 0.4 - 2.0), 1e-12);
  const Calibration temp = Calibration::from_params("temperature", {2.5}, 0.5);
  EXPECT_NEAR(temp.apply(0.4), sigmoid(0.4 / 2.5), 1e-12);
  EXPECT_EQ(temp.params(), (std::vector<double>{2.5}));
  // Tails: no overflow, no NaN.
  EXPECT_EQ(radz::stable_sigmoid(-1000.0), 0.0);
  EXPECT_EQ(radz::stable_sigmoid(1000.0), 1.0);
  EXPECT_NEAR(radz::stable_sigmoid(-30.0), std::exp(-30.0), 1e-25);
}

TEST(Calibration, Threshold) {
  const Calibration at = Calibration::from_params("none", {}, 0.25);
  EXPECT_TRUE(at.predict(0.25));  // >=, as calibration.py
  EXPECT_FALSE(at.predict(0.2499));
  const Calibration never = Calibration::from_params("none", {}, std::numeric_limits<double>::infinity());
  EXPECT_FALSE(never.predict(1.0));
  const Calibration always = Calibration::from_params("none", {}, 0.0);
  EXPECT_TRUE(always.predict(0.0));
}

TEST(Calibration, BadRecords) {
  expect_invalid([] { Calibration::from_params("isotonic", {}, 0.5); }, "method");
  expect_invalid([] { Calibration::from_params("platt", {1.0}, 0.5); }, "params");
  expect_invalid([] { Calibration::from_params("none", {1.0}, 0.5); }, "params");
  expect_invalid([] { Calibration::from_params("temperature", {0.0}, 0.5); }, "params");
  expect_invalid([] { Calibration::from_params("platt", {NAN, 0.0}, 0.5); }, "params");
  expect_invalid([] { Calibration::from_params("none", {}, NAN); }, "threshold");
  expect_invalid([] { Calibration::from_params("none", {}, -INFINITY); }, "threshold");
}

TEST(AnchorIndex, CalibrationAndThresholdApplied) {
  AnchorIndex index(2, ScoringMode::kSoftmax, 0.5);
  index.add_class("a", prompt({1, 0}));
  index.add_class("b", prompt({0, 1}));
  index.set_calibration("a", Calibration::from_params("temperature", {0.5}, 0.9));
  index.set_calibration("b", Calibration::from_params("platt", {4.0, 1.0}, std::numeric_limits<double>::infinity()));
  const float x[] = {1, 0};
  const radz::Scores s = index.score(x, 1);
  const double pa = sigmoid(s.raw[0] / 0.5);
  const double pb = sigmoid(4.0 * s.raw[1] + 1.0);
  EXPECT_NEAR(s.probabilities[0], pa, kTol);
  EXPECT_NEAR(s.probabilities[1], pb, kTol);
  EXPECT_EQ(s.positive[0], pa >= 0.9 ? 1 : 0);
  EXPECT_EQ(s.positive[1], 0);  // never positive
}

TEST(AnchorIndex, TopKOrder) {
  AnchorIndex index(3, ScoringMode::kSoftmax, 1.0);
  index.add_class("a", prompt({1, 0, 0}));
  index.add_class("b", prompt({0, 1, 0}));
  index.add_class("c", prompt({0, 0, 1}));
  index.add_class("d", prompt({0, 1, 0}));  // ties with b
  const float x[] = {0.36f, 0.48f, 0.8f, 1, 0, 0};
  const radz::TopK t = index.top_k(x, 2, 3);
  ASSERT_EQ(t.k, 3u);
  EXPECT_EQ(t.indices, (std::vector<int64_t>{2, 1, 3, 0, 1, 2}));  // ties: lower index first
  const radz::Scores s = index.score(x, 2);
  for (size_t i = 0; i < 2; ++i) {
    for (size_t j = 0; j < 3; ++j) {
      EXPECT_EQ(t.probabilities[i * 3 + j], s.probabilities[i * 4 + static_cast<size_t>(t.indices[i * 3 + j])]);
    }
    EXPECT_GE(t.probabilities[i * 3], t.probabilities[i * 3 + 1]);
  }
  EXPECT_EQ(index.top_k(x, 1, 10).k, 4u);  // clipped to the number of classes
  expect_invalid([&] { index.top_k(x, 1, 0); }, "k");
}

TEST(AnchorIndex, BadInput) {
  expect_invalid([] { AnchorIndex(0, ScoringMode::kAnchor, 0.05); }, "dim");
  expect_invalid([] { AnchorIndex(4, ScoringMode::kAnchor, 0.0); }, "tau");
  expect_invalid([] { AnchorIndex(4, ScoringMode::kAnchor, NAN); }, "tau");
  expect_invalid([] { radz::parse_scoring_mode("cosine"); }, "mode");
  AnchorIndex index(2, ScoringMode::kPosNeg, 0.05);
  expect_invalid([&] { index.add_class("a", ClassVectors{{}, {1, 0}, {}, {}}); }, "negative");
  expect_invalid([&] { index.add_class("a", ClassVectors{{}, {1, 0, 0}, {0, 1}, {}}); }, "positive");
  expect_invalid([&] { index.add_class("a", ClassVectors{{}, {1, NAN}, {0, 1}, {}}); }, "positive");
  expect_invalid([&] { index.add_class("a", ClassVectors{{}, {1, 0}, {0, 0}, {}}); }, "negative");
  expect_invalid([&] { index.set_background(std::vector<float>{1}); }, "background");
  index.add_class("a", ClassVectors{{}, {1, 0}, {0, 1}, {}});
  const float x[] = {1, INFINITY};
  expect_invalid([&] { index.score(x, 1); }, "x");
  expect_invalid([&] { index.score(nullptr, 1); }, "x");
}

// One writer adds and removes classes while readers score; every result must come from one
// consistent snapshot. Run under ThreadSanitizer (build/ctest-thread) to check for races.
TEST(AnchorIndex, ConcurrentReadersAndWriter) {
  constexpr int kDim = 8;
  AnchorIndex index(kDim, ScoringMode::kAnchor, 0.1);
  auto unit = [](int i) {
    std::vector<float> v(kDim, 0.0f);
    v[static_cast<size_t>(i % kDim)] = 1.0f;
    return v;
  };
  for (int c = 0; c < 4; ++c) index.add_class("base" + std::to_string(c), anchor(unit(c)));
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::atomic<long> reads{0};

  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&, r] {
      std::vector<float> x = unit(r);
      const std::vector<float> x2 = unit(r + 1);
      x.insert(x.end(), x2.begin(), x2.end());  // two rows
      while (!stop.load()) {
        const radz::Scores s = index.score(x.data(), 2);
        bool ok = s.class_names.size() == s.num_classes && s.raw.size() == 2 * s.num_classes && s.num_classes >= 4 &&
                  s.class_names[0] == "base0";
        for (size_t i = 0; ok && i < 2; ++i) {  // no background: each row sums to 1
          double sum = 0.0;
          for (size_t c = 0; c < s.num_classes; ++c) sum += s.raw[i * s.num_classes + c];
          ok = std::abs(sum - 1.0) < 1e-4;
        }
        if (!ok) failures.fetch_add(1);
        const radz::TopK t = index.top_k(x.data(), 1, 2);
        if (t.k != 2 || t.indices[0] >= static_cast<int64_t>(t.class_names.size())) failures.fetch_add(1);
        reads.fetch_add(1);
      }
    });
  }
  std::thread writer([&] {
    // Start writing once every reader is reading: on a loaded machine the writer could otherwise
    // finish before any reader ran, and nothing would have been tested concurrently.
    while (reads.load() < 3) std::this_thread::yield();
    for (int i = 0; i < 200; ++i) {
      const std::string name = "extra" + std::to_string(i % 3);
      index.add_class(name, anchor(unit(i)));
      index.set_calibration(name, Calibration::from_params("temperature", {1.5}, 0.5));
      index.replace_class(name, anchor(unit(i + 1)));
      index.remove_class(name);
    }
    stop.store(true);
  });
  writer.join();
  for (auto& t : readers) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(index.size(), 4u);
}

}  // namespace
