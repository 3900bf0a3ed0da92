// The routing state of the broker: services, their workers (idle in LRU
// order), queued and in-flight requests and their deadlines. It owns no
// sockets: the Router feeds it decoded messages and the time, and it answers
// through the Transport interface. Everything here runs on the routing
// thread only, so nothing is locked. Request bodies are moved in and out as
// zmq::message_t and never copied (services with `redispatch` keep a
// reference-counted copy until the reply arrives).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "broker/auth/access_rules.hpp"
#include "broker/config/config.hpp"
#include "broker/intrusive_list.hpp"
#include "broker/metrics.hpp"
#include "proto/mdp.hpp"

namespace zguard {

using Clock = std::chrono::steady_clock;
using Frames = std::vector<zmq::message_t>;

struct Service;
struct Worker;

// Where a client message came from, and how to shape the reply.
struct ClientAddress {
  std::uint16_t endpoint = 0;
  std::string routing_id;
  bool has_delimiter = false;
};

struct Request {
  std::uint64_t id = 0;  // slot in the low 32 bits, generation in the high
  ClientAddress client;
  Service* service = nullptr;
  Worker* worker = nullptr;  // set while in flight
  Frames body;
  // The caller's User-Id and roles, kept only for forward_identity services
  // (the strings keep their capacity with the slot: no allocation per request).
  std::string user;
  std::string roles;
  Clock::time_point received;
  Clock::time_point deadline;
  int attempts = 0;  // dispatches so far
  bool live = false;
  Hook<Request> by_deadline;  // in Service::pending, in arrival (= deadline) order
  Hook<Request> in_queue;     // in Service::queue while waiting for a worker
};

struct Worker {
  std::uint16_t endpoint = 0;
  std::string identity;  // ROUTER routing id on `endpoint`
  std::string key;       // CURVE public key it registered with ("" otherwise)
  Service* service = nullptr;
  Clock::time_point expiry;
  std::uint64_t current = 0;  // request id in flight, 0 when idle
  bool busy = false;
  Hook<Worker> idle;
};

struct Service {
  std::string name;
  bool declared = false;  // listed in `services:`; never garbage-collected
  bool redispatch = false;
  bool forward_identity = false;
  std::chrono::milliseconds request_timeout{0};
  std::uint64_t max_queued = 0;
  ServiceMetrics* metrics = nullptr;  // Prometheus handles; null without metrics
  auth::AccessList clients;           // who may call it (services.NAME.clients)
  auth::AccessList worker_rule;       // who may serve it (services.NAME.workers)
  std::size_t workers = 0;            // registered workers, idle or busy
  // First timer tick that found it with no workers and no requests; {} while
  // in use. Undeclared services are forgotten service_retention after it.
  Clock::time_point unused_since;
  IntrusiveList<Worker, &Worker::idle> idle;  // least recently used first
  IntrusiveList<Request, &Request::in_queue> queue;
  IntrusiveList<Request, &Request::by_deadline> pending;  // queued and in flight
};

// How the table talks to the outside world. Implemented by the Router over
// sockets (and by a recorder in unit tests).
class Transport {
 public:
  virtual ~Transport() = default;
  // Send REQUEST to the worker. Move `request.body` out unless `keep_body`.
  virtual void SendRequest(const Worker& worker, Request& request, bool keep_body) = 0;
  // Send the reply body frames[body_begin..] to the client of `request`.
  virtual void SendReply(const Request& request, Frames& frames, std::size_t body_begin) = 0;
  // Send a broker reply (MMI answer or error) with the given body frames.
  virtual void SendToClient(const ClientAddress& client, std::string_view service,
                            std::initializer_list<std::string_view> body) = 0;
  virtual void SendHeartbeat(const Worker& worker) = 0;
  virtual void SendDisconnect(std::uint16_t endpoint, std::string_view identity) = 0;
};

// Counters the table keeps; the metrics layer exports them.
struct RoutingStats {
  std::uint64_t requests = 0;  // accepted client requests (MMI excluded)
  std::uint64_t replies = 0;   // worker replies delivered
  std::uint64_t mmi = 0;
  std::uint64_t unknown_service = 0;
  std::uint64_t no_worker = 0;  // expired while queued
  std::uint64_t timeouts = 0;   // expired while in flight
  std::uint64_t worker_lost = 0;
  std::uint64_t redispatched = 0;
  std::uint64_t too_large = 0;
  std::uint64_t busy = 0;  // refused: queue full
  std::uint64_t bad_requests = 0;
  std::uint64_t late_replies = 0;  // replies for requests already answered
  std::uint64_t malformed_client = 0;
  std::uint64_t malformed_worker = 0;
  std::uint64_t workers_registered = 0;
  std::uint64_t workers_expired = 0;
  std::uint64_t unauthorized = 0;          // client requests refused by services.*.clients
  std::uint64_t unauthorized_workers = 0;  // READY refused by services.*.workers
  std::uint64_t revoked = 0;               // messages from peers revoked after connecting
  std::uint64_t shutdown_refused = 0;
};

struct TableSettings {
  std::chrono::milliseconds request_timeout{10'000};
  std::chrono::milliseconds heartbeat_interval{2500};
  int heartbeat_liveness = 3;
  std::uint64_t max_message_size = 1ULL << 20;
  std::uint64_t max_queued_requests = 10'000;
  config::UnknownService unknown_service = config::UnknownService::kReject;
  // How long a service that was not declared is kept once it has no workers
  // and no requests; until then requests for it queue instead of 404.
  std::chrono::milliseconds service_retention{60'000};
  std::map<std::string, config::ServiceConfig, std::less<>> services;
  Metrics* metrics = nullptr;  // optional; must outlive the table

  static TableSettings From(const config::Config& config);
};

class ServiceTable {
 public:
  // `now` starts the heartbeat clock.
  ServiceTable(TableSettings settings, Transport& transport, Clock::time_point now = Clock::now());
  ~ServiceTable();
  ServiceTable(const ServiceTable&) = delete;
  ServiceTable& operator=(const ServiceTable&) = delete;

  // A well-formed client message (see proto::DecodeClientMessage). Body
  // frames are moved out of `frames`.
  // `who` is the sender as the authenticator vouched for it.
  void OnClientMessage(std::uint16_t endpoint, Frames& frames, const proto::ClientMessage& msg,
                       Clock::time_point now, const auth::Identity& who = kAnonymous);
  // A well-formed worker message (see proto::DecodeWorkerMessage).
  void OnWorkerMessage(std::uint16_t endpoint, Frames& frames, const proto::WorkerMessage& msg,
                       Clock::time_point now, const auth::Identity& who = kAnonymous);

  // Refuses a message from a peer whose credentials were revoked after it
  // connected: a client gets 403, a registered worker is dropped.
  void OnRevokedClient(std::uint16_t endpoint, Frames& frames, const proto::ClientMessage& msg);
  void OnRevokedWorker(std::uint16_t endpoint, std::string_view identity);

  // Removes (and sends DISCONNECT to) every worker for which
  // `revoked(endpoint, key)` holds; returns how many.
  template <typename Predicate>
  std::size_t DropWorkersIf(Predicate revoked) {
    std::vector<Worker*> doomed;
    for (auto& by_identity : workers_) {
      for (auto& [identity, worker] : by_identity) {
        if (revoked(worker->endpoint, worker->key)) doomed.push_back(worker.get());
      }
    }
    for (Worker* worker : doomed) OnRevokedWorker(worker->endpoint, std::string(worker->identity));
    return doomed.size();
  }

  static constexpr auth::Identity kAnonymous{"anonymous", "", ""};
  // A frame sequence from a known worker that failed to decode: the worker is
  // dropped and told to disconnect.
  void OnMalformedWorkerMessage(std::uint16_t endpoint, std::string_view identity,
                                Clock::time_point now);

  // Expires requests and workers, sends heartbeats when due. Call whenever
  // `NextTimer()` has passed (calling early is harmless).
  void OnTimer(Clock::time_point now);
  Clock::time_point NextTimer() const;

  // Shutdown: refuse new requests with 503 from now on.
  void StopAccepting() { accepting_ = false; }
  // Answers every queued and in-flight request with 503 and disconnects workers.
  void FailAllAndDisconnect(std::string_view reason);
  // Requests queued or in flight. Readable from any thread (a relaxed
  // snapshot; only the routing thread writes it).
  std::size_t LiveRequests() const { return live_requests_.load(std::memory_order_relaxed); }

  // Inspection, for tests and metrics.
  const RoutingStats& stats() const { return stats_; }
  RoutingStats& mutable_stats() { return stats_; }
  const Service* FindService(std::string_view name) const;
  std::size_t WorkerCount() const;

 private:
  Service* GetOrCreateService(std::string_view name);
  Request* NewRequest();
  void FreeRequest(Request& request);
  Request* LookupRequest(std::string_view encoded_id);
  void Dispatch(Service& service);
  void Answer(Request& request, proto::Status status, std::string_view reason);
  void HandleMmi(const ClientAddress& client, std::string_view service, Frames& frames,
                 std::size_t body_begin, const auth::Identity& who);
  void RemoveWorker(Worker& worker, std::string_view why);
  Worker* FindWorker(std::uint16_t endpoint, std::string_view identity);
  void MakeIdle(Worker& worker);
  void ExpireRequests(Service& service, Clock::time_point now);
  // Metrics: count one outcome for a service (or for "_unknown"/"_none" when
  // `service` is null), and refresh its worker and queue gauges.
  void Count(const Service* service, Outcome outcome);
  static void UpdateGauges(const Service& service);

  TableSettings settings_;
  Transport& transport_;
  RoutingStats stats_;
  bool accepting_ = true;
  std::map<std::string, std::unique_ptr<Service>, std::less<>> services_;
  // Workers by endpoint, then routing id.
  std::vector<std::map<std::string, std::unique_ptr<Worker>, std::less<>>> workers_;
  std::vector<std::unique_ptr<Request>> slots_;  // request pool; ids index into it
  std::vector<std::uint32_t> free_slots_;
  std::atomic<std::size_t> live_requests_{0};
  Clock::time_point next_heartbeat_;
  std::string reason_;                         // reused buffer for error texts
  ServiceMetrics* unknown_metrics_ = nullptr;  // service="_unknown"
  ServiceMetrics* none_metrics_ = nullptr;     // service="_none" (no usable name)
};

// The 8-byte client address the broker puts in REQUEST frames.
std::string EncodeRequestId(std::uint64_t id);

}  // namespace zguard
