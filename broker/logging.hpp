// Sets up spdlog for the process: human text, or one JSON object per line
// for log collectors. Logs go to stderr.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "broker/config/config.hpp"

namespace zguard {

// Replaces the default logger. Safe to call again (e.g. after a config load).
void SetupLogging(const config::LogOptions& options);

// A peer-chosen string (service, user or routing id, address, ZAP field) made safe for one log
// line in either format: printable ASCII is kept, a backslash becomes "\\" and every other byte
// "\xNN", so no peer can start a line of its own or hide bytes; at most `max` bytes of `text`
// are shown, then "...(N bytes)". Every peer-chosen string in a log line goes through this.
std::string LogSafe(std::string_view text, std::size_t max = 128);

// Keeps a flood of alike log lines (one peer failing the same way again and again) to one line
// per key and window: Admit() says whether to write this one (the first of its key's window),
// Due() hands back the keys whose window has ended with lines held back, and how many. At most
// `max_keys` keys are tracked; past that, every line is admitted (a flood of distinct keys is
// not hidden). Not thread-safe.
class LogLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit LogLimiter(std::chrono::seconds window = std::chrono::seconds(10),
                      std::size_t max_keys = 1000)
      : window_(window), max_keys_(max_keys) {}

  bool Admit(const std::string& key, Clock::time_point now);
  // (key, lines held back) for every key whose window ended; those keys are forgotten.
  std::vector<std::pair<std::string, std::uint64_t>> Due(Clock::time_point now);
  std::chrono::seconds window() const { return window_; }

 private:
  struct Entry {
    Clock::time_point since;
    std::uint64_t held = 0;
  };
  std::chrono::seconds window_;
  std::size_t max_keys_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace zguard
