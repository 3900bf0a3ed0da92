// Human-readable durations ("2500ms", "30s", "1m") and sizes ("1MiB", "64KiB",
// "1024") as they appear in the YAML config. Parsers return std::nullopt on
// anything they do not fully understand; they never throw.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace zguard::config {

// Accepts an unsigned integer followed by one of: us, ms, s, m, h.
std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text);

// Accepts an unsigned integer, optionally followed by B, KiB, MiB, GiB
// (powers of 1024) or kB, MB, GB (powers of 1000).
std::optional<std::uint64_t> ParseSize(std::string_view text);

// "2500ms", "30s", "1MiB": the shortest exact spelling, for logs and docs.
std::string FormatDuration(std::chrono::milliseconds value);
std::string FormatSize(std::uint64_t bytes);

}  // namespace zguard::config
