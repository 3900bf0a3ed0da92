// Building the policy from files, and the ZAP decision. See policy.hpp.
#include "broker/auth/policy.hpp"

#include <zmq.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "proto/zpl.hpp"

namespace zguard::auth {
namespace {

constexpr std::size_t kMaxRevocationFile = 16U << 20;

std::string Trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())) != 0) {
    text.remove_prefix(1);
  }
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0) {
    text.remove_suffix(1);
  }
  return std::string(text);
}

bool ParseInt(std::string_view text, int& out) {
  if (text.empty()) return false;
  int value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  out = value;
  return true;
}

// Loads the secret certificate of a CURVE endpoint.
std::optional<ServerKey> LoadServerKey(const std::string& path, const std::string& config_file,
                                       int line, const std::string& key,
                                       std::vector<config::Diagnostic>& errors) {
  if (auto problem = proto::CheckSecretFilePermissions(path)) {
    errors.push_back({config_file, line, 1, key, *problem});
    return std::nullopt;
  }
  const auto loaded = proto::LoadCertificateFile(path);
  if (!loaded.certificate) {
    errors.push_back({path, loaded.line, 1, key, loaded.error});
    return std::nullopt;
  }
  if (loaded.certificate->secret_key.empty()) {
    errors.push_back({path, 0, 0, key,
                      "has no secret-key: point to the *_secret file that zguard keygen "
                      "(or zcert/zmq.auth) wrote"});
    return std::nullopt;
  }
  return ServerKey{loaded.certificate->public_key, loaded.certificate->secret_key};
}

std::string EncodeZ85Key(std::string_view binary) {
  std::array<char, 41> text{};
  zmq_z85_encode(text.data(), reinterpret_cast<const std::uint8_t*>(binary.data()), 32);
  return std::string(text.data(), 40);
}

}  // namespace

std::optional<SystemClock::time_point> ParseIsoTime(std::string_view text) {
  // YYYY-MM-DD[THH:MM:SS[.fff](Z|+HH:MM|-HH:MM)]
  if (text.size() < 10 || text[4] != '-' || text[7] != '-') return std::nullopt;
  std::tm tm{};
  int year = 0;
  int month = 0;
  int day = 0;
  if (!ParseInt(text.substr(0, 4), year) || !ParseInt(text.substr(5, 2), month) ||
      !ParseInt(text.substr(8, 2), day) || month < 1 || month > 12 || day < 1 || day > 31) {
    return std::nullopt;
  }
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  long offset_seconds = 0;
  std::string_view rest = text.substr(10);
  if (!rest.empty()) {
    if ((rest[0] != 'T' && rest[0] != ' ') || rest.size() < 9 || rest[3] != ':' || rest[6] != ':') {
      return std::nullopt;
    }
    int hour = 0;
    int minute = 0;
    int second = 0;
    if (!ParseInt(rest.substr(1, 2), hour) || !ParseInt(rest.substr(4, 2), minute) ||
        !ParseInt(rest.substr(7, 2), second) || hour > 23 || minute > 59 || second > 60) {
      return std::nullopt;
    }
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    rest.remove_prefix(9);
    if (!rest.empty() && rest[0] == '.') {
      rest.remove_prefix(1);
      while (!rest.empty() && rest[0] >= '0' && rest[0] <= '9') rest.remove_prefix(1);
    }
    if (rest == "Z") {
      rest = {};
    } else if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':') {
      int oh = 0;
      int om = 0;
      if (!ParseInt(rest.substr(1, 2), oh) || !ParseInt(rest.substr(4, 2), om) || oh > 23 ||
          om > 59) {
        return std::nullopt;
      }
      offset_seconds = (rest[0] == '+' ? 1 : -1) * (oh * 3600L + om * 60L);
      rest = {};
    }
    if (!rest.empty()) return std::nullopt;
  }
  const std::tm wanted = tm;
  const std::time_t seconds = timegm(&tm);
  if (seconds == static_cast<std::time_t>(-1)) return std::nullopt;
  // timegm normalises 2027-02-31 into March: refuse dates that do not exist.
  if (tm.tm_mday != wanted.tm_mday || tm.tm_mon != wanted.tm_mon) return std::nullopt;
  // The clock counts nanoseconds in 64 bits (years 1678 to 2262): refuse what it cannot hold
  // rather than overflow (found by tests/fuzz/fuzz_auth_files).
  using Seconds = std::chrono::seconds;
  const auto limit = std::chrono::duration_cast<Seconds>(SystemClock::duration::max()).count();
  const auto utc = static_cast<long long>(seconds) - offset_seconds;
  if (utc >= limit || utc <= -limit) return std::nullopt;
  return SystemClock::time_point(std::chrono::duration_cast<SystemClock::duration>(Seconds(utc)));
}

