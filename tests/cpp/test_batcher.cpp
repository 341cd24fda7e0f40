#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "radz/batcher.h"
#include "latency_window.h"

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

// The "model": output = f(input), so a result delivered to the wrong request is detected.
std::vector<float> model(const radz::Batch& batch, size_t input_size = kInputSize) {
  std::vector<float> out(batch.size() * kOutputSize);
  for (size_t i = 0; i < batch.size(); ++i) {
    const float* x = batch.inputs.data() + i * input_size;
    out[i * kOutputSize] = x[0] * 2.0f + 1.0f;
    out[i * kOutputSize + 1] = x[input_size - 1] - 5.0f;
  }
  return out;
}

float first_input(const radz::Batch& batch, size_t row) { return batch.inputs[row * kInputSize]; }

template <typename Exception>
std::string error_of(const radz::Ticket& ticket) {
  try {
    ticket.get();
  } catch (const Exception& e) {
    return e.what();
  }
  return "no error of the expected type";
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
  std::vector<radz::Ticket> tickets;
  const radz::Priority order[] = {radz::Priority::kRoutine, radz::Priority::kStat, radz::Priority::kRoutine,
                                  radz::Priority::kStat, radz::Priority::kRoutine};
  for (size_t i = 0; i < 5; ++i) tickets.push_back(batcher.submit(input_of(float(i)).data(), order[i]));
  batcher.shutdown(true);  // drain: the batch forms now, without waiting for max_delay
  const auto batch = batcher.next_batch(0us);
  ASSERT_TRUE(batch.has_value());
  ASSERT_EQ(batch->size(), 5u);
  const std::vector<uint64_t> expected = {tickets[1].id(), tickets[3].id(), tickets[0].id(), tickets[2].id(),
                                          tickets[4].id()};
  EXPECT_EQ(batch->request_ids, expected);
  const float firsts[] = {1, 3, 0, 2, 4};
  for (size_t row = 0; row < 5; ++row) EXPECT_EQ(first_input(*batch, row), firsts[row]);
}

TEST(DynamicBatcher, StatRequestsFillABatchAheadOfOlderRoutineOnes) {
  radz::DynamicBatcher batcher(small_options(2, 100ms));
  auto routine = batcher.submit(input_of(0).data(), radz::Priority::kRoutine);
  auto stat_a = batcher.submit(input_of(1).data(), radz::Priority::kStat);
  auto stat_b = batcher.submit(input_of(2).data(), radz::Priority::kStat);
  const auto first = batcher.next_batch(0us);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->request_ids, (std::vector<uint64_t>{stat_a.id(), stat_b.id()}));
  EXPECT_EQ(batcher.metrics().queued_routine, 1u);
}

TEST(DynamicBatcher, FullBatchFormsImmediately) {
  radz::DynamicBatcher batcher(small_options(4, 10s));  // a long delay that must not be waited for
  for (int i = 0; i < 4; ++i) batcher.submit(input_of(float(i)).data());
  const auto start = Clock::now();
  const auto batch = batcher.next_batch(5s);
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->size(), 4u);
  EXPECT_LT(Clock::now() - start, 500ms);
}

