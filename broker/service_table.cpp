// Routing state: see service_table.hpp for the contracts. The rules follow
// RFC 7 (Majordomo) and the zguard extensions in proto/PROTOCOL.md.
#include "service_table.hpp"

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>

#include "broker/config/units.hpp"
#include "broker/logging.hpp"

namespace zguard {
namespace {

// A request slot keeps this many body frames' worth of vector capacity between requests;
// anything above is given back when the request ends.
constexpr std::size_t kKeptFrameCapacity = 8;

std::uint64_t BodySize(const Frames& frames, std::size_t begin) {
  std::uint64_t total = 0;
  for (std::size_t i = begin; i < frames.size(); ++i) total += frames[i].size();
  return total;
}

// Body frames of a message of `frame_count` frames (0: all of `frames` were kept) whose body
// starts at `begin`.
std::size_t BodyFrames(const Frames& frames, std::size_t frame_count, std::size_t begin) {
  const std::size_t total = frame_count == 0 ? frames.size() : frame_count;
  return total > begin ? total - begin : 0;
}

std::string Seconds(std::chrono::milliseconds value) { return config::FormatDuration(value); }

std::string Code(proto::Status status) { return std::to_string(static_cast<int>(status)); }

}  // namespace

std::string EncodeRequestId(std::uint64_t id) {
  std::string out(sizeof id, '\0');
  std::memcpy(out.data(), &id, sizeof id);
  return out;
}

TableSettings TableSettings::From(const config::Config& config) {
  TableSettings settings;
  settings.request_timeout = config.broker.request_timeout;
  settings.heartbeat_interval = config.broker.heartbeat_interval;
  settings.heartbeat_liveness = config.broker.heartbeat_liveness;
  settings.max_message_size = config.broker.max_message_size;
  settings.max_frames = config.broker.max_frames;
  settings.max_queued_requests = config.broker.max_queued_requests;
  settings.unknown_service = config.broker.unknown_service;
  settings.undeclared_services = config.broker.undeclared_services;
  settings.max_undeclared_services = config.broker.max_undeclared_services;
  settings.service_retention = config.broker.service_retention;
  settings.services = config.services;
  for (const auto& endpoint : config.endpoints) settings.endpoint_names.push_back(endpoint.name);
  return settings;
}

ServiceTable::ServiceTable(TableSettings settings, Transport& transport, Clock::time_point now)
    : settings_(std::move(settings)), transport_(transport) {
  if (settings_.metrics != nullptr) {
    unknown_metrics_ = settings_.metrics->ForService("_unknown");
    none_metrics_ = settings_.metrics->ForService("_none");
  }
  for (const auto& [name, service_config] : settings_.services) GetOrCreateService(name);
  next_heartbeat_ = now + settings_.heartbeat_interval;
}

ServiceTable::~ServiceTable() = default;

void ServiceTable::Count(const Service* service, Outcome outcome) {
  if (settings_.metrics == nullptr) return;
  ServiceMetrics* metrics = service != nullptr ? service->metrics : unknown_metrics_;
  metrics->Count(outcome);
}

void ServiceTable::UpdateGauges(const Service& service) {
  if (service.metrics == nullptr) return;
  const auto idle = static_cast<double>(service.idle.size());
  service.metrics->idle->Set(idle);
  service.metrics->busy->Set(static_cast<double>(service.workers) - idle);
  service.metrics->queued->Set(static_cast<double>(service.queue.size()));
}

std::string_view ServiceTable::EndpointName(std::uint16_t endpoint) const {
  if (endpoint >= settings_.endpoint_names.size()) return "?";
  return settings_.endpoint_names[endpoint];
}

void ServiceTable::DisconnectWorker(const Peer& peer, WorkerRefusal why) {
  if (settings_.metrics != nullptr) settings_.metrics->endpoint(peer.endpoint).Refused(why);
  transport_.SendDisconnect(peer.endpoint, peer.routing_id);
}

Service* ServiceTable::GetOrCreateService(std::string_view name, const char** why) {
  auto it = services_.find(name);
  if (it != services_.end()) return it->second.get();
  const auto conf = settings_.services.find(name);
  const bool declared = conf != settings_.services.end();
  if (!declared) {
    if (settings_.undeclared_services == config::UndeclaredServices::kDeny) {
      if (why != nullptr) *why = "the service is not declared (broker.undeclared_services: deny)";
      return nullptr;
    }
    if (undeclared_ >= settings_.max_undeclared_services) {
      if (why != nullptr) {
        *why = "too many undeclared services at once (broker.max_undeclared_services)";
      }
      return nullptr;
    }
  }
  auto service = std::make_unique<Service>();
  service->name = std::string(name);
  service->declared = declared;
  if (settings_.metrics != nullptr) service->metrics = settings_.metrics->ForService(name);
  service->request_timeout = settings_.request_timeout;
  service->max_queued = settings_.max_queued_requests;
  if (declared) {
    service->redispatch = conf->second.redispatch;
    service->forward_identity = conf->second.forward_identity;
    if (conf->second.request_timeout) service->request_timeout = *conf->second.request_timeout;
    if (conf->second.max_queued_requests) service->max_queued = *conf->second.max_queued_requests;
    // Validated by the config loader, so Add() cannot fail here.
    if (conf->second.clients_set) service->clients.set_configured();
    for (const auto& entry : conf->second.clients) service->clients.Add(entry);
    if (conf->second.workers_set) service->worker_rule.set_configured();
    for (const auto& entry : conf->second.workers) service->worker_rule.Add(entry);
  } else {
    ++undeclared_;
  }
  Service* raw = service.get();
  services_.emplace(raw->name, std::move(service));
  return raw;
}

void ServiceTable::EraseService(
    std::map<std::string, std::unique_ptr<Service>, std::less<>>::iterator it) {
  Service& service = *it->second;
  if (!service.declared) --undeclared_;
  // Its metric series go with it, so that names that come and go cannot grow /metrics.
  if (settings_.metrics != nullptr && service.metrics != nullptr) {
    settings_.metrics->ReleaseService(service.metrics);
  }
  services_.erase(it);
}

const Service* ServiceTable::FindService(std::string_view name) const {
  auto it = services_.find(name);
  return it == services_.end() ? nullptr : it->second.get();
}

Peer& ServiceTable::OpenPeer(std::uint16_t endpoint, std::string_view routing_id,
                             const auth::Identity& identity) {
  auto peer = std::make_unique<Peer>();
  peer->serial = ++next_peer_serial_;
  peer->endpoint = endpoint;
  peer->routing_id.assign(routing_id);
  peer->user.assign(identity.user);
  peer->roles.assign(identity.roles);
  peer->key.assign(identity.key);
  Peer& raw = *peer;
  peers_.emplace(&raw, std::move(peer));
  return raw;
}

void ServiceTable::ClosePeer(Peer& peer, std::string_view why) {
  if (peer.worker) RemoveWorker(*peer.worker, why);
  // Nobody is left to answer: the requests it sent end here, unanswered. A worker that holds
  // one stays busy until it replies (that reply is dropped as late) or dies.
  while (!peer.requests.empty()) {
    Request& request = *peer.requests.front();
    ++stats_.client_gone;
    Count(request.service, Outcome::kClientGone);
    Service* service = request.service;
    FreeRequest(request);
    if (service != nullptr) UpdateGauges(*service);
  }
  peers_.erase(&peer);
}

Request* ServiceTable::NewRequest() {
  std::uint32_t slot = 0;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<std::uint32_t>(slots_.size());
    slots_.push_back(std::make_unique<Request>());
  }
  Request& request = *slots_[slot];
  // A new generation for every use of the slot: a late or forged reply for an
  // old request can never match the new one.
  const std::uint64_t generation = (request.id >> 32) + 1;
  request.id = (generation << 32) | slot;
  request.live = true;
  request.attempts = 0;
  request.worker = nullptr;
  // Single writer: a plain load and store, no read-modify-write on the hot path.
  live_requests_.store(live_requests_.load(std::memory_order_relaxed) + 1,
                       std::memory_order_relaxed);
  return &request;
}

