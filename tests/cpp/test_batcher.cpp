#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "latency_window.h"
#include "radz/batcher.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr size_t kInputSize = 3;
constexpr size_t kOutputSize = 2;

radz::BatcherOptions small_options(size_t max_batch_size = 4, std::chrono::microseconds max_delay = 1000us) {
  radz::BatcherOptions options;
  options.input_size = kInputSize;
  options.output_size = kOutputSize;
  options.max_batch_size = max_batch_size;
  options.max_delay = max_delay;
  options.adaptive_delay = false;  // the classic rule; AdaptiveDelay* tests turn it on
  return options;
}

std::vector<float> input_of(float value) { return std::vector<float>(kInputSize, value); }

/// Submits request `id` whose input is all `id`, so a row given to the wrong id shows.
void submit(radz::DynamicBatcher& batcher, uint64_t id, radz::Priority priority = radz::Priority::kRoutine,
            std::optional<Clock::time_point> deadline = std::nullopt) {
  batcher.submit(id, input_of(float(id)).data(), priority, deadline);
}

float first_input(const radz::Batch& batch, size_t row) { return batch.inputs[row * kInputSize]; }

/// True when every row of the batch holds the input submitted under its id.
bool rows_match_ids(const radz::Batch& batch) {
  if (batch.inputs.size() != batch.size() * kInputSize) return false;
  for (size_t row = 0; row < batch.size(); ++row) {
    for (size_t k = 0; k < kInputSize; ++k) {
      if (batch.inputs[row * kInputSize + k] != float(batch.request_ids[row])) return false;
    }
  }
  return true;
}

std::string what_of_invalid_submit(radz::DynamicBatcher& batcher, uint64_t id) {
  try {
    submit(batcher, id);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no std::invalid_argument";
}

/// The caller's side of "one future per request": a slot per id, registered before submit()
/// and resolved exactly once, when next_batch() reports the id.
class Ledger {
 public:
  enum State : int { kUnused, kRegistered, kRan, kExpired, kCancelled, kDropped };

  explicit Ledger(size_t ids) : state_(ids) {}

  void registered(uint64_t id) { state_[id] = kRegistered; }
  void unregistered(uint64_t id) { state_[id] = kUnused; }  // submit() threw: never accepted

  /// Every id of `batch`: a second report of an id, or one never registered, is an error.
  void report(const radz::Batch& batch) {
    if (!rows_match_ids(batch)) ++errors_;
    for (const uint64_t id : batch.request_ids) resolve(id, kRan);
    for (const uint64_t id : batch.expired) resolve(id, kExpired);
    for (const uint64_t id : batch.cancelled) resolve(id, kCancelled);
    for (const uint64_t id : batch.dropped) resolve(id, kDropped);
  }

  size_t count(State state) const {
    return static_cast<size_t>(std::count_if(state_.begin(), state_.end(), [&](const auto& s) { return s == state; }));
  }
  size_t errors() const { return errors_; }

 private:
  void resolve(uint64_t id, State outcome) {
    int expected = kRegistered;
    if (id >= state_.size() || !state_[id].compare_exchange_strong(expected, outcome)) ++errors_;
  }

  std::vector<std::atomic<int>> state_;
  std::atomic<size_t> errors_{0};
};

/// A runner thread's loop: report every batch to the ledger, complete it (or fail every
/// `fail_every`-th), and stop once `stop` is set and nothing came for one wait.
void run_batches(radz::DynamicBatcher& batcher, Ledger& ledger, const std::atomic<bool>& stop, uint64_t fail_every,
                 std::atomic<size_t>& rows_run) {
  for (;;) {
    auto batch = batcher.next_batch(5ms);
    if (!batch) {
      if (stop) return;
      continue;
    }
    ledger.report(*batch);
    if (batch->size() == 0) continue;  // only ended ids: nothing to run, not in flight
    rows_run += batch->size();
    if (fail_every != 0 && batch->id % fail_every == 0) {
      batcher.fail(batch->id, "injected failure");
    } else {
      batcher.complete(batch->id);
    }
  }
}

void expect_invariant(const radz::BatcherMetrics& m) {
  EXPECT_EQ(m.submitted,
            m.completed + m.failed + m.expired + m.cancelled + m.dropped + m.queue_depth() + m.in_flight_requests);
}

TEST(DynamicBatcher, RejectsBadOptions) {
  auto options = small_options();
  options.input_size = 0;
  EXPECT_THROW(radz::DynamicBatcher{options}, std::invalid_argument);
  options = small_options(0);
  try {
    radz::DynamicBatcher batcher(options);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("max_batch_size"), std::string::npos);
  }
}

