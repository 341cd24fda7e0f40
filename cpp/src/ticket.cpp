#include "radz/ticket.h"

#include <stdexcept>
#include <utility>

#include "request_state.h"

namespace radz {

namespace detail {

void Request::finish(const float* values, size_t output_size, Clock::time_point at) {
  {
    std::lock_guard<std::mutex> lock(result_mutex);
    if (finished) return;
    output.assign(values, values + output_size);
    finished = true;
    finished_at = at;
  }
  result_ready.notify_all();
}

void Request::finish(std::exception_ptr failure, Clock::time_point at) {
  {
    std::lock_guard<std::mutex> lock(result_mutex);
    if (finished) return;
    error = std::move(failure);
    finished = true;
    finished_at = at;
  }
  result_ready.notify_all();
}

}  // namespace detail

Ticket::Ticket(std::shared_ptr<detail::Request> request) : request_(std::move(request)) {
  if (!request_) throw std::invalid_argument("request: must not be null");
}

uint64_t Ticket::id() const { return request_->id; }

bool Ticket::ready() const {
  std::lock_guard<std::mutex> lock(request_->result_mutex);
  return request_->finished;
}

bool Ticket::wait(std::chrono::nanoseconds timeout) const {
  std::unique_lock<std::mutex> lock(request_->result_mutex);
  // wait_until on steady_clock: wait_for with a huge duration overflows inside libstdc++.
  const auto now = std::chrono::steady_clock::now();
  const auto limit = std::chrono::steady_clock::time_point::max() - now;
  if (timeout >= limit) {
    request_->result_ready.wait(lock, [&] { return request_->finished; });
    return true;
  }
  return request_->result_ready.wait_until(lock, now + timeout, [&] { return request_->finished; });
}

const std::vector<float>& Ticket::get() const {
  std::unique_lock<std::mutex> lock(request_->result_mutex);
  request_->result_ready.wait(lock, [&] { return request_->finished; });
  // Once finished, output and error never change again: safe to use after unlocking.
  if (request_->error) std::rethrow_exception(request_->error);
  return request_->output;
}

bool Ticket::cancel() {
  const auto owner = request_->owner.lock();
  return owner ? owner->cancel(*request_) : false;
}

std::optional<std::chrono::microseconds> Ticket::latency() const {
  std::lock_guard<std::mutex> lock(request_->result_mutex);
  if (!request_->finished) return std::nullopt;
  return std::chrono::duration_cast<std::chrono::microseconds>(request_->finished_at - request_->submitted_at);
}

}  // namespace radz
