#include "radz/calibration.h"

#include <cmath>
#include <limits>
#include <sstream>

#include "radz/errors.h"

namespace radz {

CalibrationMethod parse_calibration_method(const std::string& method) {
  if (method == "none") return CalibrationMethod::kNone;
  if (method == "platt") return CalibrationMethod::kPlatt;
  if (method == "temperature") return CalibrationMethod::kTemperature;
  throw_invalid("method", "must be one of 'platt', 'temperature', 'none', got '" + method + "'");
}

std::string to_string(CalibrationMethod method) {
  switch (method) {
    case CalibrationMethod::kPlatt:
      return "platt";
    case CalibrationMethod::kTemperature:
      return "temperature";
    case CalibrationMethod::kNone:
      break;
  }
  return "none";
}

Calibration Calibration::from_params(const std::string& method, const std::vector<double>& params, double threshold) {
  Calibration cal;
  cal.method = parse_calibration_method(method);
  const size_t want = cal.method == CalibrationMethod::kPlatt         ? 2
                      : cal.method == CalibrationMethod::kTemperature ? 1
                                                                      : 0;
  if (params.size() != want) {
    const char* layout = cal.method == CalibrationMethod::kPlatt         ? "[a, b]"
                         : cal.method == CalibrationMethod::kTemperature ? "[temperature]"
                                                                         : "[]";
    throw_invalid("params", "method '" + method + "' takes " + layout + " (" + std::to_string(want) + " values), got " +
                                std::to_string(params.size()));
  }
  if (cal.method == CalibrationMethod::kPlatt) {
    cal.a = params[0];
    cal.b = params[1];
  } else if (cal.method == CalibrationMethod::kTemperature) {
    cal.temperature = params[0];
  }
  cal.threshold = threshold;
  cal.validate();
  return cal;
}

std::vector<double> Calibration::params() const {
  switch (method) {
    case CalibrationMethod::kPlatt:
      return {a, b};
    case CalibrationMethod::kTemperature:
      return {temperature};
    case CalibrationMethod::kNone:
      break;
  }
  return {};
}

void Calibration::validate() const {
  for (double p : params()) {
    if (!std::isfinite(p)) {
      std::ostringstream s;
      s << "must be finite, got " << p;
      throw_invalid("params", s.str());
    }
  }
  if (method == CalibrationMethod::kTemperature && !(temperature > 0.0)) {
    std::ostringstream s;
    s << "temperature must be > 0, got " << temperature;
    throw_invalid("params", s.str());
  }
  if (std::isnan(threshold) || threshold == -std::numeric_limits<double>::infinity()) {
    std::ostringstream s;
    s << "must be a number or +inf (never positive), got " << threshold;
    throw_invalid("threshold", s.str());
  }
}

double stable_sigmoid(double z) {
  // Split by sign so exp() only ever sees a non-positive argument.
  if (z >= 0.0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}

double Calibration::apply(double score) const {
  switch (method) {
    case CalibrationMethod::kPlatt:
      return stable_sigmoid(a * score + b);
    case CalibrationMethod::kTemperature:
      return stable_sigmoid(score / temperature);
    case CalibrationMethod::kNone:
      break;
  }
  return score;
}

}  // namespace radz
