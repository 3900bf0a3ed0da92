// A Majordomo worker (MDP/0.1 worker protocol) over a DEALER socket. It
// registers with READY, answers broker heartbeats, sends its own, and
// reconnects when the broker goes silent for `liveness` heartbeats or tells it
// to DISCONNECT. Not thread-safe: use one Worker per thread.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "proto/security.hpp"

namespace zguard::proto {

struct WorkerOptions {
  Security security;  // PLAIN or CURVE credentials; default none (NULL)
  std::chrono::milliseconds heartbeat_interval{2500};  // default 2.5 s, as the broker's
  int liveness = 3;                                    // silent heartbeats before reconnect
  std::chrono::milliseconds reconnect_delay{1000};     // wait before reconnecting
  std::function<void(zmq::socket_t&)> setup;           // called on every new socket
};

// One request handed to the worker. `client` is the broker's opaque address
// for the request and must be passed back unchanged in the reply.
struct WorkerRequest {
  std::string client;
  std::vector<zmq::message_t> body;
};

class Worker {
 public:
  // `context` must outlive the Worker.
  Worker(zmq::context_t& context, std::string endpoint, std::string service,
         WorkerOptions options = {});
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Waits up to `timeout` for the next request, doing heartbeats meanwhile.
  std::optional<WorkerRequest> Receive(std::chrono::milliseconds timeout);

  // Sends the reply for `request`; its body frames are moved out.
  void Reply(const std::string& client, std::vector<zmq::message_t>& body);

  // Tells the broker we are leaving (DISCONNECT) and closes the socket.
  void Close();

  // Number of times the worker (re)connected; 1 after construction.
  int connections() const { return connections_; }

 private:
  void Connect();
  void SendHeartbeat();
  using Clock = std::chrono::steady_clock;

  zmq::context_t& context_;
  std::string endpoint_;
  std::string service_;
  WorkerOptions options_;
  zmq::socket_t socket_;
  int connections_ = 0;
  int liveness_left_ = 0;
  Clock::time_point next_heartbeat_;
  std::vector<zmq::message_t> frames_;
};

}  // namespace zguard::proto
