#pragma once
/// DynamicBatcher: groups single inference requests into batches for runner threads.
///
/// Producers (any number of threads) call submit() with an id of their choosing and one
/// fixed-size float32 input. Runner threads (any number) call next_batch(), run the model on
/// Batch::inputs and report the outcome with complete() or fail(). The caller owns the one
/// future of each request (keyed by its id); the batcher stores no results and never calls
/// Python, so runners can wait here with the GIL released.
///
/// Every accepted id comes back from next_batch() exactly once: in Batch::request_ids (to run),
/// or in Batch::expired, Batch::cancelled or Batch::dropped (it never runs). A batch carrying
/// only such ended ids is returned as soon as there are any, so callers learn of them promptly.
///
/// A batch of requests is formed when max_batch_size requests are waiting, or when the oldest
/// waiting request has waited max_delay (low load: bounded extra latency), or earlier when no
/// further request is expected in time (BatcherOptions::adaptive_delay), or at once while
/// draining after shutdown(true). Stat requests go first; FIFO within a priority.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace radz {

/// Which queue a request waits in: stat (urgent) requests always leave before routine ones;
/// within a priority, first in, first out.
enum class Priority { kStat, kRoutine };

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

/// Construction-time settings; validated by the DynamicBatcher constructor.
struct BatcherOptions {
  /// Floats in one request's input (e.g. C*H*W of the preprocessed image); > 0.
  size_t input_size = 0;
  /// Floats in one request's output (e.g. the embedding dimension); > 0. The batcher does not
  /// see outputs; it keeps the size for the callers that share it.
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

/// What one next_batch() call hands a runner: requests to run and/or ids that ended without
/// running. The batch owns its inputs, so they stay valid after complete() or fail() (the
/// Python view of them relies on that).
struct Batch {
  /// Pass to complete() / fail(); unique per batcher. 0 when the batch has no requests to run
  /// (only ended ids): such a batch is not in flight and needs no complete().
  uint64_t id = 0;
  /// size() * input_size floats, request after request, in request_ids order.
  std::vector<float> inputs;
  /// The requests to run (the ids given to submit()), stat ones first.
  std::vector<uint64_t> request_ids;
  /// Requests whose deadline passed before a runner took them; they never run.
  std::vector<uint64_t> expired;
  /// Requests removed from the queue by cancel(); they never run.
  std::vector<uint64_t> cancelled;
  /// Requests removed from the queue by shutdown(false); they never run.
  std::vector<uint64_t> dropped;

  /// Number of requests to run.
  size_t size() const { return request_ids.size(); }
};

/// A snapshot of counters. Every accepted request ends as exactly one of completed, failed,
/// expired, cancelled or dropped, so: submitted == completed + failed + expired + cancelled
/// + dropped + queued_stat + queued_routine + in_flight_requests. A request counts as
/// expired / cancelled / dropped from the moment it ends, before next_batch() reports its id.
struct BatcherMetrics {
  /// Stat requests waiting for a runner.
  size_t queued_stat = 0;
  /// Routine requests waiting for a runner.
  size_t queued_routine = 0;
  /// Batches handed to runners and not yet completed or failed.
  size_t in_flight_batches = 0;
  /// Requests in those batches.
  size_t in_flight_requests = 0;
  /// Requests accepted by submit().
  uint64_t submitted = 0;
  /// Requests of batches passed to complete().
  uint64_t completed = 0;
  /// Requests of batches passed to fail().
  uint64_t failed = 0;
  /// Requests whose deadline passed before they ran.
  uint64_t expired = 0;
  /// Requests removed by cancel().
  uint64_t cancelled = 0;
  /// Requests removed by shutdown(false).
  uint64_t dropped = 0;
  /// submit() calls that threw QueueFull (not counted in submitted).
  uint64_t rejected = 0;
  /// Batches of requests formed so far (batches with only ended ids are not counted).
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
  /// Nothing waits on the batcher (callers own the futures), so destruction just frees the
  /// queue. Runners must not use the batcher once it is destroyed.
  ~DynamicBatcher();
  DynamicBatcher(const DynamicBatcher&) = delete;
  DynamicBatcher& operator=(const DynamicBatcher&) = delete;

  /// The options it was built with.
  const BatcherOptions& options() const;

  /// Queues a copy of `input` (options().input_size floats) as request `id`. The caller picks
  /// the id and should register its own future for it first: a runner may take the request
  /// before submit() returns. A deadline already passed is accepted and reported in the next
  /// batch's `expired`. Throws std::invalid_argument ("id: ...") when `id` is still queued, in
  /// flight or not yet reported; QueueFull under backpressure; std::runtime_error("batcher is
  /// shut down") after shutdown().
  void submit(uint64_t id, const float* input, Priority priority = Priority::kRoutine,
              std::optional<Clock::time_point> deadline = std::nullopt);

  /// Removes request `id` if no runner has taken it yet: true, and the next batch reports it
  /// in `cancelled`. False when it is running, has ended or is unknown.
  bool cancel(uint64_t id);

  /// Waits up to `wait` for a batch (see the file comment) and takes it. Returns at once with
  /// a batch of no requests when ended ids are waiting to be reported (ended ids also ride
  /// along with any batch of requests). Wakes at the earliest queued deadline, so expiry is
  /// reported without new arrivals. nullopt on timeout, or at once when shut down with
  /// nothing left to drain or report.
  std::optional<Batch> next_batch(std::chrono::microseconds wait);

  /// The batch ran: its requests count as completed and their submit -> complete latencies
  /// enter the metrics. Stores nothing. Throws std::invalid_argument when `batch_id` is not in
  /// flight (already completed or failed, never formed, or 0).
  void complete(uint64_t batch_id);

  /// The batch failed: its requests count as failed. `message` is for the caller's own
  /// futures; the batcher keeps only the count. Throws std::invalid_argument when `batch_id`
  /// is not in flight.
  void fail(uint64_t batch_id, const std::string& message);

  /// Stops accepting requests. drain = true: runners still get every queued request.
  /// drain = false: queued requests are removed and reported in the next batch's `dropped`.
  /// Either way, batches in flight can still be completed. Returns at once; callable again
  /// (shutdown(false) after shutdown(true) drops what is left).
  void shutdown(bool drain = true);

  /// True once shutdown() was called.
  bool is_shut_down() const;

  /// A consistent snapshot of the counters.
  BatcherMetrics metrics() const;

 private:
  std::unique_ptr<detail::BatcherCore> core_;
};

}  // namespace radz
