#include "radz/pixel_spec.h"

#include <cmath>
#include <string>

#include "radz/errors.h"

namespace radz {
namespace {

void check_finite(const std::string& name, double value) {
  if (!std::isfinite(value)) throw_invalid("spec." + name, "must be finite, got " + std::to_string(value));
}

}  // namespace

void validate(const PixelSpec& spec) {
  check_finite("rescale_slope", spec.rescale_slope);
  check_finite("rescale_intercept", spec.rescale_intercept);
  if (spec.rescale_slope == 0.0) throw_invalid("spec.rescale_slope", "must not be 0");
  if (spec.window_center.has_value() != spec.window_width.has_value()) {
    throw_invalid("spec.window_center/window_width", "give both or neither");
  }
  if (spec.window_width) {
    check_finite("window_center", *spec.window_center);
    check_finite("window_width", *spec.window_width);
    const double width = *spec.window_width;
    if (spec.voi_function == VoiFunction::kLinear && !(width >= 1.0)) {
      throw_invalid("spec.window_width", "must be >= 1 for LINEAR, got " + std::to_string(width));
    }
    if (!(width > 0.0)) throw_invalid("spec.window_width", "must be > 0, got " + std::to_string(width));
  }
  if (!spec.voi_lut.empty()) {
    for (double entry : spec.voi_lut) {
      if (!std::isfinite(entry)) throw_invalid("spec.voi_lut", "contains NaN or Inf");
    }
    if (spec.voi_lut_bits < 1 || spec.voi_lut_bits > 16) {
      throw_invalid("spec.voi_lut_bits", "must be in 1..16, got " + std::to_string(spec.voi_lut_bits));
    }
  }
  if (spec.bits_stored < 0 || spec.bits_stored > 32) {
    throw_invalid("spec.bits_stored", "must be in 0..32, got " + std::to_string(spec.bits_stored));
  }
  if (spec.padding_value) check_finite("padding_value", *spec.padding_value);
  if (spec.padding_limit) {
    check_finite("padding_limit", *spec.padding_limit);
    if (!spec.padding_value) throw_invalid("spec.padding_limit", "needs padding_value");
  }
}

}  // namespace radz
