// Sets up spdlog for the process: human text, or one JSON object per line
// for log collectors. Logs go to stderr.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "broker/config/config.hpp"

namespace zguard {

// Replaces the default logger. Safe to call again (e.g. after a config load).
void SetupLogging(const config::LogOptions& options);

// A peer-chosen string (service, user or routing id, address, ZAP field) made safe for one log
// line in either format: printable ASCII is kept, a backslash becomes "\\" and every other byte
// "\xNN", so no peer can start a line of its own or hide bytes; at most `max` bytes of `text`
// are shown, then "...(N bytes)". Every peer-chosen string in a log line goes through this.
std::string LogSafe(std::string_view text, std::size_t max = 128);

}  // namespace zguard
