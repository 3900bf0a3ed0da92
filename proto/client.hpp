// A Majordomo client (MDP/0.1 client protocol) over a DEALER socket. One
// request at a time; a timed-out request closes the socket so that a late
// reply can never be mistaken for the answer to the next request.
// Not thread-safe: use one Client per thread.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "proto/security.hpp"

namespace zguard::proto {

struct ClientOptions {
  Security security;  // PLAIN or CURVE credentials; default none (NULL)
  // Called on every new socket before it connects (security options, routing id).
  std::function<void(zmq::socket_t&)> setup;
  // Linger on close. Default 0: pending requests are dropped on close.
  int linger_ms = 0;
};

struct CallResult {
  enum class Outcome { kOk, kError, kTimeout, kMalformed };
  Outcome outcome = Outcome::kTimeout;
  int code = 0;                   // 200 on success; the broker's status on kError
  std::string reason;             // broker's reason on kError, ours otherwise
  std::vector<std::string> body;  // reply body frames on kOk
};

class Client {
 public:
  // `context` must outlive the Client.
  Client(zmq::context_t& context, std::string endpoint, ClientOptions options = {});

  // Sends one request and waits up to `timeout` for its reply.
  CallResult Call(std::string_view service, const std::vector<std::string>& body,
                  std::chrono::milliseconds timeout);

 private:
  void Connect();

  zmq::context_t& context_;
  std::string endpoint_;
  ClientOptions options_;
  zmq::socket_t socket_;
  bool stale_ = false;                  // the last call failed: reconnect before the next one
  std::vector<zmq::message_t> frames_;  // reused for every reply
};

}  // namespace zguard::proto
