// Every Prometheus metric family of zguard, declared in one place, and the
// label handles the hot paths use. Handles are resolved once (per endpoint
// at start-up, per service when the service is first seen) and then only
// incremented: no label look-up happens per message. Families and handles
// live as long as the Metrics object; increments are thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "broker/config/config.hpp"

namespace zguard {

// Outcomes of a client request, the `outcome` label of zguard_requests_total.
enum class Outcome : std::size_t {
  kOk,
  kTimeout,
  kNoWorker,
  kUnauthorized,
  kWorkerLost,
  kTooLarge,
  kMalformed,
  kBusy,
  kUnknownService,
  kShutdown,
  kRevoked,
  kClientGone,  // the client disconnected before its reply
  kCount,
};
std::string_view ToString(Outcome outcome);

// Why a message was refused before it reached the Majordomo layer: the `reason` label of
// zguard_refused_messages_total.
enum class Refusal : std::size_t {
  kRoutingIdTooLong,  // more than 255 bytes (RFC 23)
  kNoConnection,      // no connection or identity could be attributed to it
  kInternalError,     // handling it failed inside the broker (contained, logged)
  kCount,
};
std::string_view ToString(Refusal refusal);

// Why a worker was sent DISCONNECT: the `reason` label of zguard_worker_refusals_total.
enum class WorkerRefusal : std::size_t {
  kNotRegistered,  // HEARTBEAT/REPLY from a connection that sent no READY (e.g. one that took
                   // over the routing id of a worker that is gone)
  kNotAllowed,     // READY refused by services.NAME.workers
  kBadService,     // READY for a name that is too long, undeclared (deny) or over the cap
  kProtocol,       // READY twice, REPLY while idle, a malformed message
  kCount,
};
std::string_view ToString(WorkerRefusal refusal);

// Per-service handles. Owned by Metrics; a Service keeps a pointer.
struct ServiceMetrics {
  std::array<prometheus::Counter*, static_cast<std::size_t>(Outcome::kCount)> requests{};
  prometheus::Histogram* duration = nullptr;  // client in -> reply out, seconds
  prometheus::Gauge* idle = nullptr;
  prometheus::Gauge* busy = nullptr;
  prometheus::Gauge* queued = nullptr;
  prometheus::Counter* late_replies = nullptr;

  void Count(Outcome outcome) const { requests[static_cast<std::size_t>(outcome)]->Increment(); }
};

// Per-endpoint handles, indexed like config.endpoints.
struct EndpointMetrics {
  prometheus::Counter* messages_in = nullptr;
  prometheus::Counter* messages_out = nullptr;
  prometheus::Counter* bytes_in = nullptr;
  prometheus::Counter* bytes_out = nullptr;
  prometheus::Gauge* connections = nullptr;
  prometheus::Counter* malformed = nullptr;
  prometheus::Counter* dropped_peer_gone = nullptr;   // the peer disconnected
  prometheus::Counter* dropped_queue_full = nullptr;  // its send queue (send_queue) was full
  std::array<prometheus::Counter*, static_cast<std::size_t>(Refusal::kCount)> refused{};
  // Connections that closed without ever delivering a message (refused handshakes included).
  prometheus::Counter* closed_silent = nullptr;

  std::array<prometheus::Counter*, static_cast<std::size_t>(WorkerRefusal::kCount)>
      workers_refused{};

  void Refused(Refusal refusal) const { refused[static_cast<std::size_t>(refusal)]->Increment(); }
  void Refused(WorkerRefusal refusal) const {
    workers_refused[static_cast<std::size_t>(refusal)]->Increment();
  }
};

class Metrics {
 public:
  // At most this many distinct `service` label values; further services are
  // counted under service="_other" so that clients cannot grow the series.
  static constexpr std::size_t kMaxServices = 1000;

  explicit Metrics(const config::Config& config);

  prometheus::Registry& registry() { return *registry_; }
  std::shared_ptr<prometheus::Registry> shared_registry() { return registry_; }

  EndpointMetrics& endpoint(std::size_t index) { return endpoints_.at(index); }

  // Handles for `service` (created on first call). Requests that name no
  // service we know are counted under "_unknown"; malformed ones under "_none".
  ServiceMetrics* ForService(std::string_view service);
  // The service these handles belong to is gone: its series leave /metrics (a name that comes
  // back starts from zero). The shared "_other", "_invalid", "_unknown" and "_none" handles
  // stay. `handles` must not be used afterwards.
  void ReleaseService(ServiceMetrics* handles);

  // Handshake-rate paths (not per message): a small locked map of handles.
  void CountAuthDecision(std::string_view endpoint, std::string_view mechanism, bool allowed,
                         std::string_view reason);
  void CountHandshakeFailure(std::size_t endpoint, std::string_view reason);
  void ObserveAuthQueue(double seconds) { auth_queue_->Observe(seconds); }
  void CountReload(bool ok) { (ok ? reload_ok_ : reload_failed_)->Increment(); }
  // 1 when the linked libzmq refuses peer-chosen routing ids starting with a zero byte.
  void SetReservedRoutingIdsRefused(bool refused) { reserved_ids_refused_->Set(refused ? 1 : 0); }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& auth_decisions_;
  prometheus::Family<prometheus::Counter>& handshake_failures_;
  prometheus::Family<prometheus::Gauge>& connections_;
  prometheus::Family<prometheus::Counter>& messages_;
  prometheus::Family<prometheus::Counter>& bytes_;
  prometheus::Family<prometheus::Counter>& malformed_;
  prometheus::Family<prometheus::Counter>& dropped_;
  prometheus::Family<prometheus::Counter>& refused_;
  prometheus::Family<prometheus::Counter>& closed_silent_;
  prometheus::Family<prometheus::Counter>& worker_refusals_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& duration_;
  prometheus::Family<prometheus::Gauge>& workers_;
  prometheus::Family<prometheus::Gauge>& queued_;
  prometheus::Family<prometheus::Counter>& late_replies_;
  prometheus::Family<prometheus::Counter>& reloads_;
  prometheus::Family<prometheus::Histogram>& auth_queue_family_;
  prometheus::Family<prometheus::Gauge>& build_info_;
  prometheus::Family<prometheus::Gauge>& reserved_ids_family_;
  prometheus::Gauge* reserved_ids_refused_;
  prometheus::Counter* reload_ok_;
  prometheus::Counter* reload_failed_;
  prometheus::Histogram* auth_queue_;

  std::vector<std::string> endpoint_names_;
  std::vector<EndpointMetrics> endpoints_;
  std::mutex mutex_;  // guards the maps below
  std::map<std::string, std::unique_ptr<ServiceMetrics>, std::less<>> services_;
  std::map<std::string, prometheus::Counter*, std::less<>> auth_counters_;
  std::map<std::string, prometheus::Counter*, std::less<>> handshake_counters_;
};

}  // namespace zguard
