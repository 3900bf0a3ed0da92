// YAML → Config with complete, located diagnostics. The walk never stops at
// the first problem: each section is read independently, bad values fall back
// to defaults so that later checks still run, and cross-field rules are a
// separate pass at the end.
#include "config.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include "broker/auth/access_rules.hpp"
#include "broker/auth/address_rules.hpp"
#include "units.hpp"

namespace zguard::config {
namespace {

constexpr int kMaxIoThreads = 64;
constexpr std::uint64_t kMaxMessageSizeLimit = 1ULL << 30;  // 1GiB
constexpr std::uint64_t kMaxFramesLimit = 65536;

std::string Quote(std::string_view text) {
  std::string out = "\"";
  out.append(text);
  out += '"';
  return out;
}

// Collects diagnostics while walking one YAML document.
class Reader {
 public:
  Reader(std::string file, std::string base_dir)
      : file_(std::move(file)), base_dir_(std::move(base_dir)) {}

  // A path from the config, relative to the config file's folder unless absolute.
  std::string Resolve(const std::string& path) const {
    if (path.empty() || path.front() == '/' || base_dir_.empty()) return path;
    return base_dir_ + "/" + path;
  }

  void Error(const YAML::Node& at, const std::string& key, std::string message) {
    errors_.push_back(Make(at, key, std::move(message)));
  }
  void Warning(const YAML::Node& at, const std::string& key, std::string message) {
    warnings_.push_back(Make(at, key, std::move(message)));
  }
  void ErrorAtMark(const YAML::Mark& mark, const std::string& key, std::string message) {
    errors_.push_back(Diagnostic{file_, mark.line + 1, mark.column + 1, key, std::move(message)});
  }

  // Checks that `node` is a map whose keys are all in `allowed`; reports
  // unknown and repeated keys. Returns false if `node` is not a map.
  bool CheckMap(const YAML::Node& node, const std::string& path,
                std::initializer_list<std::string_view> allowed) {
    if (!node.IsMap()) {
      Error(node, path, "expected a mapping (key: value)");
      return false;
    }
    std::set<std::string> seen;
    for (const auto& item : node) {
      const auto key = item.first.Scalar();
      std::string where = path;
      if (!where.empty()) where += '.';
      where += key;
      if (!seen.insert(key).second) {
        Error(item.first, where, "key given more than once");
      }
      if (allowed.size() != 0 && std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        std::string list;
        for (const auto& name : allowed) {
          if (!list.empty()) list += ", ";
          list += name;
        }
        Error(item.first, where, "unknown key (expected one of: " + list + ")");
      }
    }
    return true;
  }

  // Scalar readers: leave `out` unchanged on error.
  void ReadInt(const YAML::Node& node, const std::string& key, int min, int max, int& out) {
    if (!node) return;
    int value = 0;
    const std::string& text = node.Scalar();
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (!node.IsScalar() || ec != std::errc() || ptr != text.data() + text.size()) {
      Error(node, key, "expected an integer, got " + Describe(node));
    } else if (value < min || value > max) {
      Error(node, key,
            "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " +
                text);
    } else {
      out = value;
    }
  }

  void ReadCount(const YAML::Node& node, const std::string& key, std::uint64_t min,
                 std::uint64_t& out) {
    if (!node) return;
    std::uint64_t value = 0;
    const std::string& text = node.Scalar();
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (!node.IsScalar() || ec != std::errc() || ptr != text.data() + text.size()) {
      Error(node, key, "expected a whole number, got " + Describe(node));
    } else if (value < min) {
      Error(node, key, "must be at least " + std::to_string(min) + ", got " + text);
    } else {
      out = value;
    }
  }

  void ReadBool(const YAML::Node& node, const std::string& key, bool& out) {
    if (!node) return;
    const std::string& text = node.Scalar();
    if (node.IsScalar() && (text == "true" || text == "false")) {
      out = text == "true";
    } else {
      Error(node, key, "expected true or false, got " + Describe(node));
    }
  }

