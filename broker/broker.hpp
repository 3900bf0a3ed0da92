// The broker process: owns the ZeroMQ context and the routing thread's Router,
// binds every endpoint, and stops in order (drain, answer, close). Used by
// `zguard serve` and, in-process, by the end-to-end tests.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "broker/auth/authenticator.hpp"
#include "broker/auth/reloader.hpp"
#include "broker/config/config.hpp"
#include "broker/libzmq_check.hpp"
#include "broker/metrics.hpp"
#include "broker/metrics_server.hpp"
#include "broker/router.hpp"

namespace zguard {

class Broker {
 public:
  explicit Broker(config::Config config);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // Loads the security material, starts the authenticator, then binds every
  // endpoint; returns the problems (empty on success).
  std::vector<std::string> Start();

  // Runs the routing loop on the calling thread until Stop(); returns after
  // the drain.
  void Run();

  // Thread- and signal-safe; a no-op before Start() succeeded.
  void Stop() const {
    if (router_) router_->RequestStop();
  }

  // Re-reads password files, certificate stores and revocation lists now
  // (SIGHUP). Returns false when the files have errors (the old policy stays).
  bool ReloadSecurity() { return reloader_ && reloader_->ReloadNow(); }

  // Port of the metrics HTTP server, 0 when metrics are off.
  int metrics_port() const { return metrics_server_ ? metrics_server_->port() : 0; }

  // Bound address of the endpoint named `name`, or "" if none.
  std::string Endpoint(const std::string& name) const;

  const config::Config& config() const { return config_; }
  // What the start-up self-check found out about the linked libzmq (valid after Start()).
  const LibzmqFacts& libzmq() const { return libzmq_; }
  const Router& router() const { return *router_; }
  auth::Authenticator& authenticator() { return *authenticator_; }
  // The context every broker socket lives in (tests bind a stand-in ZAP handler in it).
  zmq::context_t& context() { return context_; }

 private:
  config::Config config_;
  zmq::context_t context_;
  std::unique_ptr<Metrics> metrics_;  // null when metrics are off
  std::unique_ptr<MetricsServer> metrics_server_;
  std::atomic<bool> ready_{false};
  LibzmqFacts libzmq_;
  std::unique_ptr<auth::Authenticator> authenticator_;
  std::unique_ptr<auth::Reloader> reloader_;
  std::unique_ptr<Router> router_;
};

}  // namespace zguard