TEST(DynamicBatcher, StatBeforeRoutineAndFifoWithinPriority) {
  radz::DynamicBatcher batcher(small_options(8, 100ms));
  const radz::Priority order[] = {radz::Priority::kRoutine, radz::Priority::kStat, radz::Priority::kRoutine,
                                  radz::Priority::kStat, radz::Priority::kRoutine};
  for (uint64_t i = 0; i < 5; ++i) submit(batcher, 10 + i, order[i]);
  batcher.shutdown(true);  // drain: the batch forms now, without waiting for max_delay
  const auto batch = batcher.next_batch(0us);
  ASSERT_TRUE(batch.has_value());
  ASSERT_EQ(batch->size(), 5u);
  EXPECT_EQ(batch->request_ids, (std::vector<uint64_t>{11, 13, 10, 12, 14}));
  EXPECT_TRUE(rows_match_ids(*batch));
}

TEST(DynamicBatcher, StatRequestsFillABatchAheadOfOlderRoutineOnes) {
  radz::DynamicBatcher batcher(small_options(2, 100ms));
  submit(batcher, 1, radz::Priority::kRoutine);
  submit(batcher, 2, radz::Priority::kStat);
  submit(batcher, 3, radz::Priority::kStat);
  const auto first = batcher.next_batch(0us);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->request_ids, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(batcher.metrics().queued_routine, 1u);
}

TEST(DynamicBatcher, FullBatchFormsImmediately) {
  radz::DynamicBatcher batcher(small_options(4, 10s));  // a long delay that must not be waited for
  for (uint64_t i = 0; i < 4; ++i) submit(batcher, i);
  const auto start = Clock::now();
  const auto batch = batcher.next_batch(5s);
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->size(), 4u);
  EXPECT_NE(batch->id, 0u);
  EXPECT_LT(Clock::now() - start, 500ms);
}

TEST(DynamicBatcher, AdaptiveDelayRunsALoneRequestAtOnce) {
  auto options = small_options(8, 1s);
  options.adaptive_delay = true;
  radz::DynamicBatcher batcher(options);
  // Low load: one request at a time, 1.2 s apart (longer than max_delay), so no partner is
  // expected in time and each runs at once instead of waiting out max_delay (a stall of the
  // runner longer than max_delay would make one ordinarily due: 1 s leaves room on slow CI).
  for (uint64_t i = 0; i < 4; ++i) {
    submit(batcher, i);
    const auto batch = batcher.next_batch(10s);
    ASSERT_TRUE(batch);
    EXPECT_EQ(batch->request_ids, std::vector<uint64_t>{i});
    EXPECT_EQ(first_input(*batch, 0), float(i));
    batcher.complete(batch->id);
    std::this_thread::sleep_for(1200ms);
  }
  EXPECT_EQ(batcher.metrics().early_dispatches, 4u);
}

TEST(DynamicBatcher, AdaptiveDelayStillBatchesABurst) {
  auto options = small_options(8, 2s);
  options.adaptive_delay = true;
  radz::DynamicBatcher batcher(options);
  // Arrivals every ~1 ms (much shorter than max_delay): a runner waiting meanwhile must not
  // take them one by one.
  std::optional<radz::Batch> batch;
  std::thread runner([&] { batch = batcher.next_batch(10s); });
  for (uint64_t i = 0; i < 5; ++i) {
    submit(batcher, i);
    std::this_thread::sleep_for(1ms);
  }
  runner.join();
  ASSERT_TRUE(batch);
  // The first request of all has no rate to go on and may run alone; the rest stay together.
  size_t taken = batch->size();
  if (taken == 1) {
    const auto rest = batcher.next_batch(10s);
    ASSERT_TRUE(rest);
    taken = rest->size();
    EXPECT_EQ(taken, 4u);
  } else {
    EXPECT_EQ(taken, 5u);
  }
}

TEST(DynamicBatcher, AdaptiveDelayBatchesAgainRightAfterAnIdleSpell) {
  auto options = small_options(4, 100ms);
  options.adaptive_delay = true;
  radz::DynamicBatcher batcher(options);
  // A burst sets a short arrival gap; then an idle spell of 15 x max_delay. Without capping
  // each gap the estimate would say "nothing comes in time" and the next burst, arriving 5 ms
  // apart while a runner waits, would run one request at a time.
  for (uint64_t i = 0; i < 4; ++i) submit(batcher, i);
  auto first = batcher.next_batch(10s);
  ASSERT_TRUE(first);
  batcher.complete(first->id);
  std::this_thread::sleep_for(1500ms);
  std::optional<radz::Batch> second;
  std::thread runner([&] { second = batcher.next_batch(10s); });
  for (uint64_t i = 4; i < 8; ++i) {
    submit(batcher, i);
    std::this_thread::sleep_for(5ms);
  }
  runner.join();
  ASSERT_TRUE(second);
  EXPECT_GT(second->size(), 1u);
}

