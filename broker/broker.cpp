// Broker lifecycle; see broker.hpp.
#include "broker.hpp"

#include <spdlog/spdlog.h>

#include "broker/libzmq_check.hpp"

namespace zguard {

Broker::Broker(config::Config config) : config_(std::move(config)) {
  // Before any socket: the first routing id each ROUTER generates comes from rand().
  SeedRoutingIdGenerator();
  context_.set(zmq::ctxopt::io_threads, config_.broker.io_threads);
  // Routing ids up to 255 bytes, and every connection of every endpoint.
  context_.set(zmq::ctxopt::max_sockets, 65535);
}

Broker::~Broker() {
  metrics_server_.reset();  // no scrape may run while the rest goes away
  router_.reset();          // closes sockets (bounded linger) before the context ends
  reloader_.reset();
  if (authenticator_) authenticator_->Stop();
  authenticator_.reset();
  context_.close();
}

std::vector<std::string> Broker::Start() {
  std::vector<std::string> problems;
  auto security = auth::LoadSecurity(config_);
  for (const auto& warning : security.warnings) spdlog::warn("{}", warning.ToString());
  for (const auto& error : security.errors) problems.push_back(error.ToString());
  if (!problems.empty()) return problems;
  // The handler must be bound before any endpoint: a ZAP-checked socket with
  // no handler refuses every peer (ZMQ_ZAP_ENFORCE_DOMAIN).
  auth::FailureLimits limits;
  limits.limit = config_.broker.auth_failure_limit;
  limits.window = config_.broker.auth_failure_window;
  limits.cooldown = config_.broker.auth_cooldown;
  if (config_.metrics.enabled) metrics_ = std::make_unique<Metrics>(config_);
  libzmq_ = CheckLibzmq(context_);
  if (libzmq_.reserved_ids != LibzmqFacts::ReservedIds::kRefused) {
    spdlog::warn("{}", ReservedIdWarning(libzmq_));
  }
  if (metrics_) {
    metrics_->SetReservedRoutingIdsRefused(libzmq_.reserved_ids ==
                                           LibzmqFacts::ReservedIds::kRefused);
  }
  authenticator_ =
      std::make_unique<auth::Authenticator>(context_, security.policy, limits, metrics_.get());
  try {
    authenticator_->Start();
  } catch (const zmq::error_t& e) {
    return {std::string("cannot start the authenticator: ") + e.what()};
  }
  reloader_ = std::make_unique<auth::Reloader>(config_, *authenticator_,
                                               std::chrono::milliseconds(250), metrics_.get());
  reloader_->Start();
  router_ = std::make_unique<Router>(context_, config_, security.server_keys, authenticator_.get(),
                                     metrics_.get());
  problems = router_->Bind();
  if (!problems.empty()) return problems;
  if (metrics_) {
    try {
      metrics_server_ = std::make_unique<MetricsServer>(
          config_.metrics.listen, metrics_->shared_registry(),
          [this] { return ready_.load() && authenticator_->running(); });
      spdlog::info("metrics on http://{}:{}/metrics",
                   config_.metrics.listen.substr(0, config_.metrics.listen.rfind(':')),
                   metrics_server_->port());
    } catch (const std::exception& e) {
      return {e.what()};
    }
  }
  ready_ = true;
  return {};
}

void Broker::Run() { router_->Run(); }

std::string Broker::Endpoint(const std::string& name) const {
  for (std::size_t i = 0; i < config_.endpoints.size(); ++i) {
    if (config_.endpoints[i].name == name && router_) return router_->bound_endpoints()[i];
  }
  return {};
}

}  // namespace zguard
