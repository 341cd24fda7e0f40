#include "radz/batcher.h"

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <list>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "radz/errors.h"
#include "latency_window.h"
#include "request_state.h"

namespace radz {
namespace detail {

namespace {

using Clock = std::chrono::steady_clock;
using RequestPtr = std::shared_ptr<Request>;

/// now + wait without overflowing for "wait forever" values such as microseconds::max().
Clock::time_point after(Clock::time_point now, std::chrono::microseconds wait) {
  if (wait.count() <= 0) return now;
  const auto room = std::chrono::duration_cast<std::chrono::microseconds>(Clock::time_point::max() - now);
  return wait >= room ? Clock::time_point::max() : now + wait;
}

double milliseconds(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

std::string format_ms(double ms) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", ms);
  return text;
}

void validate(const BatcherOptions& options) {
  if (options.input_size == 0) throw_invalid("input_size", "must be > 0");
  if (options.output_size == 0) throw_invalid("output_size", "must be > 0");
  if (options.max_batch_size == 0) throw_invalid("max_batch_size", "must be > 0");
  if (options.max_queue == 0) throw_invalid("max_queue", "must be > 0");
  if (options.max_delay.count() < 0) throw_invalid("max_delay", "must be >= 0");
  // A bound so that time arithmetic (oldest request + max_delay) cannot overflow.
  if (options.max_delay > std::chrono::hours(24)) throw_invalid("max_delay", "must be <= 24 hours");
  if (options.block_timeout.count() < 0) throw_invalid("block_timeout", "must be >= 0");
}

}  // namespace

/// Everything behind DynamicBatcher, in a shared_ptr so Tickets can reach it (weakly) to cancel.
/// One mutex guards the queues, the in-flight batches and the counters; results are written
/// into requests outside it where the copy is large (complete()).
class BatcherCore : public RequestQueue, public std::enable_shared_from_this<BatcherCore> {
 public:
  explicit BatcherCore(const BatcherOptions& options)
      : options_(options), histogram_(options.max_batch_size + 1, 0) {}

  const BatcherOptions& options() const { return options_; }

  Ticket submit(const float* input, Priority priority, std::optional<Clock::time_point> deadline) {
    if (input == nullptr) throw_invalid("input", "must not be null");
    auto request = std::make_shared<Request>();
    request->priority = priority;
    request->input.assign(input, input + options_.input_size);  // copy outside the lock
    request->deadline = deadline;
    request->owner = weak_from_this();

    std::unique_lock<std::mutex> lock(mutex_);
    throw_if_shut_down();
    const Clock::time_point now = Clock::now();
    request->submitted_at = now;
    if (deadline && *deadline <= now) {
      // Never queued: it could not run in time anyway, and must not take a slot.
      request->id = next_request_id_++;
      request->phase = RequestPhase::kFinished;
      ++submitted_;
      ++expired_;
      request->finish(deadline_error(*request, now), now);
      return Ticket(request);
    }
    wait_for_room(lock);
    note_arrival(Clock::now());  // only requests that are queued tell the arrival rate
    request->id = next_request_id_++;
    auto& queue = queue_of(priority);
    request->position = queue.insert(queue.end(), request);
    if (deadline) ++queued_with_deadline_;
    ++submitted_;
    const size_t depth = queue_depth();
    // Runners only need waking when this changes what they wait for: the first request
    // (starts the max_delay clock) or a full batch.
    if (depth == 1 || depth == options_.max_batch_size) work_ready_.notify_all();
    return Ticket(request);
  }

  std::optional<Batch> next_batch(std::chrono::microseconds wait) {
    const Clock::time_point give_up_at = after(Clock::now(), wait);
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      const Clock::time_point now = Clock::now();
      expire_overdue(now);
      const size_t depth = queue_depth();
      if (depth > 0) {
        const Clock::time_point due = oldest_submitted() + options_.max_delay;
        if (depth >= options_.max_batch_size || now >= due || shut_down_) return take_batch(lock);
        if (options_.adaptive_delay && now >= early_due(due)) {
          ++early_dispatches_;
          return take_batch(lock);
        }
      } else if (shut_down_) {
        return std::nullopt;
      }
      if (now >= give_up_at) return std::nullopt;
      Clock::time_point wake = give_up_at;
      if (depth > 0) {
        const Clock::time_point due = oldest_submitted() + options_.max_delay;
        wake = std::min(wake, options_.adaptive_delay ? early_due(due) : due);
      }
      if (queued_with_deadline_ > 0) wake = std::min(wake, earliest_deadline());
      work_ready_.wait_until(lock, wake);
    }
  }

