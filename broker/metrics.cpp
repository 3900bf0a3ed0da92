// The metric families and their help texts; see metrics.hpp.
#include "broker/metrics.hpp"

namespace zguard {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

// Request latencies from half a millisecond to the longest sensible timeout.
const prometheus::Histogram::BucketBoundaries kDurationBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
const prometheus::Histogram::BucketBoundaries kQueueBuckets = {
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};

}  // namespace

std::string_view ToString(Outcome outcome) {
  static constexpr std::array<std::string_view, static_cast<std::size_t>(Outcome::kCount)> kNames =
      {"ok",        "timeout", "no_worker",       "unauthorized", "worker_lost", "too_large",
       "malformed", "busy",    "unknown_service", "shutdown",     "revoked",     "client_gone"};
  return kNames[static_cast<std::size_t>(outcome)];
}

std::string_view ToString(WorkerRefusal refusal) {
  static constexpr std::array<std::string_view, static_cast<std::size_t>(WorkerRefusal::kCount)>
      kNames = {"not_registered", "not_allowed", "bad_service", "protocol"};
  return kNames[static_cast<std::size_t>(refusal)];
}

std::string_view ToString(Refusal refusal) {
  static constexpr std::array<std::string_view, static_cast<std::size_t>(Refusal::kCount)> kNames =
      {"routing_id_too_long", "no_connection", "internal_error"};
  return kNames[static_cast<std::size_t>(refusal)];
}

