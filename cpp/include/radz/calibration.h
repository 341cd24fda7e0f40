#pragma once
/// Per-class probability calibration and decision threshold.
///
/// The C++ twin of python/radz_train/evaluation/calibration.py's `Calibration` record
/// (fitted by `radz eval --calibrate`, shipped in a bundle's classes.json); the two must agree:
///
/// - none:        p = score;
/// - platt:       p = sigmoid(a * score + b);
/// - temperature: p = sigmoid(score / T), the score taken as a logit;
///
/// and a class is called positive when p >= threshold. threshold = +inf means "never positive"
/// (a class fitted without positives; JSON null). The default record is method none,
/// threshold 0.5, as `Calibration(method="none")` in Python.

#include <string>
#include <vector>

namespace radz {

/// Which score -> probability mapping a Calibration applies.
enum class CalibrationMethod { kNone, kPlatt, kTemperature };

/// "none" | "platt" | "temperature"; throws std::invalid_argument("method: ...") otherwise.
CalibrationMethod parse_calibration_method(const std::string& method);
/// The name parse_calibration_method accepts.
std::string to_string(CalibrationMethod method);

/// How one class turns its raw score into a probability and a yes/no call.
struct Calibration {
  /// Which mapping apply() uses.
  CalibrationMethod method = CalibrationMethod::kNone;
  /// Platt slope and intercept (used when method is kPlatt).
  double a = 1.0;
  /// Platt intercept.
  double b = 0.0;
  /// Temperature T > 0 (used when method is kTemperature).
  double temperature = 1.0;
  /// Probability cut: positive when apply(score) >= threshold; +inf = never positive.
  double threshold = 0.5;

  /// From a method name and its parameters in calibration.py's key order: platt [a, b],
  /// temperature [T], none []. Validated; errors name "method", "params" or "threshold".
  static Calibration from_params(const std::string& method, const std::vector<double>& params, double threshold);

  /// The parameters in from_params's order.
  std::vector<double> params() const;

  /// Throws std::invalid_argument naming the field: finite parameters, T > 0, threshold
  /// neither NaN nor -inf (as calibration.py's __post_init__).
  void validate() const;

  /// Calibrated probability of one raw score.
  double apply(double score) const;

  /// apply(score) >= threshold.
  bool predict(double score) const { return apply(score) >= threshold; }
};

/// 1 / (1 + exp(-z)), accurate in both tails and never overflowing (calibration.py's _sigmoid).
double stable_sigmoid(double z);

}  // namespace radz
