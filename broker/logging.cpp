// Logger setup; the JSON formatter escapes every message so that each line
// is a valid JSON object whatever a peer managed to put into it.
#include "logging.hpp"

#include <chrono>
#include <memory>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace zguard {
namespace {

void AppendEscaped(spdlog::memory_buf_t& out, spdlog::string_view_t text) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (const char c : text) {
    switch (c) {
      case '"':
        out.append(std::string_view("\\\""));
        break;
      case '\\':
        out.append(std::string_view("\\\\"));
        break;
      case '\n':
        out.append(std::string_view("\\n"));
        break;
      case '\r':
        out.append(std::string_view("\\r"));
        break;
      case '\t':
        out.append(std::string_view("\\t"));
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          const char escaped[] = {'\\', 'u', '0', '0', kHex[(c >> 4) & 0xf], kHex[c & 0xf]};
          out.append(escaped, escaped + sizeof escaped);
        } else {
          out.push_back(c);
        }
    }
  }
}

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto time = std::chrono::system_clock::to_time_t(msg.time);
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()) % 1000;
    std::tm utc{};
    gmtime_r(&time, &utc);
    char stamp[40];
    const auto n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    const spdlog::string_view_t level = spdlog::level::to_string_view(msg.level);
    dest.append(std::string_view(R"({"time":")"));
    dest.append(stamp, stamp + n);
    const std::string ms = fmt::format(".{:03d}Z", static_cast<int>(millis.count()));
    dest.append(ms.data(), ms.data() + ms.size());
    dest.append(std::string_view(R"(","level":")"));
    dest.append(level.data(), level.data() + level.size());
    dest.append(std::string_view(R"(","msg":")"));
    AppendEscaped(dest, msg.payload);
    dest.append(std::string_view("\"}\n"));
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

std::string LogSafe(std::string_view text, std::size_t max) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  const std::string_view shown = text.substr(0, max);
  out.reserve(shown.size() + 8);
  for (const char c : shown) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\\') {
      out += "\\\\";
    } else if (byte >= 0x20 && byte < 0x7f) {
      out.push_back(c);
    } else {
      out += "\\x";
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0xf]);
    }
  }
  if (text.size() > max) out += "...(" + std::to_string(text.size()) + " bytes)";
  return out;
}

bool LogLimiter::Admit(const std::string& key, Clock::time_point now) {
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    if (entries_.size() < max_keys_) entries_.emplace(key, Entry{now, 0});
    return true;
  }
  ++it->second.held;
  return false;
}

std::vector<std::pair<std::string, std::uint64_t>> LogLimiter::Due(Clock::time_point now) {
  std::vector<std::pair<std::string, std::uint64_t>> due;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (now - it->second.since < window_) {
      ++it;
      continue;
    }
    if (it->second.held > 0) due.emplace_back(it->first, it->second.held);
    it = entries_.erase(it);
  }
  return due;
}

void SetupLogging(const config::LogOptions& options) {
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>("zguard", sink);
  if (options.format == config::LogFormat::kJson) {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ %v");
  }
  logger->set_level(spdlog::level::from_str(options.level));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace zguard
