// The routing state of the broker: the peers (one per connection that has sent a message),
// services, their workers (idle in LRU order), queued and in-flight requests and their
// deadlines. It owns no sockets: the Router tells it which connection each message came from
// and when a connection closes, feeds it decoded messages and the time, and it answers through
// the Transport interface. Everything here runs on the routing thread only, so nothing is
// locked. Request bodies are moved in and out as zmq::message_t and never copied (services with
// `redispatch` keep a reference-counted copy until the reply arrives).
//
// Ownership: a worker registration and every request belong to the Peer (connection) that
// created them, never to a routing id. A message is only ever matched against the state of
// its own Peer, and ClosePeer() ends all of that peer's state at once; a later connection that
// reuses the routing id starts with nothing.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
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
struct Peer;

struct Request {
  std::uint64_t id = 0;  // slot in the low 32 bits, generation in the high
  Peer* client = nullptr;
  bool has_delimiter = false;  // the reply is shaped like the request (REQ vs DEALER clients)
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
  Hook<Request> by_client;    // in Peer::requests
};

struct Worker {
  Peer* peer = nullptr;  // the connection that sent READY; the worker dies with it
  Service* service = nullptr;
  Clock::time_point expiry;
  std::uint64_t current = 0;  // request id in flight, 0 when idle
  bool busy = false;
  Hook<Worker> idle;  // in Service::idle while it holds no request
  Hook<Worker> all;   // in ServiceTable::workers_
};

// One connection that has sent at least one message, as the authenticator vouched for it.
// Created by OpenPeer() on the connection's first message, destroyed by ClosePeer().
struct Peer {
  std::uint64_t serial = 0;  // unique in the process, never reused
  std::uint16_t endpoint = 0;
  std::string routing_id;  // at most proto::kMaxRoutingId bytes
  std::string user;        // ZAP User-Id
  std::string roles;       // comma list
  std::string key;         // CURVE public key (Z85), "" otherwise
  // Its credentials were revoked after it connected: every message is refused.
  bool revoked = false;
  std::unique_ptr<Worker> worker;                        // its registration (workers endpoints)
  IntrusiveList<Request, &Request::by_client> requests;  // requests it sent, still pending

  auth::Identity identity() const { return {user, roles, key}; }
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
  // Send the reply body frames[body_begin..] to the client of `request` (never null here).
  virtual void SendReply(const Request& request, Frames& frames, std::size_t body_begin) = 0;
  // Send a broker reply (MMI answer or error) with the given body frames.
  virtual void SendToClient(const Peer& client, bool has_delimiter, std::string_view service,
                            std::initializer_list<std::string_view> body) = 0;
  virtual void SendHeartbeat(const Worker& worker) = 0;
  // DISCONNECT to whoever holds `routing_id` on `endpoint` now.
  virtual void SendDisconnect(std::uint16_t endpoint, std::string_view routing_id) = 0;
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
  std::uint64_t too_large = 0;  // bodies over max_message_size or with more than max_frames
  std::uint64_t busy = 0;       // refused: queue full
  std::uint64_t bad_requests = 0;
  std::uint64_t late_replies = 0;  // replies for requests already answered or abandoned
  std::uint64_t malformed_client = 0;
  std::uint64_t malformed_worker = 0;
  std::uint64_t workers_registered = 0;
  std::uint64_t workers_expired = 0;
  std::uint64_t unauthorized = 0;          // client requests refused by services.*.clients
  std::uint64_t unauthorized_workers = 0;  // READY refused by services.*.workers
  std::uint64_t refused_services = 0;      // READY refused: bad or undeclared service name
  std::uint64_t unregistered_workers = 0;  // worker commands from a connection with no READY
  std::uint64_t revoked = 0;               // messages from peers revoked after connecting
  std::uint64_t shutdown_refused = 0;
  std::uint64_t client_gone = 0;  // requests dropped because their client disconnected
};

