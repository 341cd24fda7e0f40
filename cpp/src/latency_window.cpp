#include "latency_window.h"

#include <algorithm>
#include <cmath>

#include "radz/errors.h"

namespace radz {

LatencyWindow::LatencyWindow(size_t capacity) : capacity_(capacity) {
  if (capacity == 0) throw_invalid("capacity", "must be > 0");
  samples_.reserve(std::min<size_t>(capacity, 1024));
}

void LatencyWindow::add(std::chrono::microseconds latency) {
  if (samples_.size() < capacity_) {
    samples_.push_back(latency);
    return;
  }
  samples_[next_] = latency;
  next_ = (next_ + 1) % capacity_;
}

std::vector<std::chrono::microseconds> LatencyWindow::percentiles(const std::vector<double>& quantiles) const {
  std::vector<std::chrono::microseconds> result(quantiles.size(), std::chrono::microseconds(0));
  if (samples_.empty()) return result;
  std::vector<std::chrono::microseconds> sorted = samples_;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < quantiles.size(); ++i) {
    const double q = std::clamp(quantiles[i], 0.0, 1.0);
    // Nearest rank: the smallest sample with at least q of the samples at or below it.
    const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
    result[i] = sorted[rank == 0 ? 0 : rank - 1];
  }
  return result;
}

}  // namespace radz
