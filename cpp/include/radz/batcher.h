#pragma once
/// DynamicBatcher: groups single inference requests into batches for runner threads.
///
/// Producers (any number of threads) call submit() with one fixed-size float32 input and get a
/// Ticket. Runner threads (any number) call next_batch(), run the model on Batch::inputs and
/// hand the outputs back with complete(), or report an error with fail(). The batcher never
/// runs the model itself and never calls Python, so runners can wait here with the GIL released.
///
/// A batch is formed when max_batch_size requests are waiting, or when the oldest waiting
/// request has waited max_delay (low load: bounded extra latency), or earlier when no further
/// request is expected in time (BatcherOptions::adaptive_delay), or at once while draining
/// after shutdown(true). Stat requests go first; FIFO within a priority.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "radz/ticket.h"

namespace radz {

/// What submit() does when max_queue requests are already waiting.
enum class Backpressure {
  kBlock,   ///< wait up to block_timeout for room, then throw QueueFull
  kReject,  ///< throw QueueFull at once
};

/// Thrown by submit() when the queue stays full (see Backpressure).
class QueueFull : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Stored in a request whose deadline passed before a runner took it; it never runs.
class DeadlineExceeded : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Stored in a request removed from the queue by Ticket::cancel().
class RequestCancelled : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Construction-time settings; validated by the DynamicBatcher constructor.
struct BatcherOptions {
  /// Floats in one request's input (e.g. C*H*W of the preprocessed image); > 0.
  size_t input_size = 0;
  /// Floats in one request's output (e.g. the embedding dimension); > 0.
  size_t output_size = 0;
  /// Most requests in one batch; > 0.
  size_t max_batch_size = 32;
  /// Longest the oldest waiting request waits for the batch to fill; >= 0.
  std::chrono::microseconds max_delay{2000};
  /// Dispatch a partial batch before max_delay when no further request is expected in time:
  /// at once when the next arrival (one mean gap, an EWMA of recent gaps, after the last one)
  /// falls after the batch is due; otherwise once the queue has been quiet for as long as
  /// remains until it is due. At low load a lone request then runs at once instead of waiting
  /// out max_delay; under load the batch still fills. false: always wait the full max_delay.
  bool adaptive_delay = true;
  /// Most requests waiting (not yet taken by a runner); > 0.
  size_t max_queue = 1024;
  /// What submit() does when the queue is full.
  Backpressure backpressure = Backpressure::kBlock;
  /// With Backpressure::kBlock: how long submit() waits for room; >= 0.
  std::chrono::milliseconds block_timeout{1000};
};

/// A group of requests taken by one runner. The batch owns its inputs, so they stay valid
/// after complete() or fail() (the Python view of them relies on that).
struct Batch {
  /// Pass to complete() / fail(); unique per batcher.
  uint64_t id = 0;
  /// size() * input_size floats, request after request, in request_ids order.
  std::vector<float> inputs;
  /// The requests in this batch (Ticket::id()), stat ones first.
  std::vector<uint64_t> request_ids;

  /// Number of requests in the batch.
  size_t size() const { return request_ids.size(); }
};

/// A snapshot of counters. Every accepted request ends as exactly one of completed, failed,
/// expired or cancelled, so: submitted == completed + failed + expired + cancelled
/// + queued_stat + queued_routine + in_flight_requests.
struct BatcherMetrics {
  /// Stat requests waiting for a runner.
  size_t queued_stat = 0;
  /// Routine requests waiting for a runner.
  size_t queued_routine = 0;
  /// Batches handed to runners and not yet completed or failed.
  size_t in_flight_batches = 0;
  /// Requests in those batches.
  size_t in_flight_requests = 0;
  /// Requests accepted by submit() (a Ticket was returned).
  uint64_t submitted = 0;
  /// Requests that got an output from complete().
  uint64_t completed = 0;
  /// Requests failed by fail(), by shutdown(false) or by destroying the batcher.
  uint64_t failed = 0;
  /// Requests whose deadline passed before they ran.
  uint64_t expired = 0;
  /// Requests removed by Ticket::cancel().
  uint64_t cancelled = 0;
  /// submit() calls that threw QueueFull (not counted in submitted).
  uint64_t rejected = 0;
  /// Batches formed so far.
  uint64_t batches = 0;
  /// Partial batches dispatched early by adaptive_delay (before max_delay).
  uint64_t early_dispatches = 0;
  /// batch_size_histogram[k] = number of batches of k requests, k = 0..max_batch_size.
  std::vector<uint64_t> batch_size_histogram;
  /// Median submit -> complete latency of recently completed requests (the last 4096).
  std::chrono::microseconds latency_p50{0};
  /// 90th percentile of the same window.
  std::chrono::microseconds latency_p90{0};
  /// 99th percentile of the same window.
  std::chrono::microseconds latency_p99{0};
  /// Number of samples behind the percentiles.
  size_t latency_samples = 0;

  /// queued_stat + queued_routine.
  size_t queue_depth() const { return queued_stat + queued_routine; }
};

namespace detail {
class BatcherCore;
}  // namespace detail

/// Thread-safe: every member may be called from any thread concurrently.
class DynamicBatcher {
 public:
  /// The clock deadlines are measured on.
  using Clock = std::chrono::steady_clock;
  /// The agreed name for the metrics snapshot type.
  using Metrics = BatcherMetrics;

  /// Throws std::invalid_argument naming the bad option.
  explicit DynamicBatcher(const BatcherOptions& options);
  /// Fails every queued and in-flight request ("batcher destroyed"), so no Ticket waits
  /// forever. Runners must not use the batcher once it is destroyed.
  ~DynamicBatcher();
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  /// The options it was built with.
  const BatcherOptions& options() const;

  /// Queues a copy of `input` (options().input_size floats). A deadline already passed gives a
  /// Ticket that has failed with DeadlineExceeded. Throws QueueFull under backpressure and
  /// std::runtime_error("batcher is shut down") after shutdown().
  Ticket submit(const float* input, Priority priority = Priority::kRoutine,
                std::optional<Clock::time_point> deadline = std::nullopt);

  /// Waits up to `wait` for a batch to form (see the file comment) and takes it; nullopt on
  /// timeout, or at once when shut down with nothing left to drain. Expired requests met on
  /// the way are failed with DeadlineExceeded and never put in a batch.
  std::optional<Batch> next_batch(std::chrono::microseconds wait);

  /// Hands back a batch's outputs: batch.size() * output_size floats in request_ids order,
  /// copied before returning. Throws std::invalid_argument when `batch_id` is not in flight.
  void complete(uint64_t batch_id, const float* outputs);

  /// Fails every request of the batch with std::runtime_error(message). Throws
  /// std::invalid_argument when `batch_id` is not in flight.
  void fail(uint64_t batch_id, const std::string& message);

  /// Stops accepting requests. drain = true: runners still get every queued request.
  /// drain = false: queued requests fail with "engine shut down before the request ran".
  /// Either way, batches in flight can still be completed. Returns at once; callable again
  /// (shutdown(false) after shutdown(true) drops what is left).
  void shutdown(bool drain = true);

  /// True once shutdown() was called.
  bool is_shut_down() const;

  /// A consistent snapshot of the counters.
  BatcherMetrics metrics() const;

 private:
  std::shared_ptr<detail::BatcherCore> core_;  // shared with Tickets (weakly) for cancel()
};

}  // namespace radz