TEST(DynamicBatcher, AdaptiveDelayRunsALoneRequestAtOnce) {
  auto options = small_options(8, 1s);
  options.adaptive_delay = true;
  radz::DynamicBatcher batcher(options);
  // Low load: one request at a time, 1.2 s apart (longer than max_delay), so no partner is
  // expected in time and each runs at once instead of waiting out max_delay (a stall of the
  // runner longer than max_delay would make one ordinarily due: 1 s leaves room on slow CI).
  for (int i = 0; i < 4; ++i) {
    auto ticket = batcher.submit(input_of(float(i)).data());
    const auto batch = batcher.next_batch(10s);
    ASSERT_TRUE(batch);
    EXPECT_EQ(batch->size(), 1u);
    batcher.complete(batch->id, model(*batch).data());
    EXPECT_FLOAT_EQ(ticket.get()[0], float(i) * 2.0f + 1.0f);
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
  std::vector<radz::Ticket> tickets;
  std::optional<radz::Batch> batch;
  std::thread runner([&] { batch = batcher.next_batch(10s); });
  for (int i = 0; i < 5; ++i) {
    tickets.push_back(batcher.submit(input_of(float(i)).data()));
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
  for (int i = 0; i < 4; ++i) batcher.submit(input_of(float(i)).data());
  auto first = batcher.next_batch(10s);
  ASSERT_TRUE(first);
  batcher.complete(first->id, model(*first).data());
  std::this_thread::sleep_for(1500ms);
  std::optional<radz::Batch> second;
  std::thread runner([&] { second = batcher.next_batch(10s); });
  for (int i = 0; i < 4; ++i) {
    batcher.submit(input_of(float(i)).data());
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
  for (int i = 0; i < 2; ++i) {
    batcher.submit(input_of(float(i)).data());
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
  for (int i = 0; i < 3; ++i) batcher.submit(input_of(float(i)).data());
  runner.join();
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->size(), 3u);
  EXPECT_LT(Clock::now() - start, 1s);
}

TEST(DynamicBatcher, PartialBatchFormsAfterMaxDelay) {
  radz::DynamicBatcher batcher(small_options(8, 50ms));
  const auto start = Clock::now();
  batcher.submit(input_of(1).data());
  batcher.submit(input_of(2).data());
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
  batcher.submit(input_of(1).data());
  EXPECT_FALSE(batcher.next_batch(20ms));  // one request, 10 s delay: not due yet
}

TEST(DynamicBatcher, CompleteDeliversEachRowToItsOwnTicket) {
  radz::DynamicBatcher batcher(small_options(3));
  std::vector<radz::Ticket> tickets;
  for (int i = 0; i < 3; ++i) tickets.push_back(batcher.submit(input_of(float(10 + i)).data()));
  const auto batch = batcher.next_batch(1s);
  ASSERT_TRUE(batch);
  EXPECT_FALSE(tickets[0].ready());
  EXPECT_FALSE(tickets[0].latency());
  batcher.complete(batch->id, model(*batch).data());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(tickets[i].wait(1s));
    EXPECT_EQ(tickets[i].get(), (std::vector<float>{(10 + i) * 2.0f + 1.0f, (10 + i) - 5.0f}));
    ASSERT_TRUE(tickets[i].latency());
  }
  EXPECT_THROW(batcher.complete(batch->id, model(*batch).data()), std::invalid_argument);  // twice
  EXPECT_THROW(batcher.fail(12345, "x"), std::invalid_argument);
}

TEST(DynamicBatcher, FailStoresTheMessageInEveryTicket) {
  radz::DynamicBatcher batcher(small_options(2));
  auto a = batcher.submit(input_of(1).data());
  auto b = batcher.submit(input_of(2).data());
  const auto batch = batcher.next_batch(1s);
  ASSERT_TRUE(batch);
  batcher.fail(batch->id, "backend out of memory");
  EXPECT_EQ(error_of<std::runtime_error>(a), "backend out of memory");
  EXPECT_EQ(error_of<std::runtime_error>(b), "backend out of memory");
  EXPECT_EQ(batcher.metrics().failed, 2u);
}

TEST(DynamicBatcher, ExpiredRequestsNeverRunAndSayDeadline) {
  radz::DynamicBatcher batcher(small_options(4, 100ms));
  auto late = batcher.submit(input_of(1).data(), radz::Priority::kRoutine, Clock::now() + 10ms);
  auto fine = batcher.submit(input_of(2).data(), radz::Priority::kRoutine, Clock::now() + 10s);
  auto past = batcher.submit(input_of(3).data(), radz::Priority::kStat, Clock::now() - 1ms);
  EXPECT_TRUE(past.ready());  // already past: failed at submit, never queued
  const auto batch = batcher.next_batch(2s);
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->request_ids, std::vector<uint64_t>{fine.id()});
  EXPECT_NE(error_of<radz::DeadlineExceeded>(late).find("deadline"), std::string::npos);
  EXPECT_NE(error_of<radz::DeadlineExceeded>(past).find("deadline"), std::string::npos);
  EXPECT_EQ(batcher.metrics().expired, 2u);
}

TEST(DynamicBatcher, ExpiryWakesAWaitingRunnerWithoutWaitingForTheBatch) {
  radz::DynamicBatcher batcher(small_options(4, 10s));
  auto ticket = batcher.submit(input_of(1).data(), radz::Priority::kRoutine, Clock::now() + 20ms);
  std::thread runner([&] { EXPECT_FALSE(batcher.next_batch(300ms)); });
  EXPECT_TRUE(ticket.wait(250ms));  // failed by the runner's expiry check, not at its timeout
  EXPECT_THROW(ticket.get(), radz::DeadlineExceeded);
  runner.join();
}

TEST(DynamicBatcher, CancelRemovesAQueuedRequestOnly) {
  radz::DynamicBatcher batcher(small_options(2, 10s));
  auto cancelled = batcher.submit(input_of(1).data());
  auto kept = batcher.submit(input_of(2).data());
  EXPECT_TRUE(cancelled.cancel());
  EXPECT_FALSE(cancelled.cancel());  // already cancelled
  EXPECT_THROW(cancelled.get(), radz::RequestCancelled);
  auto third = batcher.submit(input_of(3).data());
  const auto batch = batcher.next_batch(1s);
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->request_ids, (std::vector<uint64_t>{kept.id(), third.id()}));
  EXPECT_FALSE(kept.cancel());  // running
  batcher.complete(batch->id, model(*batch).data());
  EXPECT_FALSE(kept.cancel());  // finished
  EXPECT_EQ(kept.get()[0], 5.0f);
  EXPECT_EQ(batcher.metrics().cancelled, 1u);
}