CertificateStore LoadCertificateStore(const std::string& folder) {
  CertificateStore store;
  std::error_code ec;
  std::vector<std::filesystem::path> files;
  for (std::filesystem::directory_iterator it(folder, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->is_regular_file(ec)) files.push_back(it->path());
  }
  if (ec) {
    store.error = config::Diagnostic{folder, 0, 0, "", "cannot read folder: " + ec.message()};
    return store;
  }
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    const std::string file = path.string();
    const std::string name = path.filename().string();
    if (name.size() >= 7 && name.compare(name.size() - 7, 7, "_secret") == 0) {
      store.warnings.push_back({file, 0, 0, "",
                                "secret certificate in a certificate store: skipped (a store "
                                "holds public certificates only; move it away)"});
      continue;
    }
    if (name.front() == '.') continue;  // editor and tool droppings
    const auto loaded = proto::LoadCertificateFile(file);
    if (!loaded.certificate) {
      store.warnings.push_back({file, loaded.line, 1, "", "skipped: " + loaded.error});
      continue;
    }
    CertificateInfo info;
    info.name = loaded.certificate->Meta("name");
    info.roles = loaded.certificate->Meta("roles");
    info.file = file;
    const std::string expires = loaded.certificate->Meta("expires-at");
    if (!expires.empty()) {
      info.expires_at = ParseIsoTime(expires);
      if (!info.expires_at) {
        store.warnings.push_back(
            {file, 0, 0, "metadata.expires-at",
             "skipped: expires-at \"" + expires +
                 "\" is not an ISO 8601 date or time in the years 1678 to 2262"});
        continue;
      }
    }
    const auto [it, inserted] =
        store.certificates.emplace(loaded.certificate->public_key, std::move(info));
    if (!inserted) {
      store.warnings.push_back(
          {file, 0, 0, "", "same public key as " + it->second.file + ": this copy is ignored"});
    }
  }
  return store;
}

RevocationList ParseRevocationList(std::string_view text, const std::string& file) {
  RevocationList list;
  int line_number = 0;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = std::min(text.find('\n', start), text.size());
    ++line_number;
    // A line is a key, optionally followed by whitespace and a `#` comment;
    // a line whose first non-blank character is `#` is a comment. (`#` is a
    // Z85 character, so it only starts a comment after whitespace.)
    const std::string line = Trim(text.substr(start, end - start));
    const std::string key = line.substr(0, line.find_first_of(" \t"));
    const std::string rest = Trim(std::string_view(line).substr(key.size()));
    if (!line.empty() && line.front() != '#') {
      if (proto::IsZ85Key(key) && (rest.empty() || rest.front() == '#')) {
        list.keys.insert(key);
      } else {
        list.errors.push_back(
            {file, line_number, 1, "", "expected a 40-character Z85 public key per line"});
      }
    }
    if (end == text.size()) break;
    start = end + 1;
  }
  return list;
}

RevocationList LoadRevocationList(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return RevocationList{{}, {{file, 0, 0, "", "cannot read file"}}};
  std::ostringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  if (text.size() > kMaxRevocationFile) {
    return RevocationList{{}, {{file, 0, 0, "", "larger than 16 MiB"}}};
  }
  return ParseRevocationList(text, file);
}

