#include "radz/batcher.h"

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstring>
#include <list>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "latency_window.h"
#include "radz/errors.h"
#include "request_state.h"

namespace radz {
namespace detail {

namespace {

/// now + wait without overflowing for "wait forever" values such as microseconds::max().
Clock::time_point after(Clock::time_point now, std::chrono::microseconds wait) {
  if (wait.count() <= 0) return now;
  const auto room = std::chrono::duration_cast<std::chrono::microseconds>(Clock::time_point::max() - now);
  return wait >= room ? Clock::time_point::max() : now + wait;
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

/// Ids that ended without running and wait for next_batch() to report them.
struct EndedIds {
  std::vector<uint64_t> expired, cancelled, dropped;

  bool empty() const { return expired.empty() && cancelled.empty() && dropped.empty(); }
};

}  // namespace

/// Everything behind DynamicBatcher. One mutex guards the queues, the indexes, the in-flight
/// batches and the counters; inputs are copied and freed outside it.
class BatcherCore {
 public:
  explicit BatcherCore(const BatcherOptions& options) : options_(options), histogram_(options.max_batch_size + 1, 0) {}

  const BatcherOptions& options() const { return options_; }

  void submit(uint64_t id, const float* input, Priority priority, std::optional<Clock::time_point> deadline) {
    if (input == nullptr) throw_invalid("input", "must not be null");
    Queue node;  // built (and the input copied) outside the lock, spliced into a queue under it
    Request& request = node.emplace_back();
    request.id = id;
    request.priority = priority;
    request.input.assign(input, input + options_.input_size);

    std::unique_lock<std::mutex> lock(mutex_);
    throw_if_shut_down();
    check_new_id(id);
    const Clock::time_point now = Clock::now();
    request.submitted_at = now;
    if (deadline && *deadline <= now) {
      // Never queued: it could not run in time anyway, and must not take a slot.
      live_.insert(id);
      ++submitted_;
      ++expired_;
      ended_.expired.push_back(id);
      lock.unlock();
      work_ready_.notify_one();  // a waiting runner reports it
      return;
    }
    wait_for_room(lock);
    check_new_id(id);            // the lock may have been released while waiting for room
    note_arrival(Clock::now());  // only requests that are queued tell the arrival rate
    bool earliest_deadline = false;
    if (deadline) {
      request.deadline = deadlines_.emplace(*deadline, id);
      earliest_deadline = *request.deadline == deadlines_.begin();
    }
    Queue& queue = queue_of(priority);
    queued_.emplace(id, node.begin());
    queue.splice(queue.end(), node);
    live_.insert(id);
    ++submitted_;
    const size_t depth = queue_depth();
    lock.unlock();
    // Runners only need waking when this changes what they wait for: the first request
    // (starts the max_delay clock), a full batch, or a new earliest deadline.
    if (depth == 1 || depth == options_.max_batch_size) {
      work_ready_.notify_all();
    } else if (earliest_deadline) {
      work_ready_.notify_one();
    }
  }

  bool cancel(uint64_t id) {
    Queue removed;  // freed outside the lock
    {
      std::lock_guard<std::mutex> lock(mutex_);
      const auto found = queued_.find(id);
      if (found == queued_.end()) return false;
      remove_queued(found->second, removed);
      ended_.cancelled.push_back(id);
      ++cancelled_;
    }
    room_ready_.notify_one();
    work_ready_.notify_one();  // a waiting runner reports it
    return true;
  }

  std::optional<Batch> next_batch(std::chrono::microseconds wait) {
    const Clock::time_point give_up_at = after(Clock::now(), wait);
    Queue expired;  // freed outside the lock
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      const Clock::time_point now = Clock::now();
      expire_overdue(now, expired);
      const size_t depth = queue_depth();
      if (depth > 0) {
        const Clock::time_point due = oldest_submitted() + options_.max_delay;
        if (depth >= options_.max_batch_size || now >= due || shut_down_) return take_batch(lock);
        if (options_.adaptive_delay && now >= early_due(due)) {
          ++early_dispatches_;
          return take_batch(lock);
        }
      }
      if (!ended_.empty()) {
        Batch batch;  // id 0: nothing to run, only ended ids to report
        report_ended(batch);
        return batch;
      }
      if (depth == 0 && shut_down_) return std::nullopt;
      if (now >= give_up_at) return std::nullopt;
      Clock::time_point wake = give_up_at;
      if (depth > 0) {
        const Clock::time_point due = oldest_submitted() + options_.max_delay;
        wake = std::min(wake, options_.adaptive_delay ? early_due(due) : due);
      }
      if (!deadlines_.empty()) wake = std::min(wake, deadlines_.begin()->first);
      work_ready_.wait_until(lock, wake);
    }
  }