  void ReadDuration(const YAML::Node& node, const std::string& key, Duration min, Duration& out) {
    constexpr Duration kMax{24LL * 3600 * 1000};  // one day; beyond it, surely a typo
    if (!node) return;
    const auto value = node.IsScalar() ? ParseDuration(node.Scalar()) : std::nullopt;
    if (!value) {
      Error(node, key, "expected a duration such as 2500ms, 30s, 5m or 1h, got " + Describe(node));
    } else if (*value < min || *value > kMax) {
      Error(node, key,
            "must be between " + FormatDuration(min) + " and " + FormatDuration(kMax) + ", got " +
                node.Scalar());
    } else {
      out = *value;
    }
  }

  void ReadSize(const YAML::Node& node, const std::string& key, std::uint64_t min,
                std::uint64_t max, std::uint64_t& out) {
    if (!node) return;
    const auto value = node.IsScalar() ? ParseSize(node.Scalar()) : std::nullopt;
    if (!value) {
      Error(node, key, "expected a size such as 1024, 64KiB or 1MiB, got " + Describe(node));
    } else if (*value < min || *value > max) {
      Error(node, key,
            "must be between " + FormatSize(min) + " and " + FormatSize(max) + ", got " +
                node.Scalar());
    } else {
      out = *value;
    }
  }

  // Reads a string that must be one of `choices`; returns its index or -1.
  int ReadChoice(const YAML::Node& node, const std::string& key,
                 std::initializer_list<std::string_view> choices) {
    if (!node) return -1;
    int index = 0;
    for (const auto& choice : choices) {
      if (node.IsScalar() && node.Scalar() == choice) return index;
      ++index;
    }
    std::string list;
    for (const auto& choice : choices) {
      if (!list.empty()) list += " | ";
      list += choice;
    }
    Error(node, key, "expected " + list + ", got " + Describe(node));
    return -1;
  }

  std::optional<std::string> ReadString(const YAML::Node& node, const std::string& key) {
    if (!node) return std::nullopt;
    if (!node.IsScalar()) {
      Error(node, key, "expected a string, got " + Describe(node));
      return std::nullopt;
    }
    return node.Scalar();
  }

  static std::string Describe(const YAML::Node& node) {
    if (node.IsScalar()) return Quote(node.Scalar());
    if (node.IsMap()) return "a mapping";
    if (node.IsSequence()) return "a list";
    return "nothing";
  }

  const std::string& file() const { return file_; }
  std::vector<Diagnostic>& errors() { return errors_; }
  std::vector<Diagnostic>& warnings() { return warnings_; }

 private:
  Diagnostic Make(const YAML::Node& at, const std::string& key, std::string message) const {
    const YAML::Mark mark = at ? at.Mark() : YAML::Mark::null_mark();
    // yaml-cpp marks a node that does not exist with -1.
    const int line = mark.line >= 0 ? mark.line + 1 : 0;
    const int column = mark.column >= 0 ? mark.column + 1 : 0;
    return Diagnostic{file_, line, column, key, std::move(message)};
  }

  std::string file_;
  std::string base_dir_;
  std::vector<Diagnostic> errors_;
  std::vector<Diagnostic> warnings_;
};

// Explains why `path` is not an existing, readable file (or folder).
std::optional<std::string> CheckPath(const std::string& path, bool want_dir) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status))
    return "no such " + std::string(want_dir ? "folder" : "file") + ": " + path;
  if (want_dir && !std::filesystem::is_directory(status)) return "not a folder: " + path;
  if (!want_dir && !std::filesystem::is_regular_file(status)) return "not a regular file: " + path;
  if (access(path.c_str(), want_dir ? (R_OK | X_OK) : R_OK) != 0) {
    return "cannot read " + path + ": " + std::strerror(errno);
  }
  return std::nullopt;
}

bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
  });
}

