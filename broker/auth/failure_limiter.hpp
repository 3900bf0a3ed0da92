// Cheap refusal of peers that keep failing authentication. libzmq clients
// reconnect on their own, so a client with a wrong password or key would
// otherwise make us hash a password or look up a key again and again. After
// `limit` failures from one address within `window`, that address is
// refused with ZAP 300 ("rate_limited") without any check, for `cooldown`.
// Thread-safe (the authenticator and its verifiers share one).
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace zguard::auth {

struct FailureLimits {
  int limit = 10;                              // failures; 0 disables the limiter
  std::chrono::milliseconds window{60'000};    // counted over this window
  std::chrono::milliseconds cooldown{60'000};  // then refused for this long
  std::size_t max_tracked = 100'000;           // addresses remembered at most
};

class FailureLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  explicit FailureLimiter(FailureLimits limits) : limits_(limits) {}

  // True while `address` is cooling down.
  bool Blocked(std::string_view address, Clock::time_point now);

  // Counts one failed attempt; returns true when this failure started a cool-down.
  bool RecordFailure(std::string_view address, Clock::time_point now);

  std::size_t tracked() const;

 private:
  struct Entry {
    int failures = 0;
    Clock::time_point window_start;
    Clock::time_point blocked_until;
  };
  void Prune(Clock::time_point now);

  FailureLimits limits_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace zguard::auth