Metrics::Metrics(const config::Config& config)
    : registry_(std::make_shared<prometheus::Registry>()),
      auth_decisions_(BuildCounter()
                          .Name("zguard_auth_decisions_total")
                          .Help("Authentication decisions (ZAP) by endpoint, mechanism, decision "
                                "and reason")
                          .Register(*registry_)),
      handshake_failures_(BuildCounter()
                              .Name("zguard_handshake_failures_total")
                              .Help("Failed ZMTP handshakes seen by the endpoint's socket "
                                    "monitor, by reason")
                              .Register(*registry_)),
      connections_(BuildGauge()
                       .Name("zguard_connections")
                       .Help("Connections currently accepted by the endpoint")
                       .Register(*registry_)),
      messages_(BuildCounter()
                    .Name("zguard_messages_total")
                    .Help("Multipart messages through the endpoint, by direction (in|out)")
                    .Register(*registry_)),
      bytes_(BuildCounter()
                 .Name("zguard_bytes_total")
                 .Help("Bytes of message frames through the endpoint, by direction (in|out)")
                 .Register(*registry_)),
      malformed_(BuildCounter()
                     .Name("zguard_malformed_messages_total")
                     .Help("Messages dropped because they were not valid Majordomo")
                     .Register(*registry_)),
      dropped_(BuildCounter()
                   .Name("zguard_dropped_messages_total")
                   .Help("Messages the broker could not hand to a peer, by reason (peer_gone: "
                         "it disconnected; queue_full: broker.send_queue messages were waiting)")
                   .Register(*registry_)),
      refused_(BuildCounter()
                   .Name("zguard_refused_messages_total")
                   .Help("Messages refused before they reached Majordomo, by reason "
                         "(routing_id_too_long, no_connection, internal_error)")
                   .Register(*registry_)),
      closed_silent_(BuildCounter()
                         .Name("zguard_connections_closed_silent_total")
                         .Help("Connections that closed without delivering a single message: "
                               "refused or failed handshakes, peers speaking ZMTP 1.0/2.0, "
                               "probes")
                         .Register(*registry_)),
      worker_refusals_(BuildCounter()
                           .Name("zguard_worker_refusals_total")
                           .Help("Workers sent DISCONNECT, by reason (not_registered: a "
                                 "worker command from a connection that never sent READY; "
                                 "not_allowed: services.NAME.workers; bad_service: the name is "
                                 "too long, undeclared or over the cap; protocol)")
                           .Register(*registry_)),
      requests_(BuildCounter()
                    .Name("zguard_requests_total")
                    .Help("Client requests by service and outcome")
                    .Register(*registry_)),
      duration_(BuildHistogram()
                    .Name("zguard_request_duration_seconds")
                    .Help("Time from a request's arrival to its reply leaving the broker")
                    .Register(*registry_)),
      workers_(BuildGauge()
                   .Name("zguard_workers")
                   .Help("Registered workers by service and state (idle|busy)")
                   .Register(*registry_)),
      queued_(BuildGauge()
                  .Name("zguard_requests_queued")
                  .Help("Requests waiting for a worker, by service")
                  .Register(*registry_)),
      late_replies_(BuildCounter()
                        .Name("zguard_late_replies_total")
                        .Help("Worker replies dropped because the request had already been "
                              "answered (timed out)")
                        .Register(*registry_)),
      reloads_(BuildCounter()
                   .Name("zguard_config_reloads_total")
                   .Help("Reloads of the security files, by result (ok|failed)")
                   .Register(*registry_)),
      auth_queue_family_(BuildHistogram()
                             .Name("zguard_authenticator_queue_seconds")
                             .Help("Time a ZAP request waited before its check started")
                             .Register(*registry_)),
      build_info_(BuildGauge()
                      .Name("zguard_build_info")
                      .Help("Always 1; the version is in the label")
                      .Register(*registry_)),
      reserved_ids_family_(
          BuildGauge()
              .Name("zguard_libzmq_reserved_routing_ids_refused")
              .Help("1 when the linked libzmq refuses peer-chosen routing ids that start with a "
                    "zero byte (checked at start-up); 0 means a peer has a small chance per "
                    "connection of crashing the broker (see SECURITY.md)")
              .Register(*registry_)) {
  reserved_ids_refused_ = &reserved_ids_family_.Add({});
  reload_ok_ = &reloads_.Add({{"result", "ok"}});
  reload_failed_ = &reloads_.Add({{"result", "failed"}});
  auth_queue_ = &auth_queue_family_.Add({}, kQueueBuckets);
  build_info_.Add({{"version", ZGUARD_VERSION}}).Set(1);
  for (const auto& endpoint : config.endpoints) {
    EndpointMetrics handles;
    const prometheus::Labels in{{"endpoint", endpoint.name}, {"direction", "in"}};
    const prometheus::Labels out{{"endpoint", endpoint.name}, {"direction", "out"}};
    handles.messages_in = &messages_.Add(in);
    handles.messages_out = &messages_.Add(out);
    handles.bytes_in = &bytes_.Add(in);
    handles.bytes_out = &bytes_.Add(out);
    handles.connections = &connections_.Add({{"endpoint", endpoint.name}});
    handles.malformed = &malformed_.Add({{"endpoint", endpoint.name}});
    handles.dropped_peer_gone =
        &dropped_.Add({{"endpoint", endpoint.name}, {"reason", "peer_gone"}});
    handles.dropped_queue_full =
        &dropped_.Add({{"endpoint", endpoint.name}, {"reason", "queue_full"}});
    for (std::size_t i = 0; i < handles.refused.size(); ++i) {
      handles.refused[i] = &refused_.Add(
          {{"endpoint", endpoint.name}, {"reason", std::string(ToString(Refusal(i)))}});
    }
    handles.closed_silent = &closed_silent_.Add({{"endpoint", endpoint.name}});
    for (std::size_t i = 0; i < handles.workers_refused.size(); ++i) {
      handles.workers_refused[i] = &worker_refusals_.Add(
          {{"endpoint", endpoint.name}, {"reason", std::string(ToString(WorkerRefusal(i)))}});
    }
    endpoints_.push_back(handles);
    endpoint_names_.push_back(endpoint.name);
  }
}