void ReadBroker(Reader& r, const YAML::Node& node, BrokerOptions& out) {
  if (!node ||
      !r.CheckMap(node, "broker",
                  {"io_threads", "heartbeat_interval", "heartbeat_liveness", "request_timeout",
                   "max_message_size", "shutdown_grace", "unknown_service", "max_queued_requests",
                   "auth_failure_limit", "auth_failure_window", "auth_cooldown",
                   "handshake_timeout", "send_queue", "max_frames", "undeclared_services",
                   "max_undeclared_services", "service_retention"})) {
    return;
  }
  r.ReadInt(node["io_threads"], "broker.io_threads", 1, kMaxIoThreads, out.io_threads);
  r.ReadDuration(node["heartbeat_interval"], "broker.heartbeat_interval", Duration(10),
                 out.heartbeat_interval);
  r.ReadInt(node["heartbeat_liveness"], "broker.heartbeat_liveness", 1, 100,
            out.heartbeat_liveness);
  r.ReadDuration(node["request_timeout"], "broker.request_timeout", Duration(1),
                 out.request_timeout);
  r.ReadSize(node["max_message_size"], "broker.max_message_size", 1, kMaxMessageSizeLimit,
             out.max_message_size);
  r.ReadDuration(node["shutdown_grace"], "broker.shutdown_grace", Duration(0), out.shutdown_grace);
  const int unknown =
      r.ReadChoice(node["unknown_service"], "broker.unknown_service", {"reject", "queue"});
  if (unknown >= 0) out.unknown_service = static_cast<UnknownService>(unknown);
  r.ReadCount(node["max_queued_requests"], "broker.max_queued_requests", 1,
              out.max_queued_requests);
  r.ReadCount(node["max_frames"], "broker.max_frames", 1, out.max_frames);
  if (out.max_frames > kMaxFramesLimit) {
    r.Error(node["max_frames"], "broker.max_frames",
            "must be at most " + std::to_string(kMaxFramesLimit));
    out.max_frames = kMaxFramesLimit;
  }
  const int undeclared = r.ReadChoice(node["undeclared_services"], "broker.undeclared_services",
                                      {"allow", "deny"});
  if (undeclared >= 0) out.undeclared_services = static_cast<UndeclaredServices>(undeclared);
  r.ReadCount(node["max_undeclared_services"], "broker.max_undeclared_services", 0,
              out.max_undeclared_services);
  r.ReadDuration(node["service_retention"], "broker.service_retention", Duration(0),
                 out.service_retention);
  r.ReadInt(node["auth_failure_limit"], "broker.auth_failure_limit", 0, 1'000'000,
            out.auth_failure_limit);
  r.ReadDuration(node["auth_failure_window"], "broker.auth_failure_window", Duration(1),
                 out.auth_failure_window);
  r.ReadDuration(node["auth_cooldown"], "broker.auth_cooldown", Duration(1), out.auth_cooldown);
  r.ReadDuration(node["handshake_timeout"], "broker.handshake_timeout", Duration(100),
                 out.handshake_timeout);
  std::uint64_t send_queue = out.send_queue;
  r.ReadCount(node["send_queue"], "broker.send_queue", 1, send_queue);
  if (send_queue > static_cast<std::uint64_t>(std::numeric_limits<int>::max())) {
    r.Error(node["send_queue"], "broker.send_queue",
            "must be at most " + std::to_string(std::numeric_limits<int>::max()));
  } else {
    out.send_queue = send_queue;
  }
}

void ReadLog(Reader& r, const YAML::Node& node, LogOptions& out) {
  if (!node || !r.CheckMap(node, "log", {"level", "format"})) return;
  static constexpr std::array<std::string_view, 7> kLevels = {"trace", "debug",    "info", "warn",
                                                              "error", "critical", "off"};
  const int level = r.ReadChoice(
      node["level"], "log.level",
      {kLevels[0], kLevels[1], kLevels[2], kLevels[3], kLevels[4], kLevels[5], kLevels[6]});
  if (level >= 0) out.level = std::string(kLevels[static_cast<std::size_t>(level)]);
  const int format = r.ReadChoice(node["format"], "log.format", {"text", "json"});
  if (format >= 0) out.format = static_cast<LogFormat>(format);
}

