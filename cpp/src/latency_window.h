#pragma once
/// LatencyWindow: percentiles over the most recent N latencies (a ring buffer), so metrics
/// describe current behaviour and memory stays bounded however long the process runs.

#include <chrono>
#include <cstddef>
#include <vector>

namespace radz {

/// Not thread-safe: the owner guards it (DynamicBatcher uses its own mutex).
class LatencyWindow {
 public:
  /// Keeps the last `capacity` samples; capacity must be > 0.
  explicit LatencyWindow(size_t capacity = 4096);

  /// Adds one sample, dropping the oldest when full.
  void add(std::chrono::microseconds latency);

  /// Number of samples held (<= capacity).
  size_t size() const { return samples_.size(); }

  /// Nearest-rank percentiles for each q in [0, 1] (0.5 = median), in one pass over a copy;
  /// all zero when empty.
  std::vector<std::chrono::microseconds> percentiles(const std::vector<double>& quantiles) const;

 private:
  size_t capacity_;
  size_t next_ = 0;  // slot the next sample overwrites once full
  std::vector<std::chrono::microseconds> samples_;
};

}  // namespace radz
