#pragma once
/// Separable resampling weights for one axis.
///
/// Shrinking uses exact area averaging (each output pixel is the mean of the source interval it
/// covers, fractional pixels weighted by coverage): anti-aliased, like OpenCV's INTER_AREA.
/// Growing (or keeping the size) uses bilinear interpolation with half-pixel centres and edge
/// clamping. Both are linear, so rows and columns are resampled independently.

#include <cstdint>
#include <vector>

namespace radz {

/// Taps of every output index: output[i] = sum_k weights[offset[i] + k] * input[first[i] + k],
/// k < count[i].
struct AxisTaps {
  std::vector<int64_t> first;
  std::vector<int32_t> count;
  std::vector<int64_t> offset;
  std::vector<double> weights;

  int64_t size() const { return static_cast<int64_t>(first.size()); }
};

/// Weights that map an axis of n_in samples onto n_out samples (both >= 1).
AxisTaps make_axis_taps(int64_t n_in, int64_t n_out);

/// Where the resized image lies inside the output.
struct Placement {
  int64_t height = 0;  ///< resized image height
  int64_t width = 0;   ///< resized image width
  int64_t top = 0;     ///< row offset inside the output
  int64_t left = 0;    ///< column offset inside the output
};

/// Letterbox: keep the aspect ratio, centre, pad the rest. Stretch: fill the output.
Placement place_image(int64_t in_h, int64_t in_w, int64_t out_h, int64_t out_w, bool letterbox);

}  // namespace radz