void ReadEndpoints(Reader& r, const YAML::Node& node, std::vector<EndpointConfig>& out) {
  if (!node) {
    r.Error(node, "endpoints", "missing: at least one clients and one workers endpoint");
    return;
  }
  if (!node.IsSequence()) {
    r.Error(node, "endpoints", "expected a list of endpoints");
    return;
  }
  for (std::size_t i = 0; i < node.size(); ++i) {
    const YAML::Node item = node[i];
    const std::string path = "endpoints[" + std::to_string(i) + "]";
    if (!r.CheckMap(item, path,
                    {"name", "bind", "role", "profile", "allow_insecure", "allow", "deny",
                     "passwords", "allow_plaintext_passwords", "certificates", "revoked", "key"})) {
      out.emplace_back();  // keep indexes aligned with the YAML list
      continue;
    }
    EndpointConfig endpoint;
    endpoint.line = item.Mark().line + 1;
    for (const char* required : {"name", "bind", "role", "profile"}) {
      if (!item[required]) r.Error(item, path + "." + required, "missing required key");
    }
    if (auto name = r.ReadString(item["name"], path + ".name")) {
      if (!IsValidName(*name)) {
        r.Error(item["name"], path + ".name",
                "must be 1-64 characters of letters, digits, '-', '_' or '.', got " + Quote(*name));
      }
      endpoint.name = *name;
    }
    if (auto bind = r.ReadString(item["bind"], path + ".bind")) {
      if (auto problem = CheckBindAddress(*bind)) {
        r.Error(item["bind"], path + ".bind", *problem);
      } else {
        endpoint.bind = *bind;  // only valid binds take part in the cross-field checks
      }
    }
    const int role = r.ReadChoice(item["role"], path + ".role", {"clients", "workers"});
    if (role >= 0) endpoint.role = static_cast<Role>(role);
    const YAML::Node profile_node = item["profile"];
    const std::string profile_text =
        profile_node && profile_node.IsScalar() ? profile_node.Scalar() : "";
    if (profile_text == "gssapi" || profile_text == "GSSAPI") {
      r.Error(profile_node, path + ".profile",
              "GSSAPI is not supported: libzmq's GSSAPI mechanism ignores ZAP denials");
    } else if (profile_text == "null" || profile_text == "plain" || profile_text == "curve") {
      r.Error(profile_node, path + ".profile",
              "profiles are named after the security patterns: null -> grasslands or strawhouse, "
              "plain -> woodhouse, curve -> stonehouse or ironhouse");
    } else {
      const int profile =
          r.ReadChoice(profile_node, path + ".profile",
                       {"grasslands", "strawhouse", "woodhouse", "stonehouse", "ironhouse"});
      if (profile >= 0) endpoint.profile = static_cast<Profile>(profile);
    }
    r.ReadBool(item["allow_insecure"], path + ".allow_insecure", endpoint.allow_insecure);
    for (const char* list : {"allow", "deny"}) {
      const YAML::Node node = item[list];
      if (!node) continue;
      auto& out_list = std::string_view(list) == "allow" ? endpoint.allow : endpoint.deny;
      endpoint.lines[list] = node.Mark().line + 1;
      const std::string key = path + "." + list;
      if (!node.IsSequence()) {
        r.Error(node, key,
                "expected a list of addresses or CIDR ranges, e.g. [127.0.0.1, 10.0.0.0/8]");
        continue;
      }
      for (std::size_t j = 0; j < node.size(); ++j) {
        const std::string item_key = key + "[" + std::to_string(j) + "]";
        auto text = r.ReadString(node[j], item_key);
        if (!text) continue;
        std::string problem;
        if (!auth::AddressRange::Parse(*text, &problem)) {
          r.Error(node[j], item_key, problem);
        } else {
          out_list.push_back(*text);
        }
      }
    }
    for (const char* file_key : {"passwords", "certificates", "revoked", "key"}) {
      if (auto value = r.ReadString(item[file_key], path + "." + file_key)) {
        endpoint.lines[file_key] = item[file_key].Mark().line + 1;
        std::string resolved = r.Resolve(*value);
        if (std::string_view(file_key) == "passwords") endpoint.passwords = resolved;
        if (std::string_view(file_key) == "certificates") endpoint.certificates = resolved;
        if (std::string_view(file_key) == "revoked") endpoint.revoked = resolved;
        if (std::string_view(file_key) == "key") endpoint.key = resolved;
        const bool want_dir = std::string_view(file_key) == "certificates";
        if (auto problem = CheckPath(resolved, want_dir)) {
          r.Error(item[file_key], path + "." + file_key, *problem);
        }
      }
    }
    r.ReadBool(item["allow_plaintext_passwords"], path + ".allow_plaintext_passwords",
               endpoint.allow_plaintext_passwords);
    out.push_back(std::move(endpoint));
  }
}