void ServiceTable::FreeRequest(Request& request) {
  if (request.service != nullptr) {
    request.service->queue.Remove(request);
    request.service->pending.Remove(request);
  }
  if (request.client != nullptr) request.client->requests.Remove(request);
  if (request.body.capacity() > kKeptFrameCapacity) {
    Frames().swap(request.body);  // a request of many frames gives the memory back
  } else {
    request.body.clear();  // keeps a little capacity for the next request in this slot
  }
  request.live = false;
  request.client = nullptr;
  request.service = nullptr;
  request.worker = nullptr;
  free_slots_.push_back(static_cast<std::uint32_t>(request.id & 0xffffffffU));
  live_requests_.store(live_requests_.load(std::memory_order_relaxed) - 1,
                       std::memory_order_relaxed);
}

Request* ServiceTable::LookupRequest(std::string_view encoded_id) {
  if (encoded_id.size() != sizeof(std::uint64_t)) return nullptr;
  std::uint64_t id = 0;
  std::memcpy(&id, encoded_id.data(), sizeof id);
  const auto slot = static_cast<std::size_t>(id & 0xffffffffU);
  if (slot >= slots_.size()) return nullptr;
  Request& request = *slots_[slot];
  return request.live && request.id == id ? &request : nullptr;
}

void ServiceTable::Refuse(const Peer& client, bool has_delimiter, std::string_view service,
                          proto::Status status, std::string_view reason) {
  const std::string code = Code(status);
  transport_.SendToClient(client, has_delimiter, service, {proto::kErrorMarker, code, reason});
}