namespace {

// Prometheus label values must be UTF-8; a peer may name a service with any
// bytes. Control characters are refused too (they make unreadable series).
bool IsPrintableUtf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t extra = 0;
    if (c < 0x20 || c == 0x7f) return false;
    if (c < 0x80) {
      extra = 0;
    } else if ((c & 0xe0) == 0xc0 && c >= 0xc2) {
      extra = 1;
    } else if ((c & 0xf0) == 0xe0) {
      extra = 2;
    } else if ((c & 0xf8) == 0xf0 && c <= 0xf4) {
      extra = 3;
    } else {
      return false;
    }
    for (std::size_t k = 1; k <= extra; ++k) {
      if (i + k >= text.size() || (static_cast<unsigned char>(text[i + k]) & 0xc0) != 0x80) {
        return false;
      }
    }
    i += extra + 1;
  }
  return true;
}

}  // namespace

ServiceMetrics* Metrics::ForService(std::string_view service) {
  if (!IsPrintableUtf8(service)) service = "_invalid";
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = services_.find(service);
  if (it != services_.end()) return it->second.get();
  if (services_.size() >= kMaxServices) {
    it = services_.find(std::string_view("_other"));
    if (it != services_.end()) return it->second.get();
    service = "_other";
  }
  auto handles = std::make_unique<ServiceMetrics>();
  const std::string name(service);
  for (std::size_t i = 0; i < handles->requests.size(); ++i) {
    handles->requests[i] =
        &requests_.Add({{"service", name}, {"outcome", std::string(ToString(Outcome(i)))}});
  }
  handles->duration = &duration_.Add({{"service", name}}, kDurationBuckets);
  handles->idle = &workers_.Add({{"service", name}, {"state", "idle"}});
  handles->busy = &workers_.Add({{"service", name}, {"state", "busy"}});
  handles->queued = &queued_.Add({{"service", name}});
  handles->late_replies = &late_replies_.Add({{"service", name}});
  ServiceMetrics* raw = handles.get();
  services_.emplace(name, std::move(handles));
  return raw;
}

void Metrics::ReleaseService(ServiceMetrics* handles) {
  if (handles == nullptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = services_.begin(); it != services_.end(); ++it) {
    if (it->second.get() != handles) continue;
    for (const char* shared : {"_other", "_invalid", "_unknown", "_none"}) {
      if (it->first == shared) return;  // shared buckets are never removed
    }
    for (auto* counter : handles->requests) requests_.Remove(counter);
    duration_.Remove(handles->duration);
    workers_.Remove(handles->idle);
    workers_.Remove(handles->busy);
    queued_.Remove(handles->queued);
    late_replies_.Remove(handles->late_replies);
    services_.erase(it);
    return;
  }
}

void Metrics::CountAuthDecision(std::string_view endpoint, std::string_view mechanism, bool allowed,
                                std::string_view reason) {
  std::string key(endpoint);
  key += '\n';
  key.append(mechanism);
  key += allowed ? "\nallowed\n" : "\ndenied\n";
  key.append(reason);
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = auth_counters_.find(key);
  if (it == auth_counters_.end()) {
    auto& counter = auth_decisions_.Add({{"endpoint", std::string(endpoint)},
                                         {"mechanism", std::string(mechanism)},
                                         {"decision", allowed ? "allowed" : "denied"},
                                         {"reason", std::string(reason)}});
    it = auth_counters_.emplace(key, &counter).first;
  }
  it->second->Increment();
}

void Metrics::CountHandshakeFailure(std::size_t endpoint, std::string_view reason) {
  std::string key = endpoint_names_.at(endpoint);
  key += '\n';
  key.append(reason);
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = handshake_counters_.find(key);
  if (it == handshake_counters_.end()) {
    auto& counter = handshake_failures_.Add(
        {{"endpoint", endpoint_names_.at(endpoint)}, {"reason", std::string(reason)}});
    it = handshake_counters_.emplace(key, &counter).first;
  }
  it->second->Increment();
}

}  // namespace zguard