void ReadMetrics(Reader& r, const YAML::Node& node, MetricsConfig& out) {
  if (!node) return;
  out.enabled = true;  // a metrics: section turns them on unless it says otherwise
  out.line = node.Mark().line + 1;
  if (node.IsNull() || !r.CheckMap(node, "metrics", {"enabled", "listen"})) return;
  r.ReadBool(node["enabled"], "metrics.enabled", out.enabled);
  if (auto listen = r.ReadString(node["listen"], "metrics.listen")) {
    const auto colon = listen->rfind(':');
    const std::string port = colon == std::string::npos ? "" : listen->substr(colon + 1);
    const bool port_ok = !port.empty() && port.size() <= 5 &&
                         port.find_first_not_of("0123456789") == std::string::npos &&
                         std::stoi(port) <= 65535;
    if (colon == std::string::npos || colon == 0 || !port_ok) {
      r.Error(node["listen"], "metrics.listen",
              "expected HOST:PORT such as 127.0.0.1:9464 (port 0 picks a free one), got " +
                  Quote(*listen));
    } else {
      out.listen = *listen;
      const std::string host = listen->substr(0, colon);
      if (host.front() == '[') {
        // Debian's civetweb is built without IPv6 listening.
        r.Error(node["listen"], "metrics.listen",
                "IPv6 addresses are not supported for the metrics server; use 127.0.0.1 or "
                "0.0.0.0, got " +
                    Quote(*listen));
      }
      if (out.enabled && host != "127.0.0.1" && host != "[::1]" && host != "localhost") {
        r.Warning(node["listen"], "metrics.listen",
                  "metrics served on a non-loopback address: anyone who can reach it sees "
                  "endpoint and service names and traffic figures");
      }
    }
  }
}

void ReadKeys(Reader& r, const YAML::Node& node, KeysConfig& out) {
  if (!node || !r.CheckMap(node, "keys", {"broker"})) return;
  if (auto broker = r.ReadString(node["broker"], "keys.broker")) {
    out.broker = r.Resolve(*broker);
    out.line = node["broker"].Mark().line + 1;
    if (auto problem = CheckPath(out.broker, false))
      r.Error(node["broker"], "keys.broker", *problem);
  }
}

