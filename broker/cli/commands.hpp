// The zguard subcommands. Each returns the process exit code and prints its
// own diagnostics; main.cpp only parses arguments and dispatches.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "proto/security.hpp"

namespace zguard::cli {

// config/zguard.yaml when it exists under the working directory (running from
// a checkout), else /etc/zguard/zguard.yaml.
std::string DefaultConfigPath();

// Loads and validates `path`, printing warnings and errors to stderr.
int RunCheck(const std::string& path);

// Runs the broker until SIGINT/SIGTERM; 0 after a clean drain.
int RunServe(const std::string& path);

// Security flags shared by `call` and `echo-worker`.
struct SecurityFlags {
  std::string server_key;     // --server-key: Z85 key or certificate file
  std::string cert;           // --cert: our secret certificate (CURVE)
  std::string user;           // --user (PLAIN)
  std::string password_file;  // --password-file (PLAIN)
};
// Turns the flags into socket settings; nullopt with `error` set when they
// are inconsistent or a file is unusable.
std::optional<proto::Security> BuildSecurity(const SecurityFlags& flags, std::string* error);

struct CallOptions {
  SecurityFlags security;
  std::string connect;
  std::string service;
  std::vector<std::string> body;
  std::chrono::milliseconds timeout{5000};
};
// Sends one request; prints reply frames to stdout, one per line.
// Exit codes: 0 reply, 1 error reply from the broker, 2 timeout or bad reply.
int RunCall(const CallOptions& options);

struct EchoWorkerOptions {
  SecurityFlags security;
  std::string connect;
  std::string service;
  std::chrono::milliseconds heartbeat{2500};
  long count = 0;  // stop after this many requests; 0 = run until a signal
  // Serve every address `connect`'s host resolves to (one worker each), re-resolving every
  // `resolve_interval`: workers reach each broker pod behind a Kubernetes headless Service.
  bool each_address = false;
  std::chrono::milliseconds resolve_interval{10000};
};
int RunEchoWorker(const EchoWorkerOptions& options);

// `zguard keygen NAME`: writes DIR/NAME.key and DIR/NAME.key_secret (0600)
// with the given metadata; prints the public key.
struct KeygenOptions {
  std::string name;
  std::string dir = ".";
  std::vector<std::string> meta;  // KEY=VALUE
};
int RunKeygen(const KeygenOptions& options);

// `zguard passwd FILE USER`: adds or replaces USER with a password read from
// standard input (or prompted for on a terminal).
struct PasswdOptions {
  std::string file;
  std::string user;
  std::optional<std::vector<std::string>> roles;
};
int RunPasswd(const PasswdOptions& options);

// `zguard health`: GET /healthz (or another path) from a running broker's metrics server.
// Exit codes: 0 answered 200, 1 no answer or another status, 2 unusable config.
struct HealthOptions {
  std::string config_path;  // where metrics.listen is read when `address` is empty
  std::string address;      // HOST:PORT; a wildcard listen host is asked on 127.0.0.1
  std::string path = "/healthz";
  std::chrono::milliseconds timeout{3000};
};
int RunHealth(const HealthOptions& options);

}  // namespace zguard::cli
