// The routing thread: one poll loop over every endpoint socket, the timers of
// the ServiceTable, the connection events and a stop event. It works out which
// connection (Peer) each message came from, decodes frames, hands them to the
// table and sends what the table decides (it is the table's Transport).
// Construct, Bind() and Run() on one thread; RequestStop() may be called from
// any thread or a signal handler.
//
// Connections: every message carries the descriptor of the connection it came on (libzmq's
// "__fd" property, behind ZMQ_SRCFD) and the identity the authenticator gave it (User-Id, Key);
// a Peer is keyed by that descriptor and checked against the message's routing id and identity
// on every message. The socket monitor's "disconnected" event for a descriptor ends its Peer,
// with everything the Peer owned. One peer's message never ends the loop: anything thrown while
// handling it is logged, counted and the loop goes on.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "broker/auth/authenticator.hpp"
#include "broker/auth/policy.hpp"
#include "broker/config/config.hpp"
#include "broker/connection_events.hpp"
#include "broker/logging.hpp"
#include "broker/metrics.hpp"
#include "broker/service_table.hpp"

namespace zguard {

class Router final : public Transport {
 public:
  // `context` and `config` must outlive the Router. `server_keys` (by endpoint
  // index) holds the CURVE key of each stonehouse/ironhouse endpoint.
  // `authenticator` (may be null: no revocation checks) must outlive the Router.
  // `metrics` (may be null: no metrics) must outlive the Router.
  Router(zmq::context_t& context, const config::Config& config,
         const std::vector<auth::ServerKey>& server_keys,
         const auth::Authenticator* authenticator = nullptr, Metrics* metrics = nullptr);
  ~Router() override;
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Binds every endpoint. Returns one message per endpoint that failed
  // ("endpoint public: cannot bind tcp://127.0.0.1:5555: Address already in use").
  std::vector<std::string> Bind();

  // Runs until RequestStop(); then drains in-flight requests for up to
  // `shutdown_grace`, answers what is left and returns.
  void Run();

  // Safe from any thread and from signal handlers.
  void RequestStop() const;

  // The address each endpoint actually bound (port resolved), by config index.
  const std::vector<std::string>& bound_endpoints() const { return bound_; }

  // Snapshot support for tests; call only on the routing thread or after Run().
  const ServiceTable& table() const { return *table_; }

  // Transport
  void SendRequest(const Worker& worker, Request& request, bool keep_body) override;
  void SendReply(const Request& request, Frames& frames, std::size_t body_begin) override;
  void SendToClient(const Peer& client, bool has_delimiter, std::string_view service,
                    std::initializer_list<std::string_view> body) override;
  void SendHeartbeat(const Worker& worker) override;
  void SendDisconnect(std::uint16_t endpoint, std::string_view routing_id) override;

 private:
  void HandleReadable(std::uint16_t endpoint, Clock::time_point now);
  void HandleMessage(std::uint16_t endpoint, std::size_t frame_count, Clock::time_point now);
  // The Peer that sent frames_, opened on its connection's first message; null (counted) when
  // the message cannot be attributed to a connection and identity.
  Peer* ResolvePeer(std::uint16_t endpoint);
  Peer* PeerAt(int fd) const;
  void HandleEvents();
  void SyncEvents();
  void ClosePeerAt(int fd, std::string_view why);
  void Contain(std::uint16_t endpoint, const char* what);
  // Logs `line` unless the same line was logged in the current window (then it is counted and
  // summed up by FlushLogs). `line` must already be safe (LogSafe for what peers chose).
  void LogLimited(spdlog::level::level_enum level, const std::string& line);
  void FlushLogs(Clock::time_point now);
  void SendFrame(std::uint16_t endpoint, zmq::message_t& frame, bool more);
  void SendFrame(std::uint16_t endpoint, std::string_view bytes, bool more);
  void BeginShutdown();
  // Picks up a reloaded policy (and revokes what it revokes).
  void RefreshPolicy();
  bool KeyRevoked(std::uint16_t endpoint, std::string_view key) const;
  const std::string& Name(std::uint16_t endpoint) const { return config_.endpoints[endpoint].name; }

  const config::Config& config_;
  const auth::Authenticator* authenticator_;
  Metrics* metrics_;
  std::uint64_t policy_version_ = 0;
  std::shared_ptr<const auth::Policy> policy_;                // refreshed when the version moves
  std::vector<const auth::EndpointPolicy*> endpoint_policy_;  // by endpoint index
  std::vector<zmq::socket_t> sockets_;
  std::vector<std::string> bound_;
  std::unique_ptr<ServiceTable> table_;
  std::unique_ptr<ConnectionEvents> events_;
  std::vector<ConnectionEvent> event_batch_;  // reused
  // What the router knows of each connection, by descriptor: its Peer, and one small frame of
  // its first message kept alive. libzmq attaches one immutable
  // metadata object (descriptor, User-Id, Key, Roles) to every message of a connection; the
  // kept message holds a reference to it, so its address cannot be reused by another
  // connection while the Peer exists. A message whose "__fd" property is the very same string
  // (pointer) therefore comes from that connection, with that identity: one property look-up
  // per message instead of a string compare of each identity field.
  struct Connection {
    Peer* peer = nullptr;
    zmq::message_t anchor;
    const char* fd_property = nullptr;  // inside anchor's metadata; null: no anchor
  };
  std::vector<Connection> connections_;
  int stop_fd_ = -1;  // eventfd written by RequestStop()
  bool stopping_ = false;
  std::size_t frame_limit_ = 0;          // frames kept of one message (more are discarded)
  Frames frames_;                        // reused for every received message
  std::uint64_t pending_bytes_out_ = 0;  // bytes of the message being sent (metrics)
  bool mid_message_ = false;             // SendFrame has sent a frame with `more` set
  std::uint16_t sending_endpoint_ = 0;   // where that message goes
  bool dropping_ = false;  // SendFrame skips the rest of a message the peer could not take
  // Rate-limited logs of what peers keep doing wrong, and per-endpoint counts for the summary
  // of connections that closed before their first message.
  LogLimiter log_limiter_;
  Clock::time_point next_log_flush_{};             // every second
  Clock::time_point next_silent_summary_{};        // every window
  std::vector<std::uint64_t> silent_closes_;       // this window, by endpoint
  std::vector<std::uint64_t> handshake_failures_;  // this window, by endpoint
};

}  // namespace zguard