struct TableSettings {
  std::chrono::milliseconds request_timeout{10'000};
  std::chrono::milliseconds heartbeat_interval{2500};
  int heartbeat_liveness = 3;
  std::uint64_t max_message_size = 1ULL << 20;
  std::uint64_t max_frames = 64;  // body frames of a request or reply
  std::uint64_t max_queued_requests = 10'000;
  config::UnknownService unknown_service = config::UnknownService::kReject;
  config::UndeclaredServices undeclared_services = config::UndeclaredServices::kAllow;
  std::uint64_t max_undeclared_services = 1000;  // at once
  // How long a service that was not declared is kept once it has no workers
  // and no requests; until then requests for it queue instead of 404.
  std::chrono::milliseconds service_retention{60'000};
  std::map<std::string, config::ServiceConfig, std::less<>> services;
  std::vector<std::string> endpoint_names;  // by endpoint index, for log lines
  Metrics* metrics = nullptr;               // optional; must outlive the table

  static TableSettings From(const config::Config& config);
};

class ServiceTable {
 public:
  // `now` starts the heartbeat clock.
  ServiceTable(TableSettings settings, Transport& transport, Clock::time_point now = Clock::now());
  ~ServiceTable();
  ServiceTable(const ServiceTable&) = delete;
  ServiceTable& operator=(const ServiceTable&) = delete;

  // A connection's first message: its routing id (at most proto::kMaxRoutingId bytes) and the
  // identity the authenticator gave it. The Peer lives until ClosePeer().
  Peer& OpenPeer(std::uint16_t endpoint, std::string_view routing_id,
                 const auth::Identity& identity);
  // The connection is gone: its worker registration ends (its in-flight request is re-sent or
  // answered 502) and its own pending requests are dropped (their late replies are discarded).
  // `peer` is destroyed.
  void ClosePeer(Peer& peer, std::string_view why);
  std::size_t PeerCount() const { return peers_.size(); }

  // A well-formed client message (see proto::DecodeClientMessage) from `peer`. Body frames
  // are moved out of `frames`. `frame_count` is how many frames the message had on the wire
  // (frames beyond the limit were not kept); more than max_frames body frames is a 413.
  void OnClientMessage(Peer& peer, Frames& frames, const proto::ClientMessage& msg,
                       Clock::time_point now, std::size_t frame_count = 0);
  // A well-formed worker message (see proto::DecodeWorkerMessage) from `peer`.
  void OnWorkerMessage(Peer& peer, Frames& frames, const proto::WorkerMessage& msg,
                       Clock::time_point now, std::size_t frame_count = 0);
  // A frame sequence from a worker connection that failed to decode: a registered worker is
  // dropped and told to disconnect.
  void OnMalformedWorkerMessage(Peer& peer);

  // A message from a peer whose credentials were revoked after it connected: a client gets
  // 403, a worker is dropped and told to disconnect.
  void OnRevokedClient(Peer& peer, Frames& frames, const proto::ClientMessage& msg);
  void OnRevokedWorker(Peer& peer);

  // A reload: marks every peer for which `revoked(peer)` holds, then, in this order, removes
  // all of their workers, answers 403 to every queued and in-flight request those peers sent
  // (nothing of them reaches a worker any more), and only then re-sends or fails the requests
  // the removed workers held, so that nothing is re-sent to a worker that is also revoked.
  // Returns the number of peers newly revoked.
  template <typename Predicate>
  std::size_t Revoke(Predicate revoked) {
    std::vector<Peer*> doomed;
    for (auto& [raw, peer] : peers_) {
      if (!peer->revoked && revoked(*peer)) doomed.push_back(peer.get());
    }
    RevokePeers(doomed);
    return doomed.size();
  }

  static constexpr auth::Identity kAnonymous{"anonymous", "", ""};

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
  std::size_t WorkerCount() const { return workers_.size(); }
  std::size_t UndeclaredServiceCount() const { return undeclared_; }

 private:
  // Null when the name may not become a service now (undeclared_services: deny, or
  // max_undeclared_services reached); `why` then says so.
  Service* GetOrCreateService(std::string_view name, const char** why = nullptr);
  void EraseService(std::map<std::string, std::unique_ptr<Service>, std::less<>>::iterator it);
  Request* NewRequest();
  void FreeRequest(Request& request);
  Request* LookupRequest(std::string_view encoded_id);
  void Dispatch(Service& service);
  void Answer(Request& request, proto::Status status, std::string_view reason);
  void Refuse(const Peer& client, bool has_delimiter, std::string_view service,
              proto::Status status, std::string_view reason);
  void HandleMmi(const Peer& client, bool has_delimiter, std::string_view service, Frames& frames,
                 std::size_t body_begin);
  void HandleReady(Peer& peer, std::string_view name, Clock::time_point expiry);
  void HandleReply(Peer& peer, Worker& worker, Frames& frames, const proto::WorkerMessage& msg,
                   Clock::time_point now, std::size_t frame_count);
  // Removes the worker; its in-flight request is re-sent (redispatch services) or answered
  // 502. `dispatch` false leaves the re-sent request queued (Revoke dispatches afterwards).
  void RemoveWorker(Worker& worker, std::string_view why, bool dispatch = true);
  void MakeIdle(Worker& worker);
  void ExpireRequests(Service& service, Clock::time_point now);
  void RevokePeers(const std::vector<Peer*>& doomed);
  // Metrics: count one outcome for a service (or for "_unknown" when `service` is null).
  void Count(const Service* service, Outcome outcome);
  static void UpdateGauges(const Service& service);
  std::string_view EndpointName(std::uint16_t endpoint) const;
  // DISCONNECT to `peer` (a worker connection), counted under `why`.
  void DisconnectWorker(const Peer& peer, WorkerRefusal why);

  TableSettings settings_;
  Transport& transport_;
  RoutingStats stats_;
  bool accepting_ = true;
  std::map<std::string, std::unique_ptr<Service>, std::less<>> services_;
  std::size_t undeclared_ = 0;  // services_ entries that are not declared
  std::unordered_map<const Peer*, std::unique_ptr<Peer>> peers_;
  std::uint64_t next_peer_serial_ = 0;
  IntrusiveList<Worker, &Worker::all> workers_;
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
