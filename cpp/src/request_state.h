#pragma once
/// Internal: one request waiting in a DynamicBatcher queue. Only batcher.cpp uses it.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "radz/batcher.h"

namespace radz {
namespace detail {

using Clock = std::chrono::steady_clock;

/// Queued requests by deadline (earliest first), so expiry needs no scan of the queue.
using DeadlineIndex = std::multimap<Clock::time_point, uint64_t>;

/// A queued request. Built outside the batcher's lock, then guarded by it.
struct Request {
  uint64_t id = 0;
  Priority priority = Priority::kRoutine;
  std::vector<float> input;
  Clock::time_point submitted_at;
  /// Its entry in the batcher's DeadlineIndex while queued; nullopt without a deadline.
  std::optional<DeadlineIndex::iterator> deadline;
};

/// What the batcher remembers of a request a runner has taken: enough for the latency metric.
struct RunningRequest {
  uint64_t id = 0;
  Clock::time_point submitted_at;
};

}  // namespace detail
}  // namespace radz
