// `zguard echo-worker`: a Majordomo worker that answers every request with
// its own body. For demos, smoke tests and benchmarks.
//
// With --each-address it serves every broker behind one DNS name (a Kubernetes headless
// Service): one worker per address the name resolves to, re-resolved as brokers come and go.
#include <netdb.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "broker/cli/commands.hpp"
#include "proto/worker.hpp"

namespace zguard::cli {
namespace {

std::atomic<bool> g_stop{false};

extern "C" void OnStopSignal(int /*signal*/) { g_stop = true; }

// One worker on one endpoint, answering until `stop`, a signal, or the shared count is reached.
class EchoLoop {
 public:
  EchoLoop(zmq::context_t& context, const std::string& endpoint, const EchoWorkerOptions& options,
           const proto::WorkerOptions& worker_options, std::atomic<long>& answered)
      : worker_(context, endpoint, options.service, worker_options),
        thread_([this, &options, &answered, endpoint] { Run(options, answered, endpoint); }) {}
  EchoLoop(const EchoLoop&) = delete;
  EchoLoop& operator=(const EchoLoop&) = delete;
  ~EchoLoop() {
    stop_ = true;
    thread_.join();
  }
  bool failed() const { return failed_; }

 private:
  void Run(const EchoWorkerOptions& options, std::atomic<long>& answered,
           const std::string& endpoint) {
    std::cerr << "echo-worker: serving " << options.service << " via " << endpoint << std::endl;
    while (!stop_ && !g_stop && (options.count == 0 || answered < options.count)) {
      try {
        auto request = worker_.Receive(std::chrono::milliseconds(200));
        if (!request) continue;
        worker_.Reply(request->client, request->body);
        ++answered;
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        std::cerr << "echo-worker: " << endpoint << ": " << e.what() << '\n';
        failed_ = true;
        break;
      }
    }
    worker_.Close();
  }

  proto::Worker worker_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> failed_{false};
  std::thread thread_;  // last: starts once the members above exist
};

// "tcp://HOST:PORT" → one "tcp://ADDRESS:PORT" per address HOST resolves to (IPv6 in brackets).
// Empty when the endpoint is not of that form or the name does not resolve.
std::set<std::string> ResolveEach(const std::string& endpoint, std::string* error) {
  const std::string scheme = "tcp://";
  const auto colon = endpoint.rfind(':');
  if (endpoint.compare(0, scheme.size(), scheme) != 0 || colon == std::string::npos ||
      colon < scheme.size()) {
    *error = "--each-address needs --connect tcp://HOST:PORT, got " + endpoint;
    return {};
  }
  std::string host = endpoint.substr(scheme.size(), colon - scheme.size());
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string port = endpoint.substr(colon + 1);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    *error = "cannot resolve " + host + ": " + gai_strerror(rc);
    return {};
  }
  std::set<std::string> endpoints;
  for (const addrinfo* entry = found; entry != nullptr; entry = entry->ai_next) {
    char text[NI_MAXHOST];
    if (getnameinfo(entry->ai_addr, entry->ai_addrlen, text, sizeof(text), nullptr, 0,
                    NI_NUMERICHOST) != 0) {
      continue;
    }
    std::string resolved = scheme;
    if (entry->ai_family == AF_INET6) {
      resolved.append("[").append(text).append("]");
    } else {
      resolved.append(text);
    }
    resolved.append(":").append(port);
    endpoints.insert(std::move(resolved));
  }
  freeaddrinfo(found);
  return endpoints;
}

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
  std::atomic<long> answered{0};
  std::map<std::string, std::unique_ptr<EchoLoop>> loops;
  auto done = [&] { return g_stop || (options.count != 0 && answered >= options.count); };

  if (!options.each_address) {
    loops.emplace(options.connect, std::make_unique<EchoLoop>(context, options.connect, options,
                                                              worker_options, answered));
  }
  auto next_resolve = std::chrono::steady_clock::now();
  int status = 0;
  while (!done()) {
    if (options.each_address && std::chrono::steady_clock::now() >= next_resolve) {
      next_resolve = std::chrono::steady_clock::now() + options.resolve_interval;
      std::string error;
      const auto endpoints = ResolveEach(options.connect, &error);
      if (endpoints.empty()) {
        // Keep the workers we have: a failed look-up says nothing about the brokers.
        std::cerr << "echo-worker: " << error << '\n';
      } else {
        for (auto it = loops.begin(); it != loops.end();) {
          if (endpoints.count(it->first) == 0) {
            std::cerr << "echo-worker: " << it->first << " is gone" << std::endl;
            it = loops.erase(it);
          } else {
            ++it;
          }
        }
        for (const auto& endpoint : endpoints) {
          if (loops.count(endpoint) != 0) continue;
          loops.emplace(endpoint, std::make_unique<EchoLoop>(context, endpoint, options,
                                                             worker_options, answered));
        }
      }
    }
    for (const auto& [endpoint, loop] : loops) {
      if (loop->failed()) status = 1;
    }
    if (status != 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  loops.clear();
  std::cerr << "echo-worker: answered " << answered << " request(s)" << std::endl;
  return status;
}

}  // namespace zguard::cli