TEST(DynamicBatcher, ShutdownDrainLetsRunnersFinishTheQueue) {
  radz::DynamicBatcher batcher(small_options(2, 10s));
  std::vector<radz::Ticket> tickets;
  for (int i = 0; i < 3; ++i) tickets.push_back(batcher.submit(input_of(float(i)).data()));
  batcher.shutdown(true);
  EXPECT_TRUE(batcher.is_shut_down());
  try {
    batcher.submit(input_of(9).data());
    FAIL() << "submit after shutdown";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "batcher is shut down");
  }
  size_t rows = 0;
  while (auto batch = batcher.next_batch(1s)) {  // no max_delay wait while draining
    rows += batch->size();
    batcher.complete(batch->id, model(*batch).data());
  }
  EXPECT_EQ(rows, 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(tickets[i].get()[0], i * 2.0f + 1.0f);
}

TEST(DynamicBatcher, ShutdownWithoutDrainFailsQueuedButLetsInFlightComplete) {
  radz::DynamicBatcher batcher(small_options(1, 10s));
  auto running = batcher.submit(input_of(1).data());
  auto queued = batcher.submit(input_of(2).data());
  const auto batch = batcher.next_batch(1s);
  ASSERT_TRUE(batch);
  batcher.shutdown(false);
  EXPECT_EQ(error_of<std::runtime_error>(queued), "engine shut down before the request ran");
  EXPECT_FALSE(batcher.next_batch(1s));  // returns at once: shut down and empty
  batcher.complete(batch->id, model(*batch).data());
  EXPECT_EQ(running.get()[0], 3.0f);
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

TEST(DynamicBatcher, DestroyingTheBatcherFailsEveryPendingTicket) {
  std::optional<radz::Ticket> queued, running;
  {
    radz::DynamicBatcher batcher(small_options(1, 10s));
    running = batcher.submit(input_of(1).data());
    queued = batcher.submit(input_of(2).data());
    ASSERT_TRUE(batcher.next_batch(1s));
  }
  EXPECT_THROW(queued->get(), std::runtime_error);
  EXPECT_THROW(running->get(), std::runtime_error);
  EXPECT_FALSE(queued->cancel());  // the batcher is gone: nothing to cancel from
}

TEST(DynamicBatcher, RejectBackpressureThrowsAtOnce) {
  auto options = small_options(8, 10s);
  options.max_queue = 2;
  options.backpressure = radz::Backpressure::kReject;
  radz::DynamicBatcher batcher(options);
  batcher.submit(input_of(1).data());
  batcher.submit(input_of(2).data());
  const auto start = Clock::now();
  try {
    batcher.submit(input_of(3).data());
    FAIL() << "no QueueFull";
  } catch (const radz::QueueFull& e) {
    EXPECT_NE(std::string(e.what()).find("queue full"), std::string::npos);
  }
  EXPECT_LT(Clock::now() - start, 100ms);
  EXPECT_EQ(batcher.metrics().rejected, 1u);
  EXPECT_EQ(batcher.metrics().submitted, 2u);
}

TEST(DynamicBatcher, BlockBackpressureTimesOut) {
  auto options = small_options(8, 10s);
  options.max_queue = 1;
  options.block_timeout = 50ms;
  radz::DynamicBatcher batcher(options);
  batcher.submit(input_of(1).data());
  const auto start = Clock::now();
  EXPECT_THROW(batcher.submit(input_of(2).data()), radz::QueueFull);
  EXPECT_GE(Clock::now() - start, 50ms);
  EXPECT_EQ(batcher.metrics().rejected, 1u);
}

TEST(DynamicBatcher, BlockBackpressureProceedsWhenARunnerMakesRoom) {
  auto options = small_options(1, 0us);
  options.max_queue = 1;
  options.block_timeout = 2000ms;
  radz::DynamicBatcher batcher(options);
  batcher.submit(input_of(1).data());
  std::thread runner([&] {
    std::this_thread::sleep_for(30ms);
    auto batch = batcher.next_batch(1s);
    if (batch) batcher.complete(batch->id, model(*batch).data());
  });
  auto second = batcher.submit(input_of(2).data());  // blocks until the runner takes the first
  runner.join();
  EXPECT_EQ(batcher.metrics().queue_depth(), 1u);
  EXPECT_FALSE(second.ready());
}

TEST(DynamicBatcher, ShutdownReleasesBlockedProducers) {
  auto options = small_options(8, 10s);
  options.max_queue = 1;
  options.block_timeout = 5000ms;
  radz::DynamicBatcher batcher(options);
  batcher.submit(input_of(1).data());
  std::thread producer([&] { EXPECT_THROW(batcher.submit(input_of(2).data()), std::runtime_error); });
  std::this_thread::sleep_for(20ms);
  const auto start = Clock::now();
  batcher.shutdown(false);
  producer.join();
  EXPECT_LT(Clock::now() - start, 1s);
}

// Many producers x many runners: every ticket completes exactly once, with its own output.
TEST(DynamicBatcher, StressManyProducersManyRunners) {
  constexpr int kProducers = 6, kRunners = 3, kPerProducer = 1000;
  auto options = small_options(8, 200us);
  options.max_queue = 64;  // small, so backpressure (block) is exercised too
  options.block_timeout = 5000ms;
  radz::DynamicBatcher batcher(options);
  std::atomic<bool> stop{false};
  std::atomic<size_t> rows_run{0};
  std::vector<std::thread> runners;
  for (int r = 0; r < kRunners; ++r) {
    runners.emplace_back([&] {
      for (;;) {
        auto batch = batcher.next_batch(5ms);
        if (!batch) {
          if (stop) return;  // set only once every ticket has finished
          continue;
        }
        rows_run += batch->size();
        if (batch->id % 7 == 0) {
          batcher.fail(batch->id, "injected failure");
        } else {
          batcher.complete(batch->id, model(*batch).data());
        }
      }
    });
  }
  std::vector<std::vector<radz::Ticket>> tickets(kProducers);
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        const float value = float(p * kPerProducer + i);
        const auto priority = i % 5 == 0 ? radz::Priority::kStat : radz::Priority::kRoutine;
        tickets[p].push_back(batcher.submit(input_of(value).data(), priority));
        if (i % 50 == 49) tickets[p].back().cancel();  // may or may not win against a runner
      }
    });
  }
  for (auto& t : producers) t.join();
  size_t completed = 0, failed = 0, cancelled = 0;
  for (int p = 0; p < kProducers; ++p) {
    for (int i = 0; i < kPerProducer; ++i) {
      const auto& ticket = tickets[p][i];
      ASSERT_TRUE(ticket.wait(10s)) << "ticket " << ticket.id() << " never finished";
      const float value = float(p * kPerProducer + i);
      try {
        const auto& out = ticket.get();
        ASSERT_EQ(out.size(), kOutputSize);
        EXPECT_EQ(out[0], value * 2.0f + 1.0f) << "ticket " << ticket.id() << " got another request's output";
        EXPECT_EQ(out[1], value - 5.0f);
        ++completed;
      } catch (const radz::RequestCancelled&) {
        ++cancelled;
      } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "injected failure");
        ++failed;
      }
    }
  }
  stop = true;
  for (auto& t : runners) t.join();
  const auto m = batcher.metrics();
  const size_t total = kProducers * kPerProducer;
  EXPECT_EQ(completed + failed + cancelled, total);
  EXPECT_EQ(m.submitted, total);
  EXPECT_EQ(m.completed, completed);
  EXPECT_EQ(m.failed, failed);
  EXPECT_EQ(m.cancelled, cancelled);
  EXPECT_EQ(rows_run.load(), completed + failed);
  EXPECT_EQ(m.queue_depth() + m.in_flight_requests, 0u);
  uint64_t histogram_rows = 0, histogram_batches = 0;
  for (size_t k = 0; k < m.batch_size_histogram.size(); ++k) {
    histogram_rows += k * m.batch_size_histogram[k];
    histogram_batches += m.batch_size_histogram[k];
  }
  EXPECT_EQ(histogram_rows, completed + failed);
  EXPECT_EQ(histogram_batches, m.batches);
}