TEST(DynamicBatcher, RejectsAMaxDelaySoLongThatTimesWouldOverflow) {
  EXPECT_THROW(radz::DynamicBatcher{small_options(4, std::chrono::hours(25))}, std::invalid_argument);
}

TEST(DynamicBatcher, WithoutAdaptiveDelayALoneRequestWaitsMaxDelay) {
  radz::DynamicBatcher batcher(small_options(8, 300ms));
  for (uint64_t i = 0; i < 2; ++i) {
    submit(batcher, i);
    const auto start = Clock::now();
    const auto batch = batcher.next_batch(10s);
    ASSERT_TRUE(batch);
    EXPECT_GE(Clock::now() - start, 250ms);
    EXPECT_EQ(batcher.metrics().early_dispatches, 0u);
  }
}

TEST(DynamicBatcher, FullBatchWakesAWaitingRunner) {
  radz::DynamicBatcher batcher(small_options(3, 10s));
  std::optional<radz::Batch> batch;
  std::thread runner([&] { batch = batcher.next_batch(5s); });
  std::this_thread::sleep_for(20ms);
  const auto start = Clock::now();
  for (uint64_t i = 0; i < 3; ++i) submit(batcher, i);
  runner.join();
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->size(), 3u);
  EXPECT_LT(Clock::now() - start, 1s);
}

TEST(DynamicBatcher, PartialBatchFormsAfterMaxDelay) {
  radz::DynamicBatcher batcher(small_options(8, 50ms));
  const auto start = Clock::now();
  submit(batcher, 1);
  submit(batcher, 2);
  const auto batch = batcher.next_batch(2s);
  const auto waited = Clock::now() - start;
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->size(), 2u);
  EXPECT_GE(waited, 50ms);
  EXPECT_LT(waited, 1s);
}

TEST(DynamicBatcher, NextBatchTimesOutWhenEmptyOrNotYetDue) {
  radz::DynamicBatcher batcher(small_options(8, 10s));
  const auto start = Clock::now();
  EXPECT_FALSE(batcher.next_batch(20ms));
  EXPECT_GE(Clock::now() - start, 20ms);
  submit(batcher, 1);
  EXPECT_FALSE(batcher.next_batch(20ms));  // one request, 10 s delay: not due yet
}

TEST(DynamicBatcher, CompleteCountsTheBatchAndRecordsLatency) {
  radz::DynamicBatcher batcher(small_options(3));
  for (uint64_t i = 10; i < 13; ++i) submit(batcher, i);
  const auto batch = batcher.next_batch(1s);
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->request_ids, (std::vector<uint64_t>{10, 11, 12}));
  EXPECT_TRUE(rows_match_ids(*batch));
  EXPECT_EQ(batcher.metrics().in_flight_requests, 3u);
  batcher.complete(batch->id);
  const auto m = batcher.metrics();
  EXPECT_EQ(m.completed, 3u);
  EXPECT_EQ(m.in_flight_requests, 0u);
  EXPECT_EQ(m.latency_samples, 3u);
  EXPECT_THROW(batcher.complete(batch->id), std::invalid_argument);  // twice
  EXPECT_THROW(batcher.fail(batch->id, "x"), std::invalid_argument);
  EXPECT_THROW(batcher.fail(12345, "x"), std::invalid_argument);
  EXPECT_THROW(batcher.complete(0), std::invalid_argument);  // 0: a batch with nothing to run
  EXPECT_EQ(batcher.metrics().completed, 3u);
}

TEST(DynamicBatcher, FailCountsEveryRequestOfTheBatch) {
  radz::DynamicBatcher batcher(small_options(2));
  submit(batcher, 1);
  submit(batcher, 2);
  const auto batch = batcher.next_batch(1s);
  ASSERT_TRUE(batch);
  batcher.fail(batch->id, "backend out of memory");
  EXPECT_THROW(batcher.complete(batch->id), std::invalid_argument);
  const auto m = batcher.metrics();
  EXPECT_EQ(m.failed, 2u);
  EXPECT_EQ(m.completed, 0u);
  EXPECT_EQ(m.latency_samples, 0u);
  expect_invariant(m);
}

