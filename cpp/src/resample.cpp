#include "resample.h"

#include <algorithm>
#include <cmath>

#include "radz/errors.h"

namespace radz {

AxisTaps make_axis_taps(int64_t n_in, int64_t n_out) {
  if (n_in < 1) throw_invalid("n_in", "must be >= 1");
  if (n_out < 1) throw_invalid("n_out", "must be >= 1");
  AxisTaps taps;
  taps.first.reserve(n_out);
  taps.count.reserve(n_out);
  taps.offset.reserve(n_out);
  // Same double arithmetic, in the same order, as preprocess_reference.resample_weights.
  const double scale = static_cast<double>(n_in) / static_cast<double>(n_out);
  for (int64_t i = 0; i < n_out; ++i) {
    taps.offset.push_back(static_cast<int64_t>(taps.weights.size()));
    if (n_out < n_in) {
      const double start = static_cast<double>(i) * scale;
      const double stop = static_cast<double>(i + 1) * scale;
      const int64_t lo = static_cast<int64_t>(std::floor(start));
      const int64_t hi = std::min(static_cast<int64_t>(std::ceil(stop)), n_in);
      taps.first.push_back(lo);
      for (int64_t j = lo; j < hi; ++j) {
        const double overlap = std::min(stop, static_cast<double>(j) + 1.0) - std::max(start, static_cast<double>(j));
        taps.weights.push_back(overlap > 0.0 ? overlap / scale : 0.0);
      }
    } else {
      const double x =
          std::min(std::max((static_cast<double>(i) + 0.5) * scale - 0.5, 0.0), static_cast<double>(n_in) - 1.0);
      const int64_t j0 = static_cast<int64_t>(std::floor(x));
      const int64_t j1 = std::min(j0 + 1, n_in - 1);
      const double frac = x - static_cast<double>(j0);
      taps.first.push_back(j0);
      if (j1 == j0) {
        taps.weights.push_back((1.0 - frac) + frac);
      } else {
        taps.weights.push_back(1.0 - frac);
        taps.weights.push_back(frac);
      }
    }
    taps.count.push_back(static_cast<int32_t>(static_cast<int64_t>(taps.weights.size()) - taps.offset.back()));
  }
  return taps;
}

Placement place_image(int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w, bool letterbox) {
  if (!letterbox) return Placement{out_h, out_w, 0, 0};
  const double scale = std::min(static_cast<double>(out_h) / static_cast<double>(in_h),
                                static_cast<double>(out_w) / static_cast<double>(in_w));
  Placement p;
  p.height =
      std::min(out_h, std::max<int64_t>(1, static_cast<int64_t>(std::floor(static_cast<double>(in_h) * scale + 0.5))));
  p.width =
      std::min(out_w, std::max<int64_t>(1, static_cast<int64_t>(std::floor(static_cast<double>(in_w) * scale + 0.5))));
  p.top = (out_h - p.height) / 2;
  p.left = (out_w - p.width) / 2;
  return p;
}

}  // namespace radz