void ReadServices(Reader& r, const YAML::Node& node,
                  std::map<std::string, ServiceConfig, std::less<>>& out) {
  if (!node || node.IsNull()) return;
  if (!r.CheckMap(node, "services", {})) return;
  for (const auto& item : node) {
    const std::string name = item.first.Scalar();
    const std::string path = "services." + name;
    if (!IsValidName(name)) {
      r.Error(item.first, path,
              "service names are 1-64 characters of letters, digits, '-', '_' or '.'");
    } else if (name.rfind("mmi.", 0) == 0) {
      r.Error(item.first, path, "names starting with \"mmi.\" are reserved for MMI (RFC 8)");
    }
    ServiceConfig service;
    const YAML::Node body = item.second;
    if (!body.IsNull() && r.CheckMap(body, path,
                                     {"redispatch", "request_timeout", "max_queued_requests",
                                      "clients", "workers", "forward_identity"})) {
      r.ReadBool(body["forward_identity"], path + ".forward_identity", service.forward_identity);
      for (const char* list : {"clients", "workers"}) {
        const YAML::Node node = body[list];
        if (!node) continue;
        const bool clients = std::string_view(list) == "clients";
        (clients ? service.clients_set : service.workers_set) = true;
        auto& entries = clients ? service.clients : service.workers;
        const std::string key = path + "." + list;
        if (!node.IsSequence()) {
          r.Error(node, key, R"(expected a list, e.g. ["role:ops", "user:alice", "*"])");
          continue;
        }
        for (std::size_t j = 0; j < node.size(); ++j) {
          const std::string entry_key = key + "[" + std::to_string(j) + "]";
          auto entry = r.ReadString(node[j], entry_key);
          if (!entry) continue;
          auth::AccessList probe;
          if (auto problem = probe.Add(*entry)) {
            r.Error(node[j], entry_key, *problem + ", got " + Quote(*entry));
          } else {
            entries.push_back(*entry);
          }
        }
      }
      r.ReadBool(body["redispatch"], path + ".redispatch", service.redispatch);
      if (body["request_timeout"]) {
        Duration timeout{0};
        r.ReadDuration(body["request_timeout"], path + ".request_timeout", Duration(1), timeout);
        if (timeout.count() > 0) service.request_timeout = timeout;
      }
      if (body["max_queued_requests"]) {
        std::uint64_t limit = 0;
        r.ReadCount(body["max_queued_requests"], path + ".max_queued_requests", 1, limit);
        if (limit > 0) service.max_queued_requests = limit;
      }
      // Restricting who may call a service, or telling its workers who calls, protects
      // nothing while any worker on any workers endpoint (grasslands included) may serve it.
      if ((service.clients_set || service.forward_identity) && !service.workers_set) {
        r.Error(item.first, path + ".workers",
                std::string(service.clients_set ? "has a clients: rule" : "forwards identities") +
                    " but no workers: rule, so any worker on any workers endpoint could serve it" +
                    (service.forward_identity ? " and see who calls it" : "") +
                    "; say who may serve it (workers: [\"role:NAME\", ...], or [\"*\"] for any "
                    "worker, explicitly)");
      }
    }
    out[name] = service;
  }
}

// The keys each profile needs, and refuses, and the unsafe combinations.
void CheckProfile(Reader& r, const YAML::Node& root, const YAML::Node& item,
                  const std::string& path, const EndpointConfig& endpoint) {
  const YAML::Node profile_node = item["profile"];
  if (!profile_node || !profile_node.IsScalar()) return;
  const std::string& profile = profile_node.Scalar();
  static constexpr std::array<std::string_view, 5> kProfiles = {
      "grasslands", "strawhouse", "woodhouse", "stonehouse", "ironhouse"};
  if (std::find(kProfiles.begin(), kProfiles.end(), profile) == kProfiles.end()) return;
  const bool null_mechanism = profile == "grasslands" || profile == "strawhouse";
  const bool public_bind = !endpoint.bind.empty() && !IsLoopbackBind(endpoint.bind);
  if (null_mechanism && public_bind) {
    if (endpoint.allow_insecure) {
      r.Warning(item["bind"], path + ".bind",
                profile +
                    " (no encryption, no credentials) on a non-loopback address: anyone "
                    "who can reach " +
                    endpoint.bind + " can use it" +
                    (profile == "strawhouse" ? " unless the address rules stop them" : ""));
    } else {
      r.Error(profile_node, path + ".profile",
              profile + " (no security) on non-loopback address " + Quote(endpoint.bind) +
                  " needs allow_insecure: true");
    }
  }
  if (profile == "woodhouse" && public_bind) {
    r.Warning(profile_node, path + ".profile",
              "woodhouse (PLAIN) on non-loopback address " + Quote(endpoint.bind) +
                  " sends passwords in clear text; prefer stonehouse or ironhouse");
  }
  auto refuse = [&](const char* key, const char* only) {
    if (item[key])
      r.Error(item[key], path + "." + key,
              std::string("only used by ") + only + " endpoints, not " + profile);
  };
  auto require = [&](const char* key, const char* what) {
    if (!item[key]) r.Error(profile_node, path + "." + key, profile + " needs " + what);
  };
  if ((item["allow"] || item["deny"]) && endpoint.bind.rfind("ipc://", 0) == 0) {
    r.Error(item["allow"] ? item["allow"] : item["deny"],
            path + (item["allow"] ? ".allow" : ".deny"),
            "address rules need a tcp:// endpoint: ipc:// peers have no IP address");
  }
  if (profile == "grasslands") {
    if (item["allow"] || item["deny"]) {
      r.Error(item["allow"] ? item["allow"] : item["deny"],
              path + (item["allow"] ? ".allow" : ".deny"),
              "grasslands makes no ZAP call, so address rules would be ignored: use strawhouse");
    }
  }
  if (profile == "woodhouse") {
    require("passwords", "passwords: a password file (zguard passwd FILE USER)");
  } else {
    refuse("passwords", "woodhouse");
    refuse("allow_plaintext_passwords", "woodhouse");
  }
  if (profile == "ironhouse") {
    require("certificates", "certificates: a folder of client public certificates");
  } else {
    refuse("certificates", "ironhouse");
  }
  if (profile == "stonehouse" || profile == "ironhouse") {
    const YAML::Node keys = root["keys"];
    if (!item["key"] && !(keys && keys.IsMap() && keys["broker"])) {
      r.Error(profile_node, path + ".key",
              profile +
                  " needs the broker's secret certificate: set key: here or keys.broker "
                  "(zguard keygen broker)");
    }
  } else {
    refuse("key", "stonehouse and ironhouse");
    refuse("revoked", "stonehouse and ironhouse");
  }
}

