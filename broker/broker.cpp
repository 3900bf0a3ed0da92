// Broker lifecycle; see broker.hpp.
#include "broker.hpp"

#include <spdlog/spdlog.h>

namespace zguard {

Broker::Broker(config::Config config) : config_(std::move(config)) {
  context_.set(zmq::ctxopt::io_threads, config_.broker.io_threads);
  // Routing ids up to 255 bytes, and every connection of every endpoint.
  context_.set(zmq::ctxopt::max_sockets, 65535);
  router_ = std::make_unique<Router>(context_, config_);
}

Broker::~Broker() {
  router_.reset();  // closes sockets (bounded linger) before the context ends
  context_.close();
}

std::vector<std::string> Broker::Start() { return router_->Bind(); }

void Broker::Run() { router_->Run(); }

std::string Broker::Endpoint(const std::string& name) const {
  for (std::size_t i = 0; i < config_.endpoints.size(); ++i) {
    if (config_.endpoints[i].name == name) return router_->bound_endpoints()[i];
  }
  return {};
}

}  // namespace zguard