TEST(DynamicBatcher, DuplicateIdIsRefusedUntilTheRequestIsReported) {
  radz::DynamicBatcher batcher(small_options(1, 10s));
  submit(batcher, 7);
  const std::string what = what_of_invalid_submit(batcher, 7);  // queued
  EXPECT_EQ(what.rfind("id: ", 0), 0u) << what;
  auto batch = batcher.next_batch(1s);
  ASSERT_TRUE(batch);
  EXPECT_NE(what_of_invalid_submit(batcher, 7).find("id: "), std::string::npos);  // in flight
  batcher.complete(batch->id);
  submit(batcher, 7);  // finished: the id may be used again
  EXPECT_TRUE(batcher.cancel(7));
  EXPECT_NE(what_of_invalid_submit(batcher, 7).find("id: "), std::string::npos);  // cancelled, not reported
  submit(batcher, 8, radz::Priority::kRoutine, Clock::now() - 1ms);
  EXPECT_NE(what_of_invalid_submit(batcher, 8).find("id: "), std::string::npos);  // expired, not reported
  batch = batcher.next_batch(0us);
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->cancelled, std::vector<uint64_t>{7});
  EXPECT_EQ(batch->expired, std::vector<uint64_t>{8});
  submit(batcher, 7);  // reported: free again
  submit(batcher, 8);
  const auto m = batcher.metrics();
  EXPECT_EQ(m.submitted, 5u);  // refused ids are not counted
  expect_invariant(m);
}

TEST(DynamicBatcher, ExpiredRequestsNeverRunAndAreReported) {
  radz::DynamicBatcher batcher(small_options(4, 100ms));
  submit(batcher, 1, radz::Priority::kRoutine, Clock::now() + 10ms);  // expires while queued
  submit(batcher, 2, radz::Priority::kRoutine, Clock::now() + 10s);
  submit(batcher, 3, radz::Priority::kStat, Clock::now() - 1ms);  // already past: never queued
  EXPECT_EQ(batcher.metrics().queue_depth(), 2u);
  std::vector<uint64_t> ran, expired;
  while (ran.empty()) {
    const auto batch = batcher.next_batch(2s);
    ASSERT_TRUE(batch);
    ran.insert(ran.end(), batch->request_ids.begin(), batch->request_ids.end());
    expired.insert(expired.end(), batch->expired.begin(), batch->expired.end());
    EXPECT_TRUE(batch->cancelled.empty() && batch->dropped.empty());
    if (batch->size() == 0) EXPECT_EQ(batch->id, 0u);
  }
  std::sort(expired.begin(), expired.end());
  EXPECT_EQ(ran, std::vector<uint64_t>{2});
  EXPECT_EQ(expired, (std::vector<uint64_t>{1, 3}));
  const auto m = batcher.metrics();
  EXPECT_EQ(m.expired, 2u);
  EXPECT_EQ(m.batches, 1u);  // batches with only ended ids are not counted
  expect_invariant(m);
}

TEST(DynamicBatcher, AnAlreadyPastDeadlineComesBackFromTheNextBatchAtOnce) {
  radz::DynamicBatcher batcher(small_options(4, 10s));
  submit(batcher, 5, radz::Priority::kRoutine, Clock::now() - 1ms);
  const auto start = Clock::now();
  const auto batch = batcher.next_batch(5s);
  ASSERT_TRUE(batch);
  EXPECT_LT(Clock::now() - start, 500ms);
  EXPECT_EQ(batch->id, 0u);
  EXPECT_EQ(batch->size(), 0u);
  EXPECT_TRUE(batch->inputs.empty());
  EXPECT_EQ(batch->expired, std::vector<uint64_t>{5});
  EXPECT_EQ(batcher.metrics().in_flight_batches, 0u);
  EXPECT_FALSE(batcher.next_batch(20ms));  // reported once only
}

TEST(DynamicBatcher, DeadlineIsReportedWithoutNewArrivals) {
  radz::DynamicBatcher batcher(small_options(4, 10s));
  // A runner already waits for the first (deadline-free) request's 10 s max_delay; a second
  // request's 20 ms deadline must wake it, with nothing else arriving.
  submit(batcher, 1);
  std::optional<radz::Batch> batch;
  Clock::time_point returned_at;
  std::thread runner([&] {
    batch = batcher.next_batch(5s);
    returned_at = Clock::now();
  });
  std::this_thread::sleep_for(20ms);
  const auto start = Clock::now();
  submit(batcher, 2, radz::Priority::kRoutine, start + 20ms);
  runner.join();
  ASSERT_TRUE(batch);
  EXPECT_GE(returned_at - start, 20ms);
  EXPECT_LT(returned_at - start, 1s);
  EXPECT_EQ(batch->size(), 0u);
  EXPECT_EQ(batch->expired, std::vector<uint64_t>{2});
  EXPECT_EQ(batcher.metrics().queue_depth(), 1u);  // request 1 still waits
}

