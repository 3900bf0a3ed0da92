// Routing state: see service_table.hpp for the contracts. The rules follow
// RFC 7 (Majordomo) and the zguard extensions in proto/PROTOCOL.md.
#include "service_table.hpp"

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>

#include "broker/config/units.hpp"

namespace zguard {
namespace {

std::uint64_t BodySize(const Frames& frames, std::size_t begin) {
  std::uint64_t total = 0;
  for (std::size_t i = begin; i < frames.size(); ++i) total += frames[i].size();
  return total;
}

std::string Seconds(std::chrono::milliseconds value) { return config::FormatDuration(value); }

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
  settings.max_queued_requests = config.broker.max_queued_requests;
  settings.unknown_service = config.broker.unknown_service;
  settings.services = config.services;
  return settings;
}

ServiceTable::ServiceTable(TableSettings settings, Transport& transport, Clock::time_point now)
    : settings_(std::move(settings)), transport_(transport) {
  if (settings_.metrics != nullptr) {
    unknown_metrics_ = settings_.metrics->ForService("_unknown");
    none_metrics_ = settings_.metrics->ForService("_none");
  }
  for (const auto& [name, service_config] : settings_.services) {
    Service* service = GetOrCreateService(name);
    service->declared = true;
  }
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

Service* ServiceTable::GetOrCreateService(std::string_view name) {
  auto it = services_.find(name);
  if (it != services_.end()) return it->second.get();
  auto service = std::make_unique<Service>();
  service->name = std::string(name);
  if (settings_.metrics != nullptr) service->metrics = settings_.metrics->ForService(name);
  service->request_timeout = settings_.request_timeout;
  service->max_queued = settings_.max_queued_requests;
  if (auto conf = settings_.services.find(name); conf != settings_.services.end()) {
    service->redispatch = conf->second.redispatch;
    service->forward_identity = conf->second.forward_identity;
    if (conf->second.request_timeout) service->request_timeout = *conf->second.request_timeout;
    if (conf->second.max_queued_requests) service->max_queued = *conf->second.max_queued_requests;
    // Validated by the config loader, so Add() cannot fail here.
    if (conf->second.clients_set) service->clients.set_configured();
    for (const auto& entry : conf->second.clients) service->clients.Add(entry);
    if (conf->second.workers_set) service->worker_rule.set_configured();
    for (const auto& entry : conf->second.workers) service->worker_rule.Add(entry);
  }
  Service* raw = service.get();
  services_.emplace(raw->name, std::move(service));
  return raw;
}

const Service* ServiceTable::FindService(std::string_view name) const {
  auto it = services_.find(name);
  return it == services_.end() ? nullptr : it->second.get();
}

std::size_t ServiceTable::WorkerCount() const {
  std::size_t count = 0;
  for (const auto& by_identity : workers_) count += by_identity.size();
  return count;
}

Request* ServiceTable::NewRequest() {
  std::uint32_t slot = 0;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<std::uint32_t>(slots_.size());
    slots_.push_back(std::make_unique<Request>());
    slots_.back()->id = slot;
  }
  Request& request = *slots_[slot];
  // Bump the generation so that a stale id (a late reply) never matches.
  request.id = (((request.id >> 32) + 1) << 32) | slot;
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
  request.body.clear();  // keeps capacity for the next request in this slot
  request.live = false;
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

void ServiceTable::OnClientMessage(std::uint16_t endpoint, Frames& frames,
                                   const proto::ClientMessage& msg, Clock::time_point now,
                                   const auth::Identity& who) {
  ClientAddress client;
  client.endpoint = endpoint;
  client.routing_id.assign(proto::View(frames[0]));
  client.has_delimiter = msg.has_delimiter;
  const std::string_view service_name = proto::View(frames[msg.service]);

  if (service_name.rfind(proto::kMmiPrefix, 0) == 0) {
    ++stats_.mmi;
    HandleMmi(client, service_name, frames, msg.body, who);
    return;
  }
  auto refuse = [&](proto::Status status, std::string_view reason) {
    const std::string code = std::to_string(static_cast<int>(status));
    transport_.SendToClient(client, service_name, {proto::kErrorMarker, code, reason});
  };
  const auto known = services_.find(service_name);
  const Service* existing = known == services_.end() ? nullptr : known->second.get();
  if (service_name.empty()) {
    ++stats_.bad_requests;
    if (none_metrics_ != nullptr) none_metrics_->Count(Outcome::kMalformed);
    refuse(proto::Status::kBadRequest, "empty service name");
    return;
  }
  if (!accepting_) {
    ++stats_.shutdown_refused;
    Count(existing, Outcome::kShutdown);
    refuse(proto::Status::kNoWorker, "broker is shutting down");
    return;
  }
  if (BodySize(frames, msg.body) > settings_.max_message_size) {
    ++stats_.too_large;
    Count(existing, Outcome::kTooLarge);
    refuse(proto::Status::kTooLarge, "request body exceeds max_message_size (" +
                                         config::FormatSize(settings_.max_message_size) + ")");
    return;
  }
  Service* service = known == services_.end() ? nullptr : known->second.get();
  if (service == nullptr) {
    if (settings_.unknown_service == config::UnknownService::kReject) {
      ++stats_.unknown_service;
      Count(nullptr, Outcome::kUnknownService);
      refuse(proto::Status::kUnknownService, "unknown service");
      return;
    }
    service = GetOrCreateService(service_name);
  }
  if (!service->clients.Allows(who)) {
    ++stats_.unauthorized;
    Count(service, Outcome::kUnauthorized);
    refuse(proto::Status::kForbidden, "not authorized to call this service");
    return;
  }
  if (service->queue.size() >= service->max_queued) {
    ++stats_.busy;
    Count(service, Outcome::kBusy);
    refuse(proto::Status::kBusy, "service queue is full (max_queued_requests " +
                                     std::to_string(service->max_queued) + ")");
    return;
  }

  Request& request = *NewRequest();
  request.client = std::move(client);
  request.service = service;
  request.received = now;
  request.deadline = now + service->request_timeout;
  if (service->forward_identity) {
    request.user.assign(who.user);
    request.roles.assign(who.roles);
  }
  for (std::size_t i = msg.body; i < frames.size(); ++i) {
    request.body.push_back(std::move(frames[i]));
  }
  ++stats_.requests;
  service->pending.PushBack(request);
  service->queue.PushBack(request);
  Dispatch(*service);
}

void ServiceTable::HandleMmi(const ClientAddress& client, std::string_view service, Frames& frames,
                             std::size_t body_begin, const auth::Identity& who) {
  if (service == "mmi.service") {
    if (body_begin >= frames.size()) {
      transport_.SendToClient(client, service, {"400"});
      return;
    }
    const Service* target = FindService(proto::View(frames[body_begin]));
    // A service the caller may not call is reported as absent.
    const bool visible = target != nullptr && target->clients.Allows(who);
    transport_.SendToClient(client, service, {visible && target->workers > 0 ? "200" : "404"});
    return;
  }
  transport_.SendToClient(client, service, {"501"});
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
  const std::string code = std::to_string(static_cast<int>(status));
  transport_.SendToClient(request.client, request.service->name,
                          {proto::kErrorMarker, code, reason});
  FreeRequest(request);
}

Worker* ServiceTable::FindWorker(std::uint16_t endpoint, std::string_view identity) {
  if (endpoint >= workers_.size()) return nullptr;
  auto it = workers_[endpoint].find(identity);
  return it == workers_[endpoint].end() ? nullptr : it->second.get();
}

void ServiceTable::MakeIdle(Worker& worker) {
  worker.busy = false;
  worker.current = 0;
  worker.service->idle.PushBack(worker);
  Dispatch(*worker.service);
}

void ServiceTable::OnWorkerMessage(std::uint16_t endpoint, Frames& frames,
                                   const proto::WorkerMessage& msg, Clock::time_point now,
                                   const auth::Identity& who) {
  const std::string_view identity = proto::View(frames[0]);
  Worker* worker = FindWorker(endpoint, identity);
  const auto expiry = now + settings_.heartbeat_interval * settings_.heartbeat_liveness;

  switch (msg.command) {
    case proto::WorkerCommand::kReady: {
      const std::string_view name = proto::View(frames[msg.arg]);
      if (worker != nullptr || name.rfind(proto::kMmiPrefix, 0) == 0) {
        // RFC 7: READY from a registered worker is a protocol error.
        ++stats_.malformed_worker;
        if (worker != nullptr) RemoveWorker(*worker, "sent READY twice");
        transport_.SendDisconnect(endpoint, identity);
        return;
      }
      const Service* existing = FindService(name);
      const auth::AccessList* rule = existing != nullptr ? &existing->worker_rule : nullptr;
      auth::AccessList configured;  // a service not created yet may still have a rule
      if (rule == nullptr) {
        if (auto conf = settings_.services.find(name); conf != settings_.services.end()) {
          if (conf->second.workers_set) configured.set_configured();
          for (const auto& entry : conf->second.workers) configured.Add(entry);
        }
        rule = &configured;
      }
      if (!rule->Allows(who)) {
        // An identity that may not serve this service: refused by protocol.
        ++stats_.unauthorized_workers;
        spdlog::warn("worker {} (key {}) may not serve {}: disconnected",
                     who.user.empty() ? "-" : who.user, who.key.empty() ? "-" : who.key, name);
        transport_.SendDisconnect(endpoint, identity);
        return;
      }
      if (workers_.size() <= endpoint) workers_.resize(endpoint + 1U);
      auto created = std::make_unique<Worker>();
      created->endpoint = endpoint;
      created->identity = std::string(identity);
      created->key = std::string(who.key);
      created->service = GetOrCreateService(name);
      created->expiry = expiry;
      Worker& added = *created;
      workers_[endpoint].emplace(added.identity, std::move(created));
      ++added.service->workers;
      ++stats_.workers_registered;
      MakeIdle(added);
      return;
    }
    case proto::WorkerCommand::kReply: {
      if (worker == nullptr) {
        ++stats_.malformed_worker;
        transport_.SendDisconnect(endpoint, identity);
        return;
      }
      worker->expiry = expiry;
      if (!worker->busy) {
        // RFC 7: a REPLY from a worker that holds no request is a protocol error.
        ++stats_.malformed_worker;
        RemoveWorker(*worker, "sent REPLY while idle");
        transport_.SendDisconnect(endpoint, identity);
        return;
      }
      const std::string_view address = proto::View(frames[msg.arg]);
      if (address != EncodeRequestId(worker->current)) {
        // Not the address we gave this worker: a confused or hostile worker.
        // Drop it; the worker stays busy with its real request.
        ++stats_.malformed_worker;
        return;
      }
      Request* request = LookupRequest(address);
      if (request != nullptr && request->worker == worker) {
        if (BodySize(frames, msg.body) > settings_.max_message_size) {
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
            metrics->duration->Observe(
                std::chrono::duration<double>(now - request->received).count());
          }
          FreeRequest(*request);
        }
      } else {
        // The request already timed out and was answered: drop the reply.
        ++stats_.late_replies;
        if (worker->service->metrics != nullptr)
          worker->service->metrics->late_replies->Increment();
      }
      MakeIdle(*worker);
      return;
    }
    case proto::WorkerCommand::kHeartbeat:
      if (worker == nullptr) {
        transport_.SendDisconnect(endpoint, identity);
        return;
      }
      worker->expiry = expiry;
      return;
    case proto::WorkerCommand::kDisconnect:
      if (worker != nullptr) RemoveWorker(*worker, "worker disconnected");
      return;
    case proto::WorkerCommand::kRequest:
      return;  // rejected by the decoder
  }
}

void ServiceTable::OnRevokedClient(std::uint16_t endpoint, Frames& frames,
                                   const proto::ClientMessage& msg) {
  ++stats_.revoked;
  if (none_metrics_ != nullptr) none_metrics_->Count(Outcome::kRevoked);
  ClientAddress client;
  client.endpoint = endpoint;
  client.routing_id.assign(proto::View(frames[0]));
  client.has_delimiter = msg.has_delimiter;
  const std::string code = std::to_string(static_cast<int>(proto::Status::kForbidden));
  transport_.SendToClient(client, proto::View(frames[msg.service]),
                          {proto::kErrorMarker, code, "credentials revoked"});
}

void ServiceTable::OnRevokedWorker(std::uint16_t endpoint, std::string_view identity) {
  ++stats_.revoked;
  if (Worker* worker = FindWorker(endpoint, identity)) RemoveWorker(*worker, "credentials revoked");
  transport_.SendDisconnect(endpoint, identity);
}

void ServiceTable::OnMalformedWorkerMessage(std::uint16_t endpoint, std::string_view identity,
                                            Clock::time_point /*now*/) {
  ++stats_.malformed_worker;
  if (Worker* worker = FindWorker(endpoint, identity)) {
    RemoveWorker(*worker, "sent a malformed message");
    transport_.SendDisconnect(endpoint, identity);
  }
}

void ServiceTable::RemoveWorker(Worker& worker, std::string_view why) {
  Service& service = *worker.service;
  service.idle.Remove(worker);
  --service.workers;
  if (worker.busy) {
    if (Request* request = LookupRequest(EncodeRequestId(worker.current))) {
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
  // Destroy last: `why` may point into the worker.
  const std::uint16_t endpoint = worker.endpoint;
  auto node = workers_[endpoint].find(worker.identity);
  std::unique_ptr<Worker> doomed = std::move(node->second);
  workers_[endpoint].erase(node);
  Dispatch(service);
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
      it = services_.erase(it);
    } else {
      ++it;
    }
  }
  if (now >= next_heartbeat_) {
    std::vector<Worker*> expired;
    for (auto& by_identity : workers_) {
      for (auto& [identity, worker] : by_identity) {
        if (worker->expiry <= now) {
          expired.push_back(worker.get());
        } else {
          transport_.SendHeartbeat(*worker);
        }
      }
    }
    for (Worker* worker : expired) {
      ++stats_.workers_expired;
      transport_.SendDisconnect(worker->endpoint, worker->identity);
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
  for (auto& by_identity : workers_) {
    for (auto& [identity, worker] : by_identity) {
      transport_.SendDisconnect(worker->endpoint, worker->identity);
    }
  }
}

}  // namespace zguard
