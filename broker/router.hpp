// The routing thread: one poll loop over every endpoint socket, the timers of
// the ServiceTable, and a stop event. It decodes frames, hands them to the
// table and sends what the table decides (it is the table's Transport).
// Construct, Bind() and Run() on one thread; RequestStop() may be called from
// any thread or a signal handler.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "broker/auth/authenticator.hpp"
#include "broker/auth/policy.hpp"
#include "broker/config/config.hpp"
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
  void SendToClient(const ClientAddress& client, std::string_view service,
                    std::initializer_list<std::string_view> body) override;
  void SendHeartbeat(const Worker& worker) override;
  void SendDisconnect(std::uint16_t endpoint, std::string_view identity) override;

 private:
  void HandleReadable(std::uint16_t endpoint, Clock::time_point now);
  void SendFrame(std::uint16_t endpoint, zmq::message_t& frame, bool more);
  void SendFrame(std::uint16_t endpoint, std::string_view bytes, bool more);
  void BeginShutdown();
  // Who sent frames_ (ZAP User-Id and metadata), and whether the
  // credentials it connected with have been revoked since.
  auth::Identity IdentityOf(std::uint16_t endpoint) const;
  // Picks up a reloaded policy (and drops workers it revokes).
  void RefreshPolicy();
  bool KeyRevoked(std::uint16_t endpoint, std::string_view key) const;

  void HandleMonitor(std::uint16_t endpoint);  // monitor thread
  void RunMonitors();

  const config::Config& config_;
  const auth::Authenticator* authenticator_;
  Metrics* metrics_;
  // Socket monitor per endpoint (with metrics), owned by the monitor thread.
  std::vector<zmq::socket_t> monitors_;
  std::vector<zmq::message_t> monitor_frames_;
  std::thread monitor_thread_;
  std::atomic<bool> monitor_stop_{false};
  std::uint64_t policy_version_ = 0;
  std::shared_ptr<const auth::Policy> policy_;                // refreshed when the version moves
  std::vector<const auth::EndpointPolicy*> endpoint_policy_;  // by endpoint index
  std::vector<zmq::socket_t> sockets_;
  std::vector<std::string> bound_;
  std::unique_ptr<ServiceTable> table_;
  int stop_fd_ = -1;  // eventfd written by RequestStop()
  bool stopping_ = false;
  Frames frames_;                        // reused for every received message
  std::uint64_t pending_bytes_out_ = 0;  // bytes of the message being sent (metrics)
  bool mid_message_ = false;             // SendFrame has sent a frame with `more` set
  bool dropping_ = false;  // SendFrame skips the rest of a message the peer could not take
};

}  // namespace zguard