TEST(DynamicBatcher, CancelRemovesAQueuedRequestOnly) {
  radz::DynamicBatcher batcher(small_options(2, 10s));
  submit(batcher, 1);
  submit(batcher, 2);
  EXPECT_TRUE(batcher.cancel(1));
  EXPECT_FALSE(batcher.cancel(1));   // already cancelled
  EXPECT_FALSE(batcher.cancel(99));  // unknown
  submit(batcher, 3);
  const auto batch = batcher.next_batch(1s);
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->request_ids, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(batch->cancelled, std::vector<uint64_t>{1});  // rides along with the batch
  EXPECT_TRUE(rows_match_ids(*batch));
  EXPECT_FALSE(batcher.cancel(2));  // running
  batcher.complete(batch->id);
  EXPECT_FALSE(batcher.cancel(2));  // finished
  EXPECT_EQ(batcher.metrics().cancelled, 1u);
  EXPECT_FALSE(batcher.next_batch(20ms));  // reported once only
}

TEST(DynamicBatcher, CancelWakesAWaitingRunnerToReportIt) {
  radz::DynamicBatcher batcher(small_options(4, 10s));
  submit(batcher, 1);
  std::optional<radz::Batch> batch;
  std::thread runner([&] { batch = batcher.next_batch(5s); });
  std::this_thread::sleep_for(20ms);
  const auto start = Clock::now();
  EXPECT_TRUE(batcher.cancel(1));
  runner.join();
  EXPECT_LT(Clock::now() - start, 1s);
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->size(), 0u);
  EXPECT_EQ(batch->cancelled, std::vector<uint64_t>{1});
}

// cancel() against a runner's next_batch(): each id ends exactly one way, and cancel's answer
// says which.
TEST(DynamicBatcher, CancelRacingNextBatch) {
  radz::DynamicBatcher batcher(small_options(1, 0us));
  constexpr uint64_t kRounds = 500;
  size_t cancelled = 0;
  for (uint64_t id = 0; id < kRounds; ++id) {
    submit(batcher, id);
    std::optional<radz::Batch> batch;
    std::thread runner([&] { batch = batcher.next_batch(1s); });
    const bool won = batcher.cancel(id);
    runner.join();
    ASSERT_TRUE(batch);
    if (won) {
      ++cancelled;
      EXPECT_EQ(batch->size(), 0u);
      EXPECT_EQ(batch->cancelled, std::vector<uint64_t>{id});
    } else {
      EXPECT_EQ(batch->request_ids, std::vector<uint64_t>{id});
      EXPECT_TRUE(batch->cancelled.empty());
      batcher.complete(batch->id);
    }
  }
  const auto m = batcher.metrics();
  EXPECT_EQ(m.cancelled, cancelled);
  EXPECT_EQ(m.completed, kRounds - cancelled);
  expect_invariant(m);
}

TEST(DynamicBatcher, ShutdownDrainLetsRunnersFinishTheQueue) {
  radz::DynamicBatcher batcher(small_options(2, 10s));
  for (uint64_t i = 0; i < 3; ++i) submit(batcher, i);
  batcher.shutdown(true);
  EXPECT_TRUE(batcher.is_shut_down());
  try {
    submit(batcher, 9);
    FAIL() << "submit after shutdown";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "batcher is shut down");
  }
  std::vector<uint64_t> ran;
  while (auto batch = batcher.next_batch(1s)) {  // no max_delay wait while draining
    EXPECT_TRUE(rows_match_ids(*batch));
    ran.insert(ran.end(), batch->request_ids.begin(), batch->request_ids.end());
    batcher.complete(batch->id);
  }
  EXPECT_EQ(ran, (std::vector<uint64_t>{0, 1, 2}));
  EXPECT_EQ(batcher.metrics().completed, 3u);
}

TEST(DynamicBatcher, ShutdownWithoutDrainDropsQueuedButLetsInFlightComplete) {
  radz::DynamicBatcher batcher(small_options(1, 10s));
  submit(batcher, 1);
  submit(batcher, 2);
  submit(batcher, 3, radz::Priority::kStat, Clock::now() + 10s);
  const auto batch = batcher.next_batch(1s);
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->request_ids, std::vector<uint64_t>{3});
  batcher.shutdown(false);
  const auto start = Clock::now();
  const auto report = batcher.next_batch(1s);  // at once: the dropped ids
  ASSERT_TRUE(report);
  EXPECT_EQ(report->size(), 0u);
  EXPECT_EQ(report->dropped, (std::vector<uint64_t>{1, 2}));
  EXPECT_FALSE(batcher.next_batch(1s));  // at once: shut down, nothing to drain or report
  EXPECT_LT(Clock::now() - start, 500ms);
  batcher.complete(batch->id);
  const auto m = batcher.metrics();
  EXPECT_EQ(m.dropped, 2u);
  EXPECT_EQ(m.completed, 1u);
  EXPECT_EQ(m.failed, 0u);
  expect_invariant(m);
}