void ServiceTable::OnClientMessage(Peer& peer, Frames& frames, const proto::ClientMessage& msg,
                                   Clock::time_point now, std::size_t frame_count) {
  const bool delimiter = msg.has_delimiter;
  const std::string_view service_name = proto::View(frames[msg.service]);

  if (service_name.rfind(proto::kMmiPrefix, 0) == 0) {
    ++stats_.mmi;
    HandleMmi(peer, delimiter, service_name, frames, msg.body);
    return;
  }
  const auto known = services_.find(service_name);
  Service* service = known == services_.end() ? nullptr : known->second.get();
  if (service_name.empty() || service_name.size() > proto::kMaxServiceName) {
    ++stats_.bad_requests;
    if (none_metrics_ != nullptr) none_metrics_->Count(Outcome::kMalformed);
    Refuse(peer, delimiter, service_name, proto::Status::kBadRequest,
           service_name.empty() ? "empty service name" : "service name longer than 255 bytes");
    return;
  }
  if (!accepting_) {
    ++stats_.shutdown_refused;
    Count(service, Outcome::kShutdown);
    Refuse(peer, delimiter, service_name, proto::Status::kNoWorker, "broker is shutting down");
    return;
  }
  const std::size_t body_frames = BodyFrames(frames, frame_count, msg.body);
  if (body_frames > settings_.max_frames) {
    ++stats_.too_large;
    Count(service, Outcome::kTooLarge);
    Refuse(peer, delimiter, service_name, proto::Status::kTooLarge,
           "request has " + std::to_string(body_frames) + " body frames, more than max_frames (" +
               std::to_string(settings_.max_frames) + ")");
    return;
  }
  if (BodySize(frames, msg.body) > settings_.max_message_size) {
    ++stats_.too_large;
    Count(service, Outcome::kTooLarge);
    Refuse(peer, delimiter, service_name, proto::Status::kTooLarge,
           "request body exceeds max_message_size (" +
               config::FormatSize(settings_.max_message_size) + ")");
    return;
  }
  if (service == nullptr && settings_.unknown_service == config::UnknownService::kQueue) {
    service = GetOrCreateService(service_name);
  }
  if (service == nullptr) {
    ++stats_.unknown_service;
    Count(nullptr, Outcome::kUnknownService);
    Refuse(peer, delimiter, service_name, proto::Status::kUnknownService, "unknown service");
    return;
  }
  if (!service->clients.Allows(peer.identity())) {
    // Answered exactly like a service that does not exist (as mmi.service does), so that a
    // caller cannot learn which services exist that it may not call. Counted as what it is.
    ++stats_.unauthorized;
    Count(service, Outcome::kUnauthorized);
    Refuse(peer, delimiter, service_name, proto::Status::kUnknownService, "unknown service");
    return;
  }
  if (service->queue.size() >= service->max_queued) {
    ++stats_.busy;
    Count(service, Outcome::kBusy);
    Refuse(
        peer, delimiter, service_name, proto::Status::kBusy,
        "service queue is full (max_queued_requests " + std::to_string(service->max_queued) + ")");
    return;
  }

  Request& request = *NewRequest();
  request.client = &peer;
  request.has_delimiter = delimiter;
  request.service = service;
  request.received = now;
  request.deadline = now + service->request_timeout;
  if (service->forward_identity) {
    request.user.assign(peer.user);
    request.roles.assign(peer.roles);
  }
  for (std::size_t i = msg.body; i < frames.size(); ++i) {
    request.body.push_back(std::move(frames[i]));
  }
  ++stats_.requests;
  peer.requests.PushBack(request);
  service->pending.PushBack(request);
  service->queue.PushBack(request);
  Dispatch(*service);
}

