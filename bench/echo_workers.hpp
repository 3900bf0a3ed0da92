// Majordomo echo workers on their own threads, shared by the benchmarks:
// each answers every request with its body until the object goes away.
#pragma once

#include <atomic>
#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "proto/worker.hpp"

namespace zguard::bench {

class EchoWorkers {
 public:
  // `context` must outlive the workers.
  EchoWorkers(zmq::context_t& context, const std::string& endpoint, const std::string& service,
              int count) {
    for (int i = 0; i < count; ++i) {
      threads_.emplace_back([this, &context, endpoint, service] {
        try {
          proto::Worker worker(context, endpoint, service);
          while (!stop_.load()) {
            auto request = worker.Receive(std::chrono::milliseconds(100));
            if (request) worker.Reply(request->client, request->body);
          }
        } catch (const std::exception& e) {
          std::cerr << "echo worker stopped: " << e.what() << "\n";
        }
      });
    }
  }
  ~EchoWorkers() {
    stop_ = true;
    for (auto& thread : threads_) thread.join();
  }
  EchoWorkers(const EchoWorkers&) = delete;
  EchoWorkers& operator=(const EchoWorkers&) = delete;

 private:
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

}  // namespace zguard::bench