TEST(DynamicBatcher, ShutdownWakesWaitingRunners) {
  radz::DynamicBatcher batcher(small_options());
  const auto start = Clock::now();
  std::thread runner([&] { EXPECT_FALSE(batcher.next_batch(10s)); });
  std::this_thread::sleep_for(20ms);
  batcher.shutdown(true);
  runner.join();
  EXPECT_LT(Clock::now() - start, 2s);
}

TEST(DynamicBatcher, DestroyingABatcherWithWorkLeftNeedsNothing) {
  // Nothing waits on the batcher (callers own the futures): destroying it with requests
  // queued, in flight and unreported just frees them (ASan checks for leaks).
  radz::DynamicBatcher batcher(small_options(1, 10s));
  submit(batcher, 1);
  submit(batcher, 2);
  submit(batcher, 3);
  ASSERT_TRUE(batcher.next_batch(1s));
  EXPECT_TRUE(batcher.cancel(3));
}

TEST(DynamicBatcher, RejectBackpressureThrowsAtOnce) {
  auto options = small_options(8, 10s);
  options.max_queue = 2;
  options.backpressure = radz::Backpressure::kReject;
  radz::DynamicBatcher batcher(options);
  submit(batcher, 1);
  submit(batcher, 2);
  const auto start = Clock::now();
  try {
    submit(batcher, 3);
    FAIL() << "no QueueFull";
  } catch (const radz::QueueFull& e) {
    EXPECT_NE(std::string(e.what()).find("queue full"), std::string::npos);
  }
  EXPECT_LT(Clock::now() - start, 100ms);
  EXPECT_EQ(batcher.metrics().rejected, 1u);
  EXPECT_EQ(batcher.metrics().submitted, 2u);
  EXPECT_TRUE(batcher.cancel(1));
  submit(batcher, 3);  // the refused id was never taken
}

TEST(DynamicBatcher, BlockBackpressureTimesOut) {
  auto options = small_options(8, 10s);
  options.max_queue = 1;
  options.block_timeout = 50ms;
  radz::DynamicBatcher batcher(options);
  submit(batcher, 1);
  const auto start = Clock::now();
  EXPECT_THROW(submit(batcher, 2), radz::QueueFull);
  EXPECT_GE(Clock::now() - start, 50ms);
  EXPECT_EQ(batcher.metrics().rejected, 1u);
}

TEST(DynamicBatcher, BlockBackpressureProceedsWhenARunnerMakesRoom) {
  auto options = small_options(1, 0us);
  options.max_queue = 1;
  options.block_timeout = 2000ms;
  radz::DynamicBatcher batcher(options);
  submit(batcher, 1);
  std::thread runner([&] {
    std::this_thread::sleep_for(30ms);
    auto batch = batcher.next_batch(1s);
    if (batch) batcher.complete(batch->id);
  });
  submit(batcher, 2);  // blocks until the runner takes the first
  runner.join();
  const auto m = batcher.metrics();
  EXPECT_EQ(m.queue_depth(), 1u);
  EXPECT_EQ(m.completed, 1u);
  EXPECT_EQ(m.rejected, 0u);
}

TEST(DynamicBatcher, CancelMakesRoomForABlockedProducer) {
  auto options = small_options(8, 10s);
  options.max_queue = 1;
  options.block_timeout = 5000ms;
  radz::DynamicBatcher batcher(options);
  submit(batcher, 1);
  std::thread producer([&] { submit(batcher, 2); });
  std::this_thread::sleep_for(20ms);
  EXPECT_TRUE(batcher.cancel(1));
  producer.join();
  EXPECT_EQ(batcher.metrics().queue_depth(), 1u);
}

TEST(DynamicBatcher, ShutdownReleasesBlockedProducers) {
  auto options = small_options(8, 10s);
  options.max_queue = 1;
  options.block_timeout = 5000ms;
  radz::DynamicBatcher batcher(options);
  submit(batcher, 1);
  std::thread producer([&] { EXPECT_THROW(submit(batcher, 2), std::runtime_error); });
  std::this_thread::sleep_for(20ms);
  const auto start = Clock::now();
  batcher.shutdown(false);
  producer.join();
  EXPECT_LT(Clock::now() - start, 1s);
}

