// Sets up spdlog for the process: human text, or one JSON object per line
// for log collectors. Logs go to stderr.
#pragma once

#include "broker/config/config.hpp"

namespace zguard {

// Replaces the default logger. Safe to call again (e.g. after a config load).
void SetupLogging(const config::LogOptions& options);

}  // namespace zguard
