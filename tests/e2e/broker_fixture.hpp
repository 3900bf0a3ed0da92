// A real broker on 127.0.0.1 (ephemeral ports) running on its own thread,
// plus helpers for real clients and workers. Shared by the e2e tests.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include "broker/broker.hpp"
#include "proto/client.hpp"
#include "proto/worker.hpp"

namespace zguard::testing {

// Config text with a clients and a workers endpoint on ephemeral ports;
// `extra` is appended (e.g. a services: section) and `broker` replaces the
// broker: section body.
std::string TestConfigYaml(const std::string& broker = "", const std::string& extra = "");

class RunningBroker {
 public:
  explicit RunningBroker(const std::string& yaml);
  ~RunningBroker();
  void Stop();  // requests a stop and joins the routing thread

  const std::string& clients() const { return clients_; }
  const std::string& workers() const { return workers_; }
  Broker& broker() { return *broker_; }

 private:
  std::unique_ptr<Broker> broker_;
  std::thread thread_;
  std::string clients_;
  std::string workers_;
};

// A worker on its own thread that answers with `handler(body)`.
class WorkerThread {
 public:
  using Handler = std::function<void(std::vector<zmq::message_t>& body)>;
  WorkerThread(zmq::context_t& context, const std::string& endpoint, const std::string& service,
               Handler handler = {}, proto::WorkerOptions options = {});
  ~WorkerThread();
  int answered() const { return answered_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> answered_{0};
  std::thread thread_;
};

// A minimal HTTP/1.0 GET against 127.0.0.1:port; returns status line, headers and body ("" when
// nothing answers).
std::string HttpGet(int port, const std::string& path);

// Waits until `predicate` holds or `timeout` passes; returns the last value.
bool WaitFor(const std::function<bool()>& predicate,
             std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));

}  // namespace zguard::testing
