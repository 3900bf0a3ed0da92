// The zguard subcommands. Each returns the process exit code and prints its
// own diagnostics; main.cpp only parses arguments and dispatches.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace zguard::cli {

// config/zguard.yaml when it exists under the working directory (running from
// a checkout), else /etc/zguard/zguard.yaml.
std::string DefaultConfigPath();

// Loads and validates `path`, printing warnings and errors to stderr.
int RunCheck(const std::string& path);

// Runs the broker until SIGINT/SIGTERM; 0 after a clean drain.
int RunServe(const std::string& path);

struct CallOptions {
  std::string connect;
  std::string service;
  std::vector<std::string> body;
  std::chrono::milliseconds timeout{5000};
};
// Sends one request; prints reply frames to stdout, one per line.
// Exit codes: 0 reply, 1 error reply from the broker, 2 timeout or bad reply.
int RunCall(const CallOptions& options);

struct EchoWorkerOptions {
  std::string connect;
  std::string service;
  std::chrono::milliseconds heartbeat{2500};
  long count = 0;  // stop after this many requests; 0 = run until a signal
};
int RunEchoWorker(const EchoWorkerOptions& options);

}  // namespace zguard::cli
