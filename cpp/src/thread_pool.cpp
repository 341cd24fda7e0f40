#include "radz/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <limits>

namespace radz {

ThreadPool::ThreadPool(size_t num_threads) {
  if (num_threads == 0) num_threads = std::max(1u, std::thread::hardware_concurrency());
  workers_.reserve(num_threads);
  for (size_t i = 0; i < num_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  task_ready_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::worker_loop() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      task_ready_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping and drained
      task = std::move(tasks_.front());
      tasks_.pop();
    }
    task();
  }
}

void ThreadPool::parallel_for(size_t n, const std::function<void(size_t)>& fn) {
  if (n == 0) return;
  // Shared state lives on this stack frame: we block until every runner has finished with it.
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex done_mutex;
  std::condition_variable done;
  size_t runners_left = std::min(n, workers_.size());
  size_t error_index = std::numeric_limits<size_t>::max();
  std::exception_ptr error;

  auto runner = [&] {
    for (size_t i = next.fetch_add(1); i < n && !failed.load(); i = next.fetch_add(1)) {
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(done_mutex);
        if (i < error_index) {
          error_index = i;
          error = std::current_exception();
        }
        failed.store(true);
      }
    }
    std::lock_guard<std::mutex> lock(done_mutex);
    if (--runners_left == 0) done.notify_one();
  };
  const size_t runners = runners_left;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t r = 0; r < runners; ++r) tasks_.emplace(runner);
  }
  task_ready_.notify_all();
  std::unique_lock<std::mutex> lock(done_mutex);
  done.wait(lock, [&] { return runners_left == 0; });
  if (error) std::rethrow_exception(error);
}

}  // namespace radz