  void complete(uint64_t batch_id) {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::vector<RunningRequest> requests = take_in_flight(batch_id);
    const Clock::time_point now = Clock::now();
    completed_ += requests.size();
    for (const auto& request : requests) {
      latencies_.add(std::chrono::duration_cast<std::chrono::microseconds>(now - request.submitted_at));
    }
  }

  void fail(uint64_t batch_id) {
    std::lock_guard<std::mutex> lock(mutex_);
    failed_ += take_in_flight(batch_id).size();
  }

  void shutdown(bool drain) {
    Queue dropped;  // freed outside the lock
    {
      std::lock_guard<std::mutex> lock(mutex_);
      shut_down_ = true;
      if (!drain) {
        for (auto& queue : queues_) {
          for (const Request& request : queue) ended_.dropped.push_back(request.id);
          dropped_ += queue.size();
          dropped.splice(dropped.end(), queue);
        }
        queued_.clear();
        deadlines_.clear();
      }
    }
    work_ready_.notify_all();
    room_ready_.notify_all();
  }

  bool is_shut_down() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return shut_down_;
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
    m.dropped = dropped_;
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
  using Queue = std::list<Request>;

  Queue& queue_of(Priority priority) { return queues_[priority == Priority::kStat ? 0 : 1]; }
  size_t queue_depth() const { return queues_[0].size() + queues_[1].size(); }

  void throw_if_shut_down() const {
    if (shut_down_) throw std::runtime_error("batcher is shut down");
  }

  void check_new_id(uint64_t id) const {
    if (live_.count(id) != 0) {
      throw_invalid("id", "request " + std::to_string(id) + " is already queued, in flight or not yet reported");
    }
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
    const auto gap =
        std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::micro>(mean_gap_us_));
    if (last_arrival_ + gap > due) return Clock::time_point::min();
    return last_arrival_ + (due - last_arrival_) / 2;
  }

  Clock::time_point oldest_submitted() const {
    // Each queue is FIFO, so its front is its oldest request.
    Clock::time_point oldest = Clock::time_point::max();
    for (const auto& queue : queues_) {
      if (!queue.empty()) oldest = std::min(oldest, queue.front().submitted_at);
    }
    return oldest;
  }

  /// Drops the request's index entries (it stays in its queue list).
  void forget_queued(const Request& request) {
    if (request.deadline) deadlines_.erase(*request.deadline);
    queued_.erase(request.id);
  }

  /// Takes a queued request out of its queue into `removed` (freed later, outside the lock).
  void remove_queued(Queue::iterator position, Queue& removed) {
    forget_queued(*position);
    removed.splice(removed.end(), queue_of(position->priority), position);
  }

  /// Moves every queued request whose deadline has passed to the ended ids.
  void expire_overdue(Clock::time_point now, Queue& removed) {
    size_t count = 0;
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      const uint64_t id = deadlines_.begin()->second;
      remove_queued(queued_.at(id), removed);
      ended_.expired.push_back(id);
      ++expired_;
      ++count;
    }
    if (count > 0) room_ready_.notify_all();
  }

  /// Hands the ended ids to `batch`; they are then reported and may be reused.
  void report_ended(Batch& batch) {
    for (const auto* ids : {&ended_.expired, &ended_.cancelled, &ended_.dropped}) {
      for (const uint64_t id : *ids) live_.erase(id);
    }
    batch.expired = std::move(ended_.expired);
    batch.cancelled = std::move(ended_.cancelled);
    batch.dropped = std::move(ended_.dropped);
    ended_ = EndedIds{};
  }

