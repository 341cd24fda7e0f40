#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <string>
#include <vector>

#include "radz/thread_pool.h"

namespace {

TEST(ThreadPool, RunsEveryIndexOnce) {
  radz::ThreadPool pool(4);
  std::vector<std::atomic<int>> hits(1000);
  pool.parallel_for(hits.size(), [&](size_t i) { hits[i].fetch_add(1); });
  for (const auto& h : hits) EXPECT_EQ(h.load(), 1);
}

TEST(ThreadPool, ZeroWorkReturnsAtOnce) {
  radz::ThreadPool pool(2);
  pool.parallel_for(0, [](size_t) { FAIL() << "called"; });
}

TEST(ThreadPool, RethrowsLowestFailingIndex) {
  radz::ThreadPool pool(1);  // one worker: indices run in order, so index 3 fails first
  try {
    pool.parallel_for(10, [](size_t i) {
      if (i == 3 || i == 7) throw std::invalid_argument("bad " + std::to_string(i));
    });
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "bad 3");
  }
}

TEST(ThreadPool, UsableAfterAnError) {
  radz::ThreadPool pool(3);
  EXPECT_THROW(pool.parallel_for(5, [](size_t) { throw std::runtime_error("x"); }), std::runtime_error);
  std::atomic<int> count{0};
  pool.parallel_for(50, [&](size_t) { count.fetch_add(1); });
  EXPECT_EQ(count.load(), 50);
}

TEST(ThreadPool, DefaultSizeIsAtLeastOne) {
  radz::ThreadPool pool;
  EXPECT_GE(pool.size(), 1u);
}

}  // namespace