SecurityLoad LoadSecurity(const config::Config& config, bool with_server_keys) {
  SecurityLoad out;
  auto policy = std::make_shared<Policy>();
  out.server_keys.resize(config.endpoints.size());
  for (std::size_t i = 0; i < config.endpoints.size(); ++i) {
    const auto& endpoint = config.endpoints[i];
    const std::string path = "endpoints[" + std::to_string(i) + "]";
    auto line_of = [&](std::string_view key) {
      auto it = endpoint.lines.find(key);
      return it == endpoint.lines.end() ? endpoint.line : it->second;
    };
    if (with_server_keys && endpoint.UsesCurve()) {
      const bool own = !endpoint.key.empty();
      const std::string& file = own ? endpoint.key : config.keys.broker;
      const int line = own ? line_of("key") : config.keys.line;
      if (auto key = LoadServerKey(file, config.path, line, own ? path + ".key" : "keys.broker",
                                   out.errors)) {
        out.server_keys[i] = *key;
      }
    }
    // Every endpoint asks ZAP (grasslands too, which admits everyone: see Router).
    EndpointPolicy ep;
    ep.name = endpoint.name;
    ep.profile = endpoint.profile;
    for (const auto& range : endpoint.allow) {
      if (auto problem = ep.addresses.Allow(range)) {
        out.errors.push_back({config.path, line_of("allow"), 1, path + ".allow", *problem});
      }
    }
    for (const auto& range : endpoint.deny) {
      if (auto problem = ep.addresses.Deny(range)) {
        out.errors.push_back({config.path, line_of("deny"), 1, path + ".deny", *problem});
      }
    }
    if (endpoint.profile == config::Profile::kWoodhouse && !endpoint.passwords.empty()) {
      ep.passwords = LoadPasswordFile(endpoint.passwords, endpoint.allow_plaintext_passwords);
      for (const auto& problem : ep.passwords.errors) {
        out.errors.push_back({endpoint.passwords, problem.line, 1, "", problem.message});
      }
      for (const auto& problem : ep.passwords.warnings) {
        out.warnings.push_back({endpoint.passwords, problem.line, 1, "", problem.message});
      }
      if (ep.passwords.errors.empty() && ep.passwords.users.empty()) {
        out.warnings.push_back({endpoint.passwords, 0, 0, "",
                                "no users: nobody can log in to endpoint " + endpoint.name});
      }
    }
    if (endpoint.profile == config::Profile::kIronhouse && !endpoint.certificates.empty()) {
      auto store = LoadCertificateStore(endpoint.certificates);
      if (store.error) out.errors.push_back(*store.error);
      for (auto& warning : store.warnings) out.warnings.push_back(std::move(warning));
      if (!store.error && store.certificates.empty()) {
        out.warnings.push_back(
            {endpoint.certificates, 0, 0, "",
             "no certificates: nobody can connect to endpoint " + endpoint.name});
      }
      ep.certificates = std::move(store.certificates);
    }
    if (!endpoint.revoked.empty()) {
      auto revoked = LoadRevocationList(endpoint.revoked);
      for (auto& error : revoked.errors) out.errors.push_back(std::move(error));
      ep.revoked = std::move(revoked.keys);
    }
    policy->endpoints.emplace(ep.name, std::move(ep));
  }
  out.policy = std::move(policy);
  // A file shared by several endpoints (keys.broker, a revocation list) is
  // read once per endpoint: report each of its problems once.
  for (auto* list : {&out.errors, &out.warnings}) {
    std::set<std::string> seen;
    list->erase(std::remove_if(
                    list->begin(), list->end(),
                    [&](const config::Diagnostic& d) { return !seen.insert(d.ToString()).second; }),
                list->end());
  }
  return out;
}

const PasswordEntry& DummyPasswordEntry() {
  static const PasswordEntry entry = [] {
    PasswordEntry dummy;
    dummy.user = "";
    dummy.hash = HashPassword("zguard: no such user").value_or("");
    return dummy;
  }();
  return entry;
}

Decision Decide(const Policy& policy, const ZapRequest& request, SystemClock::time_point now) {
  Decision decision;
  auto deny = [&](const char* reason) {
    decision.status = 400;
    decision.reason = reason;
    return decision;
  };
  const auto found = policy.endpoints.find(request.domain);
  if (found == policy.endpoints.end()) return deny("unknown_domain");
  const EndpointPolicy& endpoint = found->second;

  const char* expected = "NULL";
  if (endpoint.profile == config::Profile::kWoodhouse) expected = "PLAIN";
  if (endpoint.profile == config::Profile::kStonehouse ||
      endpoint.profile == config::Profile::kIronhouse) {
    expected = "CURVE";
  }
  if (request.mechanism != expected) return deny("wrong_mechanism");

  if (endpoint.addresses.Check(request.address) == AddressPolicy::Verdict::kDenied) {
    return deny("address_denied");
  }
  if (request.mechanism == "NULL") {
    decision.status = 200;
    decision.reason = "ok";
    decision.user_id = "anonymous";
    return decision;
  }
  if (request.mechanism == "PLAIN") {
    if (request.credentials.size() != 2) return deny("malformed");
    const auto user = endpoint.passwords.users.find(request.credentials[0]);
    decision.user_id = std::string(request.credentials[0]);
    if (user == endpoint.passwords.users.end()) {
      // Hash anyway, against a dummy entry, so that an unknown user takes as
      // long to refuse as a wrong password: the timing tells nothing.
      decision.verify = &DummyPasswordEntry();
      return deny("unknown_user");
    }
    decision.roles.clear();
    for (const auto& role : user->second.roles) {
      if (!decision.roles.empty()) decision.roles += ',';
      decision.roles += role;
    }
    decision.verify = &user->second;
    decision.status = 200;
    decision.reason = "ok";
    return decision;
  }
  // CURVE: the client's long-term public key, 32 bytes.
  if (request.credentials.size() != 1 || request.credentials[0].size() != 32) {
    return deny("malformed");
  }
  decision.key = EncodeZ85Key(request.credentials[0]);
  decision.user_id = decision.key;
  if (endpoint.revoked.count(decision.key) != 0) return deny("revoked");
  if (endpoint.profile == config::Profile::kIronhouse) {
    const auto cert = endpoint.certificates.find(decision.key);
    if (cert == endpoint.certificates.end()) return deny("unknown_key");
    if (!cert->second.name.empty()) decision.user_id = cert->second.name;
    if (cert->second.expires_at && *cert->second.expires_at <= now) return deny("expired");
    decision.roles = cert->second.roles;
  }
  decision.status = 200;
  decision.reason = "ok";
  return decision;
}

}  // namespace zguard::auth
