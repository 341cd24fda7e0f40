#pragma once
/// Ticket: the future a DynamicBatcher hands back for one submitted request.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace radz {

/// Which queue a request waits in: stat (urgent) requests always leave before routine ones;
/// within a priority, first in, first out.
enum class Priority { kStat, kRoutine };

namespace detail {
struct Request;
}  // namespace detail

/// A handle on one request's result. Copies share the same request; it stays valid after the
/// batcher that made it is destroyed (the request is then failed, never left pending).
class Ticket {
 public:
  /// Wraps a request made by DynamicBatcher::submit(); not meant to be called directly.
  explicit Ticket(std::shared_ptr<detail::Request> request);

  /// The request id: unique per batcher, increasing in submission order; Batch::request_ids
  /// holds the same ids.
  uint64_t id() const;

  /// True once the request has an output or an error (completed, failed, expired, cancelled).
  bool ready() const;

  /// Blocks until ready() or `timeout` has passed; returns ready().
  bool wait(std::chrono::nanoseconds timeout) const;

  /// Blocks until ready, then returns the output (output_size floats) or rethrows the stored
  /// error: DeadlineExceeded, RequestCancelled, or std::runtime_error for a failed batch or
  /// a shutdown. The reference lives as long as any copy of this Ticket.
  const std::vector<float>& get() const;

  /// Removes the request from the queue if no runner has taken it yet; it then fails with
  /// RequestCancelled. Returns false when it is already running or finished (or the batcher
  /// is gone): the request then ends as it would have.
  bool cancel();

  /// Time from submit to the result or error; nullopt while not ready.
  std::optional<std::chrono::microseconds> latency() const;

 private:
  std::shared_ptr<detail::Request> request_;
};

}  // namespace radz
