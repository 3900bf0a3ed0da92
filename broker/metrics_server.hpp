// The HTTP side of observability: /metrics (Prometheus text format from the
// registry), /healthz (the process is alive) and /readyz (every endpoint is
// bound and the authenticator is answering). Served by civetweb on its own
// threads; `ready` is polled on each /readyz request.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <prometheus/registry.h>

class CivetServer;

namespace zguard {

class MetricsServer {
 public:
  // Listens on `listen` ("127.0.0.1:9464"; port 0 picks a free one). Throws
  // std::runtime_error when it cannot listen.
  MetricsServer(const std::string& listen, std::shared_ptr<prometheus::Registry> registry,
                std::function<bool()> ready);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The port actually listened on.
  int port() const { return port_; }

 private:
  class Handler;
  std::unique_ptr<Handler> metrics_;
  std::unique_ptr<Handler> healthz_;
  std::unique_ptr<Handler> readyz_;
  std::unique_ptr<CivetServer> server_;
  int port_ = 0;
};

}  // namespace zguard