// Rules that span several keys.
void CrossCheck(Reader& r, const YAML::Node& root, Config& config) {
  const YAML::Node endpoints = root["endpoints"];
  std::map<std::string, std::size_t> names;
  std::map<std::string, std::size_t> binds;
  bool has_clients = false;
  bool has_workers = false;
  for (std::size_t i = 0; i < config.endpoints.size(); ++i) {
    const auto& endpoint = config.endpoints[i];
    const YAML::Node item = endpoints[i];
    const std::string path = "endpoints[" + std::to_string(i) + "]";
    if (!item.IsMap()) continue;
    if (!endpoint.name.empty() && !names.emplace(endpoint.name, i).second) {
      r.Error(item["name"], path + ".name",
              "duplicate endpoint name " + Quote(endpoint.name) + " (also endpoints[" +
                  std::to_string(names[endpoint.name]) + "])");
    }
    const bool ephemeral = endpoint.bind.rfind("tcp://", 0) == 0 && endpoint.bind.size() > 2 &&
                           (endpoint.bind.compare(endpoint.bind.size() - 2, 2, ":*") == 0 ||
                            endpoint.bind.compare(endpoint.bind.size() - 2, 2, ":0") == 0);
    if (!endpoint.bind.empty() && !ephemeral && !binds.emplace(endpoint.bind, i).second) {
      r.Error(item["bind"], path + ".bind",
              "duplicate bind address " + Quote(endpoint.bind) + " (also endpoints[" +
                  std::to_string(binds[endpoint.bind]) + "])");
    }
    has_clients |= item["role"] && endpoint.role == Role::kClients;
    has_workers |= item["role"] && endpoint.role == Role::kWorkers;
    CheckProfile(r, root, item, path, endpoint);
  }
  if (endpoints && endpoints.IsSequence()) {
    if (!has_clients) r.Error(endpoints, "endpoints", "no endpoint with role: clients");
    if (!has_workers) r.Error(endpoints, "endpoints", "no endpoint with role: workers");
  }
}