void ServiceTable::HandleMmi(const Peer& client, bool has_delimiter, std::string_view service,
                             Frames& frames, std::size_t body_begin) {
  if (service == "mmi.service") {
    if (body_begin >= frames.size()) {
      transport_.SendToClient(client, has_delimiter, service, {"400"});
      return;
    }
    const Service* target = FindService(proto::View(frames[body_begin]));
    // A service the caller may not call is reported as absent (a call answers 404 too).
    const bool visible = target != nullptr && target->clients.Allows(client.identity());
    transport_.SendToClient(client, has_delimiter, service,
                            {visible && target->workers > 0 ? "200" : "404"});
    return;
  }
  transport_.SendToClient(client, has_delimiter, service, {"501"});
}

void ServiceTable::Dispatch(Service& service) {
  while (!service.queue.empty() && !service.idle.empty()) {
    Worker& worker = *service.idle.PopFront();
    Request& request = *service.queue.PopFront();
    worker.busy = true;
    worker.current = request.id;
    request.worker = &worker;
    ++request.attempts;
    transport_.SendRequest(worker, request, service.redispatch);
  }
  UpdateGauges(service);  // every change of idle workers or queue passes here
}

void ServiceTable::Answer(Request& request, proto::Status status, std::string_view reason) {
  const std::string code = Code(status);
  if (request.client != nullptr) {
    transport_.SendToClient(*request.client, request.has_delimiter, request.service->name,
                            {proto::kErrorMarker, code, reason});
  }
  FreeRequest(request);
}

void ServiceTable::MakeIdle(Worker& worker) {
  worker.busy = false;
  worker.current = 0;
  worker.service->idle.PushBack(worker);
  Dispatch(*worker.service);
}