// Many producers x many runners, with cancels, deadlines (some already past, some expiring in
// the queue) and injected failures: every accepted id is reported exactly once (run, expired,
// cancelled), even when a runner takes a request before its submit() has returned.
TEST(DynamicBatcher, StressEveryIdIsReportedExactlyOnce) {
  constexpr uint64_t kProducers = 6, kRunners = 3, kPerProducer = 1000;
  auto options = small_options(8, 200us);
  options.max_queue = 64;  // small, so backpressure (block) is exercised too
  options.block_timeout = 5000ms;
  radz::DynamicBatcher batcher(options);
  Ledger ledger(kProducers * kPerProducer);
  std::atomic<bool> stop{false};
  std::atomic<size_t> rows_run{0};
  std::vector<std::thread> runners;
  for (uint64_t r = 0; r < kRunners; ++r) {
    runners.emplace_back([&] { run_batches(batcher, ledger, stop, 7, rows_run); });
  }
  std::vector<std::thread> producers;
  for (uint64_t p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (uint64_t i = 0; i < kPerProducer; ++i) {
        const uint64_t id = p * kPerProducer + i;
        const auto priority = i % 5 == 0 ? radz::Priority::kStat : radz::Priority::kRoutine;
        std::optional<Clock::time_point> deadline;
        if (i % 40 == 3) deadline = Clock::now() - 1ms;
        if (i % 40 == 13) deadline = Clock::now() + 100us;
        ledger.registered(id);  // the caller's future exists before submit()
        submit(batcher, id, priority, deadline);
        if (i % 50 == 49) batcher.cancel(id);  // may or may not win against a runner
      }
    });
  }
  for (auto& t : producers) t.join();
  // Wait (bounded) until every id has been reported; then let the runners go.
  const auto give_up = Clock::now() + 30s;
  while (ledger.count(Ledger::kRegistered) > 0 && Clock::now() < give_up) std::this_thread::sleep_for(5ms);
  stop = true;
  for (auto& t : runners) t.join();

  const size_t total = kProducers * kPerProducer;
  EXPECT_EQ(ledger.errors(), 0u);
  EXPECT_EQ(ledger.count(Ledger::kRegistered), 0u) << "ids never reported";
  const auto m = batcher.metrics();
  EXPECT_EQ(m.submitted, total);
  EXPECT_EQ(m.completed + m.failed, ledger.count(Ledger::kRan));
  EXPECT_GT(m.failed, 0u);
  EXPECT_EQ(m.expired, ledger.count(Ledger::kExpired));
  EXPECT_GE(m.expired, kProducers * (kPerProducer / 40));  // at least every already-past one
  EXPECT_EQ(m.cancelled, ledger.count(Ledger::kCancelled));
  EXPECT_EQ(m.dropped, 0u);
  EXPECT_EQ(rows_run.load(), ledger.count(Ledger::kRan));
  EXPECT_EQ(m.queue_depth() + m.in_flight_requests, 0u);
  expect_invariant(m);
  uint64_t histogram_rows = 0, histogram_batches = 0;
  for (size_t k = 0; k < m.batch_size_histogram.size(); ++k) {
    histogram_rows += k * m.batch_size_histogram[k];
    histogram_batches += m.batch_size_histogram[k];
  }
  EXPECT_EQ(histogram_rows, m.completed + m.failed);
  EXPECT_EQ(histogram_batches, m.batches);
}

// shutdown(false) while producers and runners are busy: producers are refused from then on;
// every id accepted before is reported exactly once (run, cancelled or dropped) and the runners
// stop once nothing is left.
TEST(DynamicBatcher, ShutdownWithoutDrainUnderLoad) {
  constexpr uint64_t kProducers = 4, kRunners = 2, kPerProducer = 2000;
  auto options = small_options(8, 500us);
  options.max_queue = 256;
  options.block_timeout = 5000ms;
  radz::DynamicBatcher batcher(options);
  Ledger ledger(kProducers * kPerProducer);
  std::atomic<bool> stop{false};
  std::atomic<size_t> rows_run{0}, accepted{0};
  std::vector<std::thread> runners;
  for (uint64_t r = 0; r < kRunners; ++r) {
    runners.emplace_back([&] { run_batches(batcher, ledger, stop, 0, rows_run); });
  }
  std::vector<std::thread> producers;
  for (uint64_t p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (uint64_t i = 0; i < kPerProducer; ++i) {
        const uint64_t id = p * kPerProducer + i;
        ledger.registered(id);
        try {
          submit(batcher, id);
        } catch (const std::runtime_error& e) {
          ledger.unregistered(id);
          EXPECT_STREQ(e.what(), "batcher is shut down");
          return;
        }
        ++accepted;
        if (i % 30 == 29) batcher.cancel(id);
      }
    });
  }
  while (accepted < 1000) std::this_thread::sleep_for(1ms);
  batcher.shutdown(false);
  for (auto& t : producers) t.join();
  // Once shut down, a runner sees nullopt only when nothing is left to run or report.
  stop = true;
  for (auto& t : runners) t.join();

  EXPECT_EQ(ledger.errors(), 0u);
  EXPECT_EQ(ledger.count(Ledger::kRegistered), 0u) << "ids never reported";
  const auto m = batcher.metrics();
  EXPECT_EQ(m.submitted, accepted.load());
  EXPECT_EQ(m.completed, ledger.count(Ledger::kRan));
  EXPECT_EQ(m.cancelled, ledger.count(Ledger::kCancelled));
  EXPECT_EQ(m.dropped, ledger.count(Ledger::kDropped));
  EXPECT_EQ(m.queue_depth() + m.in_flight_requests, 0u);
  expect_invariant(m);
  EXPECT_FALSE(batcher.next_batch(1s));
}

