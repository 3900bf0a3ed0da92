// The broker's configuration as typed structs, and the loader that builds them
// from one YAML file. Loading is strict and complete: every problem in the file
// is collected (unknown keys, wrong types, bad values, cross-field conflicts),
// each with file, line, column and key, before the caller decides to exit.
// Every field documents its default; config/README.md documents the YAML keys.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zguard::config {

using Duration = std::chrono::milliseconds;

enum class Role { kClients, kWorkers };
// Security profiles (see README "Security"): NULL, NULL+ZAP, PLAIN, CURVE, CURVE+ZAP store.
enum class Profile { kGrasslands, kStrawhouse, kWoodhouse, kStonehouse, kIronhouse };
enum class LogFormat { kText, kJson };
// What to do with a request for a service the broker does not know (neither
// declared in `services:` nor registered by a worker and still remembered;
// see TableSettings::service_retention): answer 404 at once, or queue it
// until a worker comes or the request expires.
enum class UnknownService { kReject, kQueue };
// Whether a worker may register (or, with unknown_service: queue, a client create) a service
// that `services:` does not declare. RFC 7 brokers create services as workers register them,
// and zguide-style deployments rely on that, so `allow` is the default; `deny` makes the
// declared services the only ones (recommended where workers are not all trusted; the shipped
// container config uses it).
enum class UndeclaredServices { kAllow, kDeny };

struct BrokerOptions {
  int io_threads = 1;                           // libzmq I/O threads; default 1
  Duration heartbeat_interval{2500};            // default 2500ms
  int heartbeat_liveness = 3;                   // missed heartbeats before a worker is dropped
  Duration request_timeout{10'000};             // default 10s; then the client gets an error
  std::uint64_t max_message_size = 1ULL << 20;  // request/reply body limit; default 1MiB
  // Body frames of one request or reply; more is answered 413. Also bounds what one message
  // costs the broker in frame bookkeeping (about 64 bytes per frame, even an empty one).
  std::uint64_t max_frames = 64;  // default 64
  Duration shutdown_grace{5000};                // drain time on SIGTERM; default 5s
  UnknownService unknown_service = UnknownService::kReject;  // default reject
  std::uint64_t max_queued_requests = 10'000;                // per service; beyond it: 429 busy
  UndeclaredServices undeclared_services = UndeclaredServices::kAllow;  // default allow
  // Undeclared services that may exist at once (each has its own metric series); READY for
  // one more is refused. Default 1000.
  std::uint64_t max_undeclared_services = 1000;
  // How long an undeclared service with no workers and no requests is remembered (requests
  // for it queue meanwhile, with unknown_service: queue); then it and its metric series go.
  Duration service_retention{60'000};  // default 1m
  // After this many failed authentications from one address within
  // auth_failure_window, refuse it without checking for auth_cooldown.
  int auth_failure_limit = 10;           // 0 disables; default 10
  Duration auth_failure_window{60'000};  // default 1m
  Duration auth_cooldown{60'000};        // default 1m
  // A handshake (including the ZAP answer) not finished by then is dropped.
  Duration handshake_timeout{5000};  // default 5s
  // Messages queued for one peer (ZMQ_SNDHWM) before the broker drops more for it, counted
  // in zguard_dropped_messages_total{reason="queue_full"}.
  std::uint64_t send_queue = 100'000;  // default 100000
};

struct LogOptions {
  std::string level = "info";  // trace|debug|info|warn|error|critical|off
  LogFormat format = LogFormat::kText;
};

struct EndpointConfig {
  std::string name;  // unique; later the ZAP domain
  std::string bind;  // tcp://HOST:PORT or ipc://PATH
  Role role = Role::kClients;
  Profile profile = Profile::kGrasslands;
  bool allow_insecure = false;  // required for NULL security on a non-loopback bind
  int line = 0;                 // where the endpoint is declared, for run-time messages

  // Address rules (strawhouse and up): addresses or CIDR ranges. Empty allow = any address.
  std::vector<std::string> allow;
  std::vector<std::string> deny;
  // woodhouse: password file (`user:argon2id-hash[:roles]` lines). Paths are resolved
  // against the config file's folder.
  std::string passwords;
  bool allow_plaintext_passwords = false;  // accept CZMQ `user=password` lines; default false
  // ironhouse: folder of public certificates (ZPL); clients must have their key in it.
  std::string certificates;
  // stonehouse/ironhouse: optional file of revoked Z85 public keys, one per line.
  std::string revoked;
  // stonehouse/ironhouse: secret certificate of this endpoint; default keys.broker.
  std::string key;
  // YAML line of each of the keys above, for diagnostics about the files they name.
  std::map<std::string, int, std::less<>> lines;

  bool UsesCurve() const {
    return profile == Profile::kStonehouse || profile == Profile::kIronhouse;
  }
};

// Prometheus /metrics, /healthz and /readyz over HTTP.
struct MetricsConfig {
  bool enabled = false;                   // off unless a `metrics:` section is given
  std::string listen = "127.0.0.1:9464";  // HOST:PORT; port 0 picks a free one
  int line = 0;
};

struct KeysConfig {
  std::string broker;  // secret certificate for CURVE endpoints without their own `key`
  int line = 0;
};

struct ServiceConfig {
  bool redispatch = false;                  // re-send once if the worker dies; default false
  std::optional<Duration> request_timeout;  // default: broker.request_timeout
  std::optional<std::uint64_t> max_queued_requests;  // default: broker.max_queued_requests
  // Who may call it / serve it: entries `*`, `user:NAME` (or NAME), `role:NAME`,
  // `key:Z85`. An absent list means anyone the endpoint admitted.
  std::vector<std::string> clients;
  std::vector<std::string> workers;
  bool clients_set = false;  // `clients:` present (even empty: nobody)
  // Prefix each REQUEST body with the caller's identity (see proto/PROTOCOL.md);
  // only for workers written to expect it. Default false.
  bool forward_identity = false;
  bool workers_set = false;
};

struct Config {
  std::string path;  // the file it came from
  BrokerOptions broker;
  LogOptions log;
  KeysConfig keys;
  MetricsConfig metrics;
  std::vector<EndpointConfig> endpoints;
  std::map<std::string, ServiceConfig, std::less<>> services;
};

// One problem found in a config file.
struct Diagnostic {
  std::string file;
  int line = 0;     // 1-based; 0 when the problem has no single place
  int column = 0;   // 1-based
  std::string key;  // dotted path, e.g. endpoints[1].bind
  std::string message;
  // "zguard.yaml:12:5: endpoints[1].bind: expected tcp:// or ipc://, got \"x\""
  std::string ToString() const;
};

struct LoadResult {
  std::optional<Config> config;  // set only when `errors` is empty
  std::vector<Diagnostic> errors;
  std::vector<Diagnostic> warnings;  // unsafe but allowed combinations
};

// Reads and validates `path`.
LoadResult LoadConfigFile(const std::string& path);

// Validates YAML text; `name` is used as the file name in diagnostics.
// Relative paths in it are resolved against `base_dir`.
LoadResult LoadConfigString(std::string_view yaml, const std::string& name,
                            const std::string& base_dir = ".");

std::string_view ToString(Role role);
std::string_view ToString(Profile profile);

// True when a bind address only accepts connections from this host
// (127.0.0.0/8, [::1], the interface "lo", or ipc://).
bool IsLoopbackBind(std::string_view bind);

// Checks a bind address; returns an explanation when it is not usable.
std::optional<std::string> CheckBindAddress(std::string_view bind);

}  // namespace zguard::config
