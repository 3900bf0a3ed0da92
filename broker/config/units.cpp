// Parsing and printing of config durations and sizes; see units.hpp.
#include "units.hpp"

#include <array>
#include <charconv>
#include <limits>
#include <utility>

namespace zguard::config {
namespace {

// Splits "123abc" into 123 and "abc". Fails on no digits or overflow.
std::optional<std::pair<std::uint64_t, std::string_view>> SplitNumber(std::string_view text) {
  std::uint64_t value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr == text.data()) return std::nullopt;
  std::string_view unit(ptr, static_cast<std::size_t>(text.data() + text.size() - ptr));
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  return std::make_pair(value, unit);
}

std::optional<std::uint64_t> Multiply(std::uint64_t value, std::uint64_t factor) {
  if (factor != 0 && value > std::numeric_limits<std::uint64_t>::max() / factor) {
    return std::nullopt;
  }
  return value * factor;
}

}  // namespace

std::optional<std::chrono::milliseconds> ParseDuration(std::string_view text) {
  const auto split = SplitNumber(text);
  if (!split) return std::nullopt;
  const auto [value, unit] = *split;
  std::optional<std::uint64_t> ms;
  if (unit == "us") {
    if (value % 1000 != 0) return std::nullopt;  // sub-millisecond precision is not kept
    ms = value / 1000;
  } else if (unit == "ms") {
    ms = value;
  } else if (unit == "s") {
    ms = Multiply(value, 1000);
  } else if (unit == "m") {
    ms = Multiply(value, 60'000);
  } else if (unit == "h") {
    ms = Multiply(value, 3'600'000);
  }
  if (!ms || *ms > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return std::nullopt;
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(*ms));
}

std::optional<std::uint64_t> ParseSize(std::string_view text) {
  const auto split = SplitNumber(text);
  if (!split) return std::nullopt;
  const auto [value, unit] = *split;
  static constexpr std::array<std::pair<std::string_view, std::uint64_t>, 8> kUnits{{
      {"", 1},
      {"B", 1},
      {"KiB", 1ULL << 10},
      {"MiB", 1ULL << 20},
      {"GiB", 1ULL << 30},
      {"kB", 1000},
      {"MB", 1000 * 1000},
      {"GB", 1000 * 1000 * 1000},
  }};
  for (const auto& [name, factor] : kUnits) {
    if (unit == name) return Multiply(value, factor);
  }
  return std::nullopt;
}

std::string FormatDuration(std::chrono::milliseconds value) {
  const auto ms = value.count();
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::string FormatSize(std::uint64_t bytes) {
  if (bytes != 0 && bytes % (1ULL << 30) == 0) return std::to_string(bytes >> 30) + "GiB";
  if (bytes != 0 && bytes % (1ULL << 20) == 0) return std::to_string(bytes >> 20) + "MiB";
  if (bytes != 0 && bytes % (1ULL << 10) == 0) return std::to_string(bytes >> 10) + "KiB";
  return std::to_string(bytes) + "B";
}

}  // namespace zguard::config
