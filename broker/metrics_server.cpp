// /metrics, /healthz and /readyz over civetweb; see metrics_server.hpp.
#include "broker/metrics_server.hpp"

#include <CivetServer.h>

#include <sstream>
#include <stdexcept>
#include <vector>

#include <prometheus/text_serializer.h>

namespace zguard {

class MetricsServer::Handler : public CivetHandler {
 public:
  using Body = std::function<std::pair<int, std::string>()>;
  Handler(std::string content_type, Body body)
      : content_type_(std::move(content_type)), body_(std::move(body)) {}

  bool handleGet(CivetServer* /*server*/, mg_connection* connection) override {
    const auto [status, text] = body_();
    mg_printf(connection,
              "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
              "Connection: close\r\n\r\n",
              status, status == 200 ? "OK" : "Service Unavailable", content_type_.c_str(),
              text.size());
    mg_write(connection, text.data(), text.size());
    return true;
  }

 private:
  std::string content_type_;
  Body body_;
};

MetricsServer::MetricsServer(const std::string& listen,
                             std::shared_ptr<prometheus::Registry> registry,
                             std::function<bool()> ready) {
  metrics_ = std::make_unique<Handler>(
      "text/plain; version=0.0.4; charset=utf-8", [registry = std::move(registry)] {
        std::ostringstream out;
        prometheus::TextSerializer().Serialize(out, registry->Collect());
        return std::make_pair(200, out.str());
      });
  healthz_ = std::make_unique<Handler>("text/plain", [] { return std::make_pair(200, "ok\n"); });
  readyz_ = std::make_unique<Handler>("text/plain", [ready = std::move(ready)] {
    return ready() ? std::make_pair(200, std::string("ready\n"))
                   : std::make_pair(503, std::string("not ready\n"));
  });
  const std::vector<std::string> options = {"listening_ports", listen, "num_threads", "2"};
  try {
    server_ = std::make_unique<CivetServer>(options);
  } catch (const CivetException& e) {
    throw std::runtime_error("metrics: cannot listen on " + listen + ": " + e.what());
  }
  server_->addHandler("/metrics", *metrics_);
  server_->addHandler("/healthz", *healthz_);
  server_->addHandler("/readyz", *readyz_);
  const auto ports = server_->getListeningPorts();
  port_ = ports.empty() ? 0 : ports.front();
}

MetricsServer::~MetricsServer() {
  if (server_) server_->close();
}

}  // namespace zguard
