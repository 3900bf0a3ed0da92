// Per-address authentication failure limiter; see failure_limiter.hpp.
#include "broker/auth/failure_limiter.hpp"

namespace zguard::auth {

bool FailureLimiter::Blocked(std::string_view address, Clock::time_point now) {
  if (limits_.limit <= 0) return false;
  std::lock_guard<std::mutex> lock(mutex_);
  const auto it = entries_.find(std::string(address));
  return it != entries_.end() && it->second.blocked_until > now;
}

bool FailureLimiter::RecordFailure(std::string_view address, Clock::time_point now) {
  if (limits_.limit <= 0) return false;
  std::lock_guard<std::mutex> lock(mutex_);
  if (entries_.size() >= limits_.max_tracked) Prune(now);
  if (entries_.size() >= limits_.max_tracked) return false;  // flooded: stay correct, stop counting
  Entry& entry = entries_[std::string(address)];
  if (entry.failures == 0 || now - entry.window_start > limits_.window) {
    entry.failures = 0;
    entry.window_start = now;
  }
  if (++entry.failures < limits_.limit) return false;
  entry.failures = 0;
  entry.blocked_until = now + limits_.cooldown;
  return true;
}

std::size_t FailureLimiter::tracked() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return entries_.size();
}

void FailureLimiter::Prune(Clock::time_point now) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    const bool window_over = now - it->second.window_start > limits_.window;
    const bool cooled = it->second.blocked_until <= now;
    it = window_over && cooled ? entries_.erase(it) : std::next(it);
  }
}

}  // namespace zguard::auth