void ServiceTable::HandleReady(Peer& peer, std::string_view name, Clock::time_point expiry) {
  if (peer.worker || name.rfind(proto::kMmiPrefix, 0) == 0) {
    // RFC 7: READY from a registered worker is a protocol error.
    ++stats_.malformed_worker;
    if (peer.worker) RemoveWorker(*peer.worker, "sent READY twice");
    DisconnectWorker(peer, WorkerRefusal::kProtocol);
    return;
  }
  const char* why = nullptr;
  if (name.size() > proto::kMaxServiceName) why = "the service name is longer than 255 bytes";
  const Service* existing = why == nullptr ? FindService(name) : nullptr;
  const auth::AccessList* rule = existing != nullptr ? &existing->worker_rule : nullptr;
  auth::AccessList configured;  // a declared service always exists; this is for the others
  if (rule == nullptr) rule = &configured;
  if (why == nullptr && !rule->Allows(peer.identity())) {
    // An identity that may not serve this service: refused by protocol.
    ++stats_.unauthorized_workers;
    spdlog::warn("endpoint {}: worker {} (key {}) may not serve {}: disconnected",
                 EndpointName(peer.endpoint), peer.user.empty() ? "-" : LogSafe(peer.user),
                 peer.key.empty() ? "-" : peer.key, LogSafe(name));
    DisconnectWorker(peer, WorkerRefusal::kNotAllowed);
    return;
  }
  Service* service = why == nullptr ? GetOrCreateService(name, &why) : nullptr;
  if (service == nullptr) {
    ++stats_.refused_services;
    spdlog::warn("endpoint {}: worker {} may not register service {}: {}; disconnected",
                 EndpointName(peer.endpoint), peer.user.empty() ? "-" : LogSafe(peer.user),
                 LogSafe(name), why);
    DisconnectWorker(peer, WorkerRefusal::kBadService);
    return;
  }
  peer.worker = std::make_unique<Worker>();
  Worker& added = *peer.worker;
  added.peer = &peer;
  added.service = service;
  added.expiry = expiry;
  workers_.PushBack(added);
  ++service->workers;
  ++stats_.workers_registered;
  MakeIdle(added);
}

void ServiceTable::OnWorkerMessage(Peer& peer, Frames& frames, const proto::WorkerMessage& msg,
                                   Clock::time_point now, std::size_t frame_count) {
  Worker* worker = peer.worker.get();
  const auto expiry = now + settings_.heartbeat_interval * settings_.heartbeat_liveness;

  switch (msg.command) {
    case proto::WorkerCommand::kReady:
      HandleReady(peer, proto::View(frames[msg.arg]), expiry);
      return;
    case proto::WorkerCommand::kReply:
      if (worker == nullptr) break;
      worker->expiry = expiry;
      if (!worker->busy) {
        // RFC 7: a REPLY from a worker that holds no request is a protocol error.
        ++stats_.malformed_worker;
        RemoveWorker(*worker, "sent REPLY while idle");
        DisconnectWorker(peer, WorkerRefusal::kProtocol);
        return;
      }
      if (proto::View(frames[msg.arg]) != EncodeRequestId(worker->current)) {
        // Not the address we gave this worker: a confused or hostile worker.
        // Drop it; the worker stays busy with its real request.
        ++stats_.malformed_worker;
        return;
      }
      HandleReply(peer, *worker, frames, msg, now, frame_count);
      return;
    case proto::WorkerCommand::kHeartbeat:
      if (worker == nullptr) break;
      worker->expiry = expiry;
      return;
    case proto::WorkerCommand::kDisconnect:
      if (worker != nullptr) RemoveWorker(*worker, "worker disconnected");
      return;
    case proto::WorkerCommand::kRequest:
      return;  // rejected by the decoder
  }
  // HEARTBEAT or REPLY from a connection that never registered (RFC 7: DISCONNECT). This is
  // also what a connection gets that took over the routing id of a worker that is gone.
  ++stats_.unregistered_workers;
  DisconnectWorker(peer, WorkerRefusal::kNotRegistered);
}

