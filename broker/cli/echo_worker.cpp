// `zguard echo-worker`: a Majordomo worker that answers every request with
// its own body. For demos, smoke tests and benchmarks.
#include <atomic>
#include <csignal>
#include <iostream>

#include "broker/cli/commands.hpp"
#include "proto/worker.hpp"

namespace zguard::cli {
namespace {

std::atomic<bool> g_stop{false};

extern "C" void OnStopSignal(int /*signal*/) { g_stop = true; }

}  // namespace

int RunEchoWorker(const EchoWorkerOptions& options) {
  std::signal(SIGINT, OnStopSignal);
  std::signal(SIGTERM, OnStopSignal);
  std::string problem;
  const auto security = BuildSecurity(options.security, &problem);
  if (!security) {
    std::cerr << "echo-worker: " << problem << '\n';
    return 2;
  }
  zmq::context_t context(1);
  proto::WorkerOptions worker_options;
  worker_options.security = *security;
  worker_options.heartbeat_interval = options.heartbeat;
  proto::Worker worker(context, options.connect, options.service, worker_options);
  std::cerr << "echo-worker: serving " << options.service << " via " << options.connect
            << std::endl;
  long answered = 0;
  while (!g_stop && (options.count == 0 || answered < options.count)) {
    try {
      auto request = worker.Receive(std::chrono::milliseconds(200));
      if (!request) continue;
      worker.Reply(request->client, request->body);
      ++answered;
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      std::cerr << "echo-worker: " << e.what() << '\n';
      return 1;
    }
  }
  worker.Close();
  std::cerr << "echo-worker: answered " << answered << " request(s)" << std::endl;
  return 0;
}

}  // namespace zguard::cli
