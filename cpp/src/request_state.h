#pragma once
/// Internal: the state one request shares between its Ticket(s) and the DynamicBatcher.
/// Users never need this header; it is separate so ticket.cpp and batcher.cpp share it.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "radz/ticket.h"

namespace radz {

namespace detail {

struct Request;

/// What a Ticket needs from its batcher: taking a request back out of the queue. An interface
/// so the ticket holds only a weak reference to the batcher's internals.
class RequestQueue {
 public:
  virtual ~RequestQueue() = default;
  /// Removes `request` if it is still queued and fails it as cancelled; false otherwise.
  virtual bool cancel(Request& request) = 0;
};

/// Where a request is in its life. Changed only under the owning batcher's mutex, so a request
/// leaves the queue exactly once (to a batch, to cancel, to expiry or to shutdown).
enum class RequestPhase { kQueued, kRunning, kFinished };

struct Request {
  using Clock = std::chrono::steady_clock;

  // Set before the request is published to the batcher, read-only afterwards.
  uint64_t id = 0;
  Priority priority = Priority::kRoutine;
  std::vector<float> input;
  Clock::time_point submitted_at;
  std::optional<Clock::time_point> deadline;
  std::weak_ptr<RequestQueue> owner;

  // Guarded by the owning batcher's mutex.
  RequestPhase phase = RequestPhase::kQueued;
  std::list<std::shared_ptr<Request>>::iterator position;  // valid while kQueued

  /// Stores the output and wakes waiters; later calls (of either finish) are ignored.
  void finish(const float* output, size_t output_size, Clock::time_point at);
  /// Stores the error and wakes waiters; later calls are ignored.
  void finish(std::exception_ptr error, Clock::time_point at);

  // The result, guarded by result_mutex.
  mutable std::mutex result_mutex;
  mutable std::condition_variable result_ready;
  bool finished = false;
  std::vector<float> output;
  std::exception_ptr error;
  Clock::time_point finished_at;
};

}  // namespace detail
}  // namespace radz