void ServiceTable::HandleReply(Peer& /*peer*/, Worker& worker, Frames& frames,
                               const proto::WorkerMessage& msg, Clock::time_point now,
                               std::size_t frame_count) {
  Request* request = LookupRequest(proto::View(frames[msg.arg]));
  if (request != nullptr && request->worker == &worker) {
    const std::size_t body_frames = BodyFrames(frames, frame_count, msg.body);
    if (body_frames > settings_.max_frames) {
      ++stats_.too_large;
      Count(request->service, Outcome::kTooLarge);
      Answer(*request, proto::Status::kTooLarge,
             "reply has " + std::to_string(body_frames) + " body frames, more than max_frames (" +
                 std::to_string(settings_.max_frames) + ")");
    } else if (BodySize(frames, msg.body) > settings_.max_message_size) {
      ++stats_.too_large;
      Count(request->service, Outcome::kTooLarge);
      Answer(*request, proto::Status::kTooLarge,
             "reply body exceeds max_message_size (" +
                 config::FormatSize(settings_.max_message_size) + ")");
    } else {
      transport_.SendReply(*request, frames, msg.body);
      ++stats_.replies;
      if (const ServiceMetrics* metrics = request->service->metrics) {
        metrics->Count(Outcome::kOk);
        metrics->duration->Observe(std::chrono::duration<double>(now - request->received).count());
      }
      FreeRequest(*request);
    }
  } else {
    // The request was already answered (timed out, revoked) or its client is gone.
    ++stats_.late_replies;
    if (worker.service->metrics != nullptr) worker.service->metrics->late_replies->Increment();
  }
  MakeIdle(worker);
}

void ServiceTable::OnRevokedClient(Peer& peer, Frames& frames, const proto::ClientMessage& msg) {
  ++stats_.revoked;
  if (none_metrics_ != nullptr) none_metrics_->Count(Outcome::kRevoked);
  Refuse(peer, msg.has_delimiter, proto::View(frames[msg.service]), proto::Status::kForbidden,
         "credentials revoked");
}

void ServiceTable::OnRevokedWorker(Peer& peer) {
  ++stats_.revoked;
  if (peer.worker) RemoveWorker(*peer.worker, "credentials revoked");
  transport_.SendDisconnect(peer.endpoint, peer.routing_id);
}

void ServiceTable::OnMalformedWorkerMessage(Peer& peer) {
  ++stats_.malformed_worker;
  if (peer.worker) {
    RemoveWorker(*peer.worker, "sent a malformed message");
    DisconnectWorker(peer, WorkerRefusal::kProtocol);
  }
}

void ServiceTable::RevokePeers(const std::vector<Peer*>& doomed) {
  for (Peer* peer : doomed) peer->revoked = true;
  // 1. What revoked clients asked for ends now with 403, queued or in flight, so that none of
  //    it reaches a worker after this point (an in-flight one's late reply is dropped).
  for (Peer* peer : doomed) {
    while (!peer->requests.empty()) {
      Request& request = *peer->requests.front();
      ++stats_.revoked;
      Count(request.service, Outcome::kRevoked);
      Service* service = request.service;
      Answer(request, proto::Status::kForbidden, "credentials revoked");
      UpdateGauges(*service);
    }
  }
  // 2. Every revoked worker goes before any request is re-sent: a request its worker held is
  //    queued again only among workers that stay.
  std::vector<Service*> touched;
  for (Peer* peer : doomed) {
    if (!peer->worker) continue;
    touched.push_back(peer->worker->service);
    RemoveWorker(*peer->worker, "credentials revoked", /*dispatch=*/false);
    transport_.SendDisconnect(peer->endpoint, peer->routing_id);
  }
  // 3. Now the survivors get the re-sent requests.
  std::sort(touched.begin(), touched.end());
  touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
  for (Service* service : touched) Dispatch(*service);
}