TEST(DynamicBatcher, MetricsCountsAddUp) {
  auto options = small_options(2, 10s);
  options.max_queue = 5;
  options.backpressure = radz::Backpressure::kReject;
  radz::DynamicBatcher batcher(options);
  auto a = batcher.submit(input_of(1).data(), radz::Priority::kStat);
  auto b = batcher.submit(input_of(2).data());
  auto c = batcher.submit(input_of(3).data());
  auto d = batcher.submit(input_of(4).data(), radz::Priority::kRoutine, Clock::now() - 1ms);  // expired
  auto e = batcher.submit(input_of(5).data());
  auto f = batcher.submit(input_of(6).data());
  EXPECT_THROW(batcher.submit(input_of(7).data()), radz::QueueFull);  // 5 queued
  auto m = batcher.metrics();
  EXPECT_EQ(m.queued_stat, 1u);
  EXPECT_EQ(m.queued_routine, 4u);
  EXPECT_TRUE(c.cancel());
  auto first = batcher.next_batch(0us);  // a, b (full)
  ASSERT_TRUE(first);
  batcher.complete(first->id, model(*first).data());
  auto second = batcher.next_batch(0us);  // e, f
  ASSERT_TRUE(second);
  m = batcher.metrics();
  EXPECT_EQ(m.in_flight_batches, 1u);
  EXPECT_EQ(m.in_flight_requests, 2u);
  batcher.fail(second->id, "boom");
  m = batcher.metrics();
  EXPECT_EQ(m.submitted, 6u);
  EXPECT_EQ(m.completed, 2u);
  EXPECT_EQ(m.failed, 2u);
  EXPECT_EQ(m.expired, 1u);
  EXPECT_EQ(m.cancelled, 1u);
  EXPECT_EQ(m.rejected, 1u);
  EXPECT_EQ(m.batches, 2u);
  EXPECT_EQ(m.submitted, m.completed + m.failed + m.expired + m.cancelled + m.queue_depth() + m.in_flight_requests);
  EXPECT_EQ(m.batch_size_histogram, (std::vector<uint64_t>{0, 0, 2}));
  EXPECT_EQ(m.latency_samples, 2u);
  EXPECT_GT(m.latency_p99.count(), 0);
  EXPECT_LE(m.latency_p50, m.latency_p90);
  EXPECT_LE(m.latency_p90, m.latency_p99);
  (void)d;
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
