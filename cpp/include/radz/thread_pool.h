#pragma once
/// A fixed set of worker threads for data-parallel loops.

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <queue>
#include <thread>
#include <vector>

namespace radz {

class ThreadPool {
 public:
  /// Starts `num_threads` workers; 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(size_t num_threads = 0);
  /// Finishes queued work, then joins the workers.
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  /// Number of worker threads.
  size_t size() const { return workers_.size(); }

  /// Calls fn(i) for every i < n on the workers and blocks until all calls return. If calls
  /// throw, the exception of the lowest failing index is rethrown here after all have stopped;
  /// indices not yet started when a call fails are skipped. Must not be called from a worker.
  void parallel_for(size_t n, const std::function<void(size_t)>& fn);

 private:
  void worker_loop();

  std::vector<std::thread> workers_;
  std::queue<std::function<void()>> tasks_;
  std::mutex mutex_;
  std::condition_variable task_ready_;
  bool stopping_ = false;
};

}  // namespace radz