void ServiceTable::RemoveWorker(Worker& worker, std::string_view why, bool dispatch) {
  Service& service = *worker.service;
  service.idle.Remove(worker);
  workers_.Remove(worker);
  --service.workers;
  if (worker.busy) {
    if (Request* request = LookupRequest(EncodeRequestId(worker.current));
        request != nullptr && request->worker == &worker) {
      request->worker = nullptr;
      if (service.redispatch && request->attempts < 2) {
        ++stats_.redispatched;
        service.queue.PushFront(*request);
      } else {
        ++stats_.worker_lost;
        Count(&service, Outcome::kWorkerLost);
        reason_.assign("worker lost while handling the request (");
        reason_.append(why);
        reason_.append(")");
        Answer(*request, proto::Status::kWorkerLost, reason_);
      }
    }
  }
  // Destroy last: `why` may point into the worker or its peer.
  std::unique_ptr<Worker> doomed = std::move(worker.peer->worker);
  if (dispatch) {
    Dispatch(service);
  } else {
    UpdateGauges(service);
  }
}

void ServiceTable::ExpireRequests(Service& service, Clock::time_point now) {
  while (!service.pending.empty() && service.pending.front()->deadline <= now) {
    Request& request = *service.pending.front();
    if (request.worker != nullptr) {
      ++stats_.timeouts;
      Count(&service, Outcome::kTimeout);
      // The worker stays busy until its (late) reply or its death.
      Answer(request, proto::Status::kTimeout,
             "worker did not reply within " + Seconds(service.request_timeout));
    } else {
      ++stats_.no_worker;
      Count(&service, Outcome::kNoWorker);
      Answer(request, proto::Status::kNoWorker,
             service.workers == 0
                 ? "no worker for the service within " + Seconds(service.request_timeout)
                 : "all workers busy for " + Seconds(service.request_timeout));
    }
  }
}

void ServiceTable::OnTimer(Clock::time_point now) {
  for (auto it = services_.begin(); it != services_.end();) {
    Service& service = *it->second;
    ExpireRequests(service, now);
    UpdateGauges(service);
    // An undeclared service with no workers and no requests is forgotten once
    // it has stayed so for service_retention.
    const bool unused = !service.declared && service.workers == 0 && service.pending.empty();
    if (!unused) {
      service.unused_since = Clock::time_point{};
    } else if (service.unused_since == Clock::time_point{}) {
      service.unused_since = now;
    }
    if (unused && now - service.unused_since >= settings_.service_retention) {
      EraseService(it++);
    } else {
      ++it;
    }
  }
  if (now >= next_heartbeat_) {
    std::vector<Worker*> expired;
    for (Worker* worker = workers_.front(); worker != nullptr; worker = worker->all.next) {
      if (worker->expiry <= now) {
        expired.push_back(worker);
      } else {
        transport_.SendHeartbeat(*worker);
      }
    }
    for (Worker* worker : expired) {
      ++stats_.workers_expired;
      const Peer& peer = *worker->peer;
      spdlog::info("endpoint {}: worker {} of service {} sent nothing for {}: dropped",
                   EndpointName(peer.endpoint), LogSafe(peer.user), LogSafe(worker->service->name),
                   Seconds(settings_.heartbeat_interval * settings_.heartbeat_liveness));
      transport_.SendDisconnect(peer.endpoint, peer.routing_id);
      RemoveWorker(*worker, "heartbeat expired");
    }
    next_heartbeat_ = now + settings_.heartbeat_interval;
  }
}

Clock::time_point ServiceTable::NextTimer() const {
  Clock::time_point next = next_heartbeat_;
  for (const auto& [name, service] : services_) {
    if (!service->pending.empty()) next = std::min(next, service->pending.front()->deadline);
  }
  return next;
}

void ServiceTable::FailAllAndDisconnect(std::string_view reason) {
  for (auto& [name, service] : services_) {
    while (!service->pending.empty()) {
      Request& request = *service->pending.front();
      ++stats_.shutdown_refused;
      Count(service.get(), Outcome::kShutdown);
      Answer(request, proto::Status::kNoWorker, reason);
    }
  }
  for (Worker* worker = workers_.front(); worker != nullptr; worker = worker->all.next) {
    transport_.SendDisconnect(worker->peer->endpoint, worker->peer->routing_id);
  }
}

}  // namespace zguard