  void complete(uint64_t batch_id, const float* outputs) {
    if (outputs == nullptr) throw_invalid("outputs", "must not be null");
    std::vector<RequestPtr> requests;
    Clock::time_point now;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      requests = take_in_flight(batch_id);
      now = Clock::now();
      completed_ += requests.size();
      for (const auto& request : requests) {
        latencies_.add(std::chrono::duration_cast<std::chrono::microseconds>(now - request->submitted_at));
      }
    }
    // Copy the outputs outside the lock: other runners and producers need not wait for it.
    for (size_t i = 0; i < requests.size(); ++i) {
      requests[i]->finish(outputs + i * options_.output_size, options_.output_size, now);
    }
  }

  void fail(uint64_t batch_id, const std::string& message) {
    std::vector<RequestPtr> requests;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      requests = take_in_flight(batch_id);
      failed_ += requests.size();
    }
    const auto error = std::make_exception_ptr(std::runtime_error(message));
    const Clock::time_point now = Clock::now();
    for (const auto& request : requests) request->finish(error, now);
  }

  void shutdown(bool drain) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      shut_down_ = true;
      if (!drain) fail_queued("engine shut down before the request ran");
    }
    work_ready_.notify_all();
    room_ready_.notify_all();
  }

  /// The batcher is being destroyed: nothing can complete the batches in flight any more.
  void abandon() {
    std::unordered_map<uint64_t, std::vector<RequestPtr>> in_flight;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      shut_down_ = true;
      fail_queued("batcher destroyed before the request ran");
      in_flight.swap(in_flight_);
      for (const auto& entry : in_flight) failed_ += entry.second.size();
      in_flight_requests_ = 0;
    }
    work_ready_.notify_all();
    room_ready_.notify_all();
    const auto error = std::make_exception_ptr(std::runtime_error("batcher destroyed while the request was running"));
    const Clock::time_point now = Clock::now();
    for (const auto& entry : in_flight) {
      for (const auto& request : entry.second) request->finish(error, now);
    }
  }

  bool is_shut_down() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return shut_down_;
  }

  bool cancel(Request& request) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (request.phase != RequestPhase::kQueued) return false;
      remove_queued(request);
      ++cancelled_;
      request.finish(std::make_exception_ptr(RequestCancelled("request " + std::to_string(request.id) +
                                                              " was cancelled before it ran")),
                     Clock::now());
    }
    room_ready_.notify_one();
    return true;
  }

  BatcherMetrics metrics() const {
    std::lock_guard<std::mutex> lock(mutex_);
    BatcherMetrics m;
    m.queued_stat = queues_[0].size();
    m.queued_routine = queues_[1].size();
    m.in_flight_batches = in_flight_.size();
    m.in_flight_requests = in_flight_requests_;
    m.submitted = submitted_;
    m.completed = completed_;
    m.failed = failed_;
    m.expired = expired_;
    m.cancelled = cancelled_;
    m.rejected = rejected_;
    m.batches = batches_;
    m.early_dispatches = early_dispatches_;
    m.batch_size_histogram = histogram_;
    const auto p = latencies_.percentiles({0.5, 0.9, 0.99});
    m.latency_p50 = p[0];
    m.latency_p90 = p[1];
    m.latency_p99 = p[2];
    m.latency_samples = latencies_.size();
    return m;
  }

 private:
  using Queue = std::list<RequestPtr>;

  Queue& queue_of(Priority priority) { return queues_[priority == Priority::kStat ? 0 : 1]; }
  size_t queue_depth() const { return queues_[0].size() + queues_[1].size(); }

  void throw_if_shut_down() const {
    if (shut_down_) throw std::runtime_error("batcher is shut down");
  }

  /// Backpressure: returns with the lock held and room for one request, or throws.
  void wait_for_room(std::unique_lock<std::mutex>& lock) {
    if (queue_depth() < options_.max_queue) return;
    if (options_.backpressure == Backpressure::kBlock) {
      const Clock::time_point give_up_at = Clock::now() + options_.block_timeout;
      room_ready_.wait_until(lock, give_up_at, [&] { return shut_down_ || queue_depth() < options_.max_queue; });
      throw_if_shut_down();
      if (queue_depth() < options_.max_queue) return;
      ++rejected_;
      throw QueueFull("queue full: " + std::to_string(queue_depth()) + " requests still waiting after blocking " +
                      std::to_string(options_.block_timeout.count()) + " ms (max_queue " +
                      std::to_string(options_.max_queue) + "); add runners or raise max_queue");
    }
    ++rejected_;
    throw QueueFull("queue full: " + std::to_string(queue_depth()) + " requests waiting (max_queue " +
                    std::to_string(options_.max_queue) + "); retry later or raise max_queue");
  }

  /// Arrival-rate estimate for adaptive_delay: an exponential moving average of the gaps
  /// between queued requests (weight 1/8 for the newest gap). Each gap counts at most
  /// 2 x max_delay: any longer gap says the same ("nothing comes in time"), and an idle hour
  /// must not keep the estimate high (no batching) for the many arrivals after it.
  void note_arrival(Clock::time_point now) {
    if (arrivals_ > 0) {
      const double cap = 2.0 * static_cast<double>(options_.max_delay.count());
      const double gap = std::min(cap, std::chrono::duration<double, std::micro>(now - last_arrival_).count());
      mean_gap_us_ = arrivals_ == 1 ? gap : mean_gap_us_ + (gap - mean_gap_us_) / 8.0;
    }
    last_arrival_ = now;
    ++arrivals_;
  }

  /// When a partial batch due at `due` stops being worth waiting for: at once when the next
  /// arrival is expected (one mean gap after the last) only after `due`; otherwise once the
  /// queue has been quiet for as long as remains until `due` (the burst seems to be over).
  Clock::time_point early_due(Clock::time_point due) const {
    if (arrivals_ < 2) return Clock::time_point::min();  // no rate known yet: do not wait
    const auto gap = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::micro>(mean_gap_us_));
    if (last_arrival_ + gap > due) return Clock::time_point::min();
    return last_arrival_ + (due - last_arrival_) / 2;
  }

  Clock::time_point oldest_submitted() const {
    // Each queue is FIFO, so its front is its oldest request.
    Clock::time_point oldest = Clock::time_point::max();
    for (const auto& queue : queues_) {
      if (!queue.empty()) oldest = std::min(oldest, queue.front()->submitted_at);
    }
    return oldest;
  }

  Clock::time_point earliest_deadline() const {
    Clock::time_point earliest = Clock::time_point::max();
    for (const auto& queue : queues_) {
      for (const auto& request : queue) {
        if (request->deadline) earliest = std::min(earliest, *request->deadline);
      }
    }
    return earliest;
  }

  static std::exception_ptr deadline_error(const Request& request, Clock::time_point now) {
    return std::make_exception_ptr(DeadlineExceeded(
        "deadline exceeded: request " + std::to_string(request.id) + " was still queued " +
        format_ms(milliseconds(now - *request.deadline)) + " ms past its deadline (it waited " +
        format_ms(milliseconds(now - request.submitted_at)) + " ms) and was not run"));
  }

  void remove_queued(Request& request) {
    queue_of(request.priority).erase(request.position);
    if (request.deadline) --queued_with_deadline_;
    request.phase = RequestPhase::kFinished;
  }

  /// Fails (under the lock: a rare path) every queued request whose deadline has passed.
  void expire_overdue(Clock::time_point now) {
    if (queued_with_deadline_ == 0) return;
    size_t removed = 0;
    for (auto& queue : queues_) {
      for (auto it = queue.begin(); it != queue.end();) {
        const RequestPtr request = *it++;  // advance first: removal invalidates the iterator
        if (request->deadline && *request->deadline <= now) {
          remove_queued(*request);
          ++expired_;
          ++removed;
          request->finish(deadline_error(*request, now), now);
        }
      }
    }
    if (removed > 0) room_ready_.notify_all();
  }

  void fail_queued(const std::string& message) {
    const auto error = std::make_exception_ptr(std::runtime_error(message));
    const Clock::time_point now = Clock::now();
    for (auto& queue : queues_) {
      while (!queue.empty()) {
        const RequestPtr request = queue.front();
        remove_queued(*request);
        ++failed_;
        request->finish(error, now);
      }
    }
  }

  /// Takes up to max_batch_size requests (stat first), then copies their inputs with the lock
  /// released: the requests are kRunning, so nothing else touches them.
  Batch take_batch(std::unique_lock<std::mutex>& lock) {
    std::vector<RequestPtr> requests;
    requests.reserve(std::min(options_.max_batch_size, queue_depth()));
    for (auto& queue : queues_) {
      while (!queue.empty() && requests.size() < options_.max_batch_size) {
        RequestPtr request = std::move(queue.front());
        queue.pop_front();
        if (request->deadline) --queued_with_deadline_;
        request->phase = RequestPhase::kRunning;
        requests.push_back(std::move(request));
      }
    }
    Batch batch;
    batch.id = next_batch_id_++;
    ++batches_;
    ++histogram_[requests.size()];
    in_flight_requests_ += requests.size();
    in_flight_[batch.id] = requests;
    const bool more_waiting = queue_depth() > 0;
    lock.unlock();

    room_ready_.notify_all();
    if (more_waiting) work_ready_.notify_one();  // another runner may take the rest
    const size_t n = options_.input_size;
    batch.inputs.resize(requests.size() * n);
    batch.request_ids.reserve(requests.size());
    for (size_t i = 0; i < requests.size(); ++i) {
      std::memcpy(batch.inputs.data() + i * n, requests[i]->input.data(), n * sizeof(float));
      batch.request_ids.push_back(requests[i]->id);
    }
    return batch;
  }

  std::vector<RequestPtr> take_in_flight(uint64_t batch_id) {
    const auto found = in_flight_.find(batch_id);
    if (found == in_flight_.end()) {
      throw_invalid("batch_id", "no batch " + std::to_string(batch_id) +
                                    " is in flight (already completed or failed, or never formed)");
    }
    std::vector<RequestPtr> requests = std::move(found->second);
    in_flight_.erase(found);
    in_flight_requests_ -= requests.size();
    for (const auto& request : requests) request->phase = RequestPhase::kFinished;
    return requests;
  }

  const BatcherOptions options_;

  mutable std::mutex mutex_;
  std::condition_variable work_ready_;  // runners: a batch may be ready, or shutdown
  std::condition_variable room_ready_;  // blocked producers: the queue shrank, or shutdown
  std::array<Queue, 2> queues_;         // [0] stat, [1] routine
  size_t queued_with_deadline_ = 0;     // lets next_batch skip the expiry scan
  std::unordered_map<uint64_t, std::vector<RequestPtr>> in_flight_;
  size_t in_flight_requests_ = 0;
  bool shut_down_ = false;
  uint64_t next_request_id_ = 1;
  uint64_t next_batch_id_ = 1;

  uint64_t submitted_ = 0, completed_ = 0, failed_ = 0, expired_ = 0, cancelled_ = 0, rejected_ = 0, batches_ = 0;
  uint64_t early_dispatches_ = 0;
  uint64_t arrivals_ = 0;           // adaptive_delay's rate estimate (note_arrival)
  Clock::time_point last_arrival_;
  double mean_gap_us_ = 0.0;
  std::vector<uint64_t> histogram_;
  LatencyWindow latencies_;
};

}  // namespace detail

DynamicBatcher::DynamicBatcher(const BatcherOptions& options) {
  detail::validate(options);
  core_ = std::make_shared<detail::BatcherCore>(options);
}

DynamicBatcher::~DynamicBatcher() { core_->abandon(); }

const BatcherOptions& DynamicBatcher::options() const { return core_->options(); }

Ticket DynamicBatcher::submit(const float* input, Priority priority, std::optional<Clock::time_point> deadline) {
  return core_->submit(input, priority, deadline);
}

std::optional<Batch> DynamicBatcher::next_batch(std::chrono::microseconds wait) { return core_->next_batch(wait); }

void DynamicBatcher::complete(uint64_t batch_id, const float* outputs) { core_->complete(batch_id, outputs); }

void DynamicBatcher::fail(uint64_t batch_id, const std::string& message) { core_->fail(batch_id, message); }

void DynamicBatcher::shutdown(bool drain) { core_->shutdown(drain); }

bool DynamicBatcher::is_shut_down() const { return core_->is_shut_down(); }

BatcherMetrics DynamicBatcher::metrics() const { return core_->metrics(); }

}  // namespace radz