LoadResult Load(Reader& r, const std::function<YAML::Node()>& parse) {
  LoadResult result;
  YAML::Node root;
  try {
    root = parse();
  } catch (const YAML::ParserException& e) {
    r.ErrorAtMark(e.mark, "", "YAML syntax error: " + e.msg);
  } catch (const YAML::BadFile&) {
    r.errors().push_back(Diagnostic{r.file(), 0, 0, "", "cannot read file"});
  }
  if (r.errors().empty()) {
    Config config;
    config.path = r.file();
    if (!root || root.IsNull()) {
      r.errors().push_back(Diagnostic{r.file(), 1, 1, "", "the config file is empty"});
    } else if (r.CheckMap(root, "",
                          {"broker", "log", "keys", "metrics", "endpoints", "services"})) {
      ReadMetrics(r, root["metrics"], config.metrics);
      ReadBroker(r, root["broker"], config.broker);
      ReadLog(r, root["log"], config.log);
      ReadKeys(r, root["keys"], config.keys);
      ReadEndpoints(r, root["endpoints"], config.endpoints);
      ReadServices(r, root["services"], config.services);
      CrossCheck(r, root, config);
    }
    if (r.errors().empty()) result.config = std::move(config);
  }
  std::stable_sort(r.errors().begin(), r.errors().end(),
                   [](const Diagnostic& a, const Diagnostic& b) { return a.line < b.line; });
  result.errors = std::move(r.errors());
  result.warnings = std::move(r.warnings());
  return result;
}

bool ParsePort(std::string_view text) {
  if (text == "*" || text == "0") return true;
  int port = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
  return ec == std::errc() && ptr == text.data() + text.size() && port >= 1 && port <= 65535;
}

}  // namespace

std::string Diagnostic::ToString() const {
  std::ostringstream out;
  out << file;
  if (line > 0) out << ':' << line << ':' << column;
  out << ": ";
  if (!key.empty()) out << key << ": ";
  out << message;
  return out.str();
}

std::optional<std::string> CheckBindAddress(std::string_view bind) {
  const std::string got = ", got " + Quote(bind);
  if (bind.rfind("ipc://", 0) == 0) {
    if (bind.size() == 6) return "ipc:// needs a path" + got;
    return std::nullopt;
  }
  if (bind.rfind("tcp://", 0) != 0) return "expected tcp://HOST:PORT or ipc://PATH" + got;
  const std::string_view rest = bind.substr(6);
  const auto colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return "expected tcp://HOST:PORT (HOST an address, interface or *)" + got;
  }
  std::string_view host = rest.substr(0, colon);
  if (!ParsePort(rest.substr(colon + 1))) return "port must be 1-65535, * or 0" + got;
  if (host.front() == '[') {
    if (host.back() != ']' || host.size() < 3) return "unterminated IPv6 address" + got;
    return std::nullopt;
  }
  if (host.find(':') != std::string_view::npos) {
    return "IPv6 addresses must be written in brackets, e.g. tcp://[::1]:5555" + got;
  }
  std::string lower(host);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "localhost") {
    return "libzmq binds to addresses and interface names, not host names: use 127.0.0.1 or "
           "[::1]" +
           got;
  }
  return std::nullopt;
}

bool IsLoopbackBind(std::string_view bind) {
  if (bind.rfind("ipc://", 0) == 0) return true;
  if (bind.rfind("tcp://", 0) != 0) return false;
  const std::string_view rest = bind.substr(6);
  const auto colon = rest.rfind(':');
  const std::string_view host = rest.substr(0, colon);
  return host.rfind("127.", 0) == 0 || host == "[::1]" || host == "lo";
}

std::string_view ToString(Role role) { return role == Role::kClients ? "clients" : "workers"; }
std::string_view ToString(Profile profile) {
  switch (profile) {
    case Profile::kGrasslands:
      return "grasslands";
    case Profile::kStrawhouse:
      return "strawhouse";
    case Profile::kWoodhouse:
      return "woodhouse";
    case Profile::kStonehouse:
      return "stonehouse";
    case Profile::kIronhouse:
      return "ironhouse";
  }
  return "unknown";
}

LoadResult LoadConfigFile(const std::string& path) {
  const auto parent = std::filesystem::path(path).parent_path().string();
  Reader reader(path, parent.empty() ? "." : parent);
  return Load(reader, [&] {
    std::ifstream in(path);
    if (!in) throw YAML::BadFile(path);
    return YAML::Load(in);
  });
}

LoadResult LoadConfigString(std::string_view yaml, const std::string& name,
                            const std::string& base_dir) {
  Reader reader(name, base_dir);
  return Load(reader, [&] { return YAML::Load(std::string(yaml)); });
}

}  // namespace zguard::config