TEST(DynamicBatcher, MetricsCountsAddUp) {
  auto options = small_options(2, 10s);
  options.max_queue = 5;
  options.backpressure = radz::Backpressure::kReject;
  radz::DynamicBatcher batcher(options);
  submit(batcher, 1, radz::Priority::kStat);
  submit(batcher, 2);
  submit(batcher, 3);
  submit(batcher, 4, radz::Priority::kRoutine, Clock::now() - 1ms);  // expired
  submit(batcher, 5);
  submit(batcher, 6);
  EXPECT_THROW(submit(batcher, 7), radz::QueueFull);  // 5 queued
  auto m = batcher.metrics();
  EXPECT_EQ(m.queued_stat, 1u);
  EXPECT_EQ(m.queued_routine, 4u);
  EXPECT_EQ(m.expired, 1u);  // counted when it ends, before it is reported
  expect_invariant(m);
  EXPECT_TRUE(batcher.cancel(3));
  submit(batcher, 7);                    // room again; a refused id was never taken
  auto first = batcher.next_batch(0us);  // 1, 2 (full)
  ASSERT_TRUE(first);
  EXPECT_EQ(first->request_ids, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(first->expired, std::vector<uint64_t>{4});
  EXPECT_EQ(first->cancelled, std::vector<uint64_t>{3});
  batcher.complete(first->id);
  auto second = batcher.next_batch(0us);  // 5, 6
  ASSERT_TRUE(second);
  m = batcher.metrics();
  EXPECT_EQ(m.in_flight_batches, 1u);
  EXPECT_EQ(m.in_flight_requests, 2u);
  expect_invariant(m);
  batcher.fail(second->id, "boom");
  batcher.shutdown(false);  // drops 7
  m = batcher.metrics();
  EXPECT_EQ(m.submitted, 7u);
  EXPECT_EQ(m.completed, 2u);
  EXPECT_EQ(m.failed, 2u);
  EXPECT_EQ(m.expired, 1u);
  EXPECT_EQ(m.cancelled, 1u);
  EXPECT_EQ(m.dropped, 1u);
  EXPECT_EQ(m.rejected, 1u);
  EXPECT_EQ(m.batches, 2u);
  expect_invariant(m);
  EXPECT_EQ(m.batch_size_histogram, (std::vector<uint64_t>{0, 0, 2}));
  EXPECT_EQ(m.latency_samples, 2u);
  EXPECT_GT(m.latency_p99.count(), 0);
  EXPECT_LE(m.latency_p50, m.latency_p90);
  EXPECT_LE(m.latency_p90, m.latency_p99);
}

TEST(LatencyWindow, NearestRankPercentilesOverTheLastSamples) {
  radz::LatencyWindow window(100);
  EXPECT_EQ(window.percentiles({0.5})[0].count(), 0);
  for (int i = 1; i <= 100; ++i) window.add(std::chrono::microseconds(i));
  auto p = window.percentiles({0.5, 0.9, 0.99, 1.0, 0.0});
  EXPECT_EQ(p[0].count(), 50);
  EXPECT_EQ(p[1].count(), 90);
  EXPECT_EQ(p[2].count(), 99);
  EXPECT_EQ(p[3].count(), 100);
  EXPECT_EQ(p[4].count(), 1);
  for (int i = 0; i < 100; ++i) window.add(std::chrono::microseconds(1000));  // old samples roll out
  EXPECT_EQ(window.size(), 100u);
  EXPECT_EQ(window.percentiles({0.0})[0].count(), 1000);
  EXPECT_THROW(radz::LatencyWindow(0), std::invalid_argument);
}

}  // namespace