  /// Takes up to max_batch_size requests (stat first) and the ended ids, then copies the
  /// inputs with the lock released: the taken requests are in no queue, so nothing else sees them.
  Batch take_batch(std::unique_lock<std::mutex>& lock) {
    Queue taken;
    std::vector<RunningRequest> running;
    for (auto& queue : queues_) {
      while (!queue.empty() && taken.size() < options_.max_batch_size) {
        forget_queued(queue.front());
        running.push_back({queue.front().id, queue.front().submitted_at});
        taken.splice(taken.end(), queue, queue.begin());
      }
    }
    Batch batch;
    batch.id = next_batch_id_++;
    batch.request_ids.reserve(running.size());
    for (const auto& request : running) batch.request_ids.push_back(request.id);
    ++batches_;
    ++histogram_[running.size()];
    in_flight_requests_ += running.size();
    in_flight_.emplace(batch.id, std::move(running));
    report_ended(batch);
    const bool more_waiting = queue_depth() > 0;
    lock.unlock();

    room_ready_.notify_all();
    if (more_waiting) work_ready_.notify_one();  // another runner may take the rest
    const size_t n = options_.input_size;
    batch.inputs.resize(taken.size() * n);
    float* row = batch.inputs.data();
    for (const Request& request : taken) {
      std::memcpy(row, request.input.data(), n * sizeof(float));
      row += n;
    }
    return batch;
  }

  std::vector<RunningRequest> take_in_flight(uint64_t batch_id) {
    const auto found = in_flight_.find(batch_id);
    if (found == in_flight_.end()) {
      throw_invalid("batch_id", "no batch " + std::to_string(batch_id) +
                                    " is in flight (already completed or failed, never formed, or a batch "
                                    "with nothing to run)");
    }
    std::vector<RunningRequest> requests = std::move(found->second);
    in_flight_.erase(found);
    in_flight_requests_ -= requests.size();
    for (const auto& request : requests) live_.erase(request.id);
    return requests;
  }

  const BatcherOptions options_;

  mutable std::mutex mutex_;
  std::condition_variable work_ready_;  // runners: a batch or an ended id may be ready, or shutdown
  std::condition_variable room_ready_;  // blocked producers: the queue shrank, or shutdown
  std::array<Queue, 2> queues_;         // [0] stat, [1] routine
  /// Each queued request's place in its queue, by id.
  std::unordered_map<uint64_t, Queue::iterator> queued_;
  /// The queued requests that have a deadline.
  DeadlineIndex deadlines_;
  /// Accepted ids not yet finished or reported as ended: submit() refuses them.
  std::unordered_set<uint64_t> live_;
  EndedIds ended_;
  /// The requests of each batch in flight, by batch id.
  std::unordered_map<uint64_t, std::vector<RunningRequest>> in_flight_;
  size_t in_flight_requests_ = 0;
  bool shut_down_ = false;
  uint64_t next_batch_id_ = 1;  // 0 marks a batch with nothing to run

  uint64_t submitted_ = 0, completed_ = 0, failed_ = 0, expired_ = 0, cancelled_ = 0, dropped_ = 0, rejected_ = 0;
  uint64_t batches_ = 0, early_dispatches_ = 0;
  uint64_t arrivals_ = 0;  // adaptive_delay's rate estimate (note_arrival)
  Clock::time_point last_arrival_;
  double mean_gap_us_ = 0.0;
  std::vector<uint64_t> histogram_;
  LatencyWindow latencies_;
};

}  // namespace detail

DynamicBatcher::DynamicBatcher(const BatcherOptions& options) {
  detail::validate(options);
  core_ = std::make_unique<detail::BatcherCore>(options);
}

DynamicBatcher::~DynamicBatcher() = default;

const BatcherOptions& DynamicBatcher::options() const { return core_->options(); }

void DynamicBatcher::submit(uint64_t id, const float* input, Priority priority,
                            std::optional<Clock::time_point> deadline) {
  core_->submit(id, input, priority, deadline);
}

bool DynamicBatcher::cancel(uint64_t id) { return core_->cancel(id); }

std::optional<Batch> DynamicBatcher::next_batch(std::chrono::microseconds wait) { return core_->next_batch(wait); }

void DynamicBatcher::complete(uint64_t batch_id) { core_->complete(batch_id); }

void DynamicBatcher::fail(uint64_t batch_id, const std::string& /*message*/) { core_->fail(batch_id); }

void DynamicBatcher::shutdown(bool drain) { core_->shutdown(drain); }

bool DynamicBatcher::is_shut_down() const { return core_->is_shut_down(); }

BatcherMetrics DynamicBatcher::metrics() const { return core_->metrics(); }

}  // namespace radz
