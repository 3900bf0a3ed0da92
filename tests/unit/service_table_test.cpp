// Routing state without sockets: dispatch order, queueing, deadlines,
// heartbeats, worker loss and redispatch, MMI, and protocol errors. The
// transport records what the table asked to send.
#include "broker/service_table.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <map>

namespace zguard {
namespace {

using std::chrono::milliseconds;

constexpr std::uint16_t kClients = 0;
constexpr std::uint16_t kWorkers = 1;

struct Sent {
  std::string kind;     // request | reply | client | heartbeat | disconnect
  std::string peer;     // client routing id or worker identity
  std::string service;  // for client messages
  std::vector<std::string> body;
  std::string request_id;  // for request
};

class RecordingTransport : public Transport {
 public:
  void SendRequest(const Worker& worker, Request& request, bool keep_body) override {
    Sent sent{
        "request", worker.peer->routing_id, request.service->name, {}, EncodeRequestId(request.id)};
    for (const auto& frame : request.body) sent.body.emplace_back(proto::View(frame));
    if (!keep_body) request.body.clear();
    log.push_back(std::move(sent));
  }
  void SendReply(const Request& request, Frames& frames, std::size_t begin) override {
    Sent sent{"reply", request.client->routing_id, request.service->name, {}, {}};
    for (std::size_t i = begin; i < frames.size(); ++i)
      sent.body.emplace_back(proto::View(frames[i]));
    log.push_back(std::move(sent));
  }
  void SendToClient(const Peer& client, bool /*has_delimiter*/, std::string_view service,
                    std::initializer_list<std::string_view> body) override {
    Sent sent{"client", client.routing_id, std::string(service), {}, {}};
    for (const auto part : body) sent.body.emplace_back(part);
    log.push_back(std::move(sent));
  }
  void SendHeartbeat(const Worker& worker) override {
    log.push_back({"heartbeat", worker.peer->routing_id, {}, {}, {}});
  }
  void SendDisconnect(std::uint16_t, std::string_view identity) override {
    log.push_back({"disconnect", std::string(identity), {}, {}, {}});
  }

  Sent Pop() {
    EXPECT_FALSE(log.empty());
    if (log.empty()) return {};
    Sent front = log.front();
    log.pop_front();
    return front;
  }
  std::deque<Sent> log;
};

Frames Make(std::initializer_list<std::string_view> parts) {
  Frames out;
  for (const auto part : parts) out.push_back(proto::Frame(part));
  return out;
}

class ServiceTableTest : public ::testing::Test {
 protected:
  // Test defaults: 1 s request timeout.
  static TableSettings Defaults() {
    TableSettings settings;
    settings.request_timeout = milliseconds(1000);
    return settings;
  }
  void Build(const TableSettings& settings = Defaults()) {
    peers_.clear();
    table_ = std::make_unique<ServiceTable>(settings, transport_, now_);
  }
  // The connection behind routing id `id` on `endpoint`, opened on first use (as the Router
  // does on a connection's first message).
  Peer& PeerFor(std::uint16_t endpoint, const std::string& id,
                const auth::Identity& who = ServiceTable::kAnonymous) {
    auto it = peers_.find({endpoint, id});
    if (it != peers_.end()) return *it->second;
    Peer& peer = table_->OpenPeer(endpoint, id, who);
    peers_[{endpoint, id}] = &peer;
    return peer;
  }
  // The connection closes (the Router's disconnect event).
  void Close(std::uint16_t endpoint, const std::string& id) {
    auto it = peers_.find({endpoint, id});
    ASSERT_NE(it, peers_.end());
    table_->ClosePeer(*it->second, "disconnected");
    peers_.erase(it);
  }
  void SetUp() override { Build(); }

  void Client(const std::string& id, const std::string& service,
              std::initializer_list<std::string_view> body = {"hello"}) {
    Frames frames = Make({id, "", "MDPC01", service});
    for (const auto part : body) frames.push_back(proto::Frame(part));
    const auto msg = proto::DecodeClientMessage(frames);
    ASSERT_EQ(msg.error, nullptr);
    table_->OnClientMessage(PeerFor(kClients, id), frames, msg, now_);
  }
  void Worker(const std::string& id, Frames frames) {
    frames.insert(frames.begin(), proto::Frame(id));
    const auto msg = proto::DecodeWorkerMessage(frames);
    ASSERT_EQ(msg.error, nullptr);
    table_->OnWorkerMessage(PeerFor(kWorkers, id), frames, msg, now_);
  }
  void Ready(const std::string& id, const std::string& service) {
    Worker(id, Make({"", "MDPW01", "\x01", service}));
  }
  void ReplyFrom(const std::string& id, const std::string& request_id,
                 std::initializer_list<std::string_view> body = {"world"}) {
    Frames frames = Make({"", "MDPW01", "\x03"});
    frames.push_back(proto::Frame(request_id));
    frames.push_back(zmq::message_t());
    for (const auto part : body) frames.push_back(proto::Frame(part));
    Worker(id, std::move(frames));
  }
  void Advance(milliseconds by) {
    now_ += by;
    table_->OnTimer(now_);
  }
  static std::string Code(const Sent& sent) {
    return sent.body.size() >= 2 && sent.body[0] == "zguard.error" ? sent.body[1] : "";
  }

  RecordingTransport transport_;
  std::unique_ptr<ServiceTable> table_;
  std::map<std::pair<std::uint16_t, std::string>, Peer*> peers_;
  Clock::time_point now_ = Clock::now();
};

TEST_F(ServiceTableTest, RoundTrip) {
  Ready("w1", "echo");
  Client("c1", "echo", {"a", "b"});
  const Sent request = transport_.Pop();
  EXPECT_EQ(request.kind, "request");
  EXPECT_EQ(request.peer, "w1");
  EXPECT_EQ(request.body, (std::vector<std::string>{"a", "b"}));
  ReplyFrom("w1", request.request_id, {"x", "y"});
  const Sent reply = transport_.Pop();
  EXPECT_EQ(reply.kind, "reply");
  EXPECT_EQ(reply.peer, "c1");
  EXPECT_EQ(reply.service, "echo");
  EXPECT_EQ(reply.body, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(table_->stats().replies, 1U);
  EXPECT_EQ(table_->LiveRequests(), 0U);
}

TEST_F(ServiceTableTest, LeastRecentlyUsedWorkerGetsTheNextRequest) {
  Ready("w1", "echo");
  Ready("w2", "echo");
  Ready("w3", "echo");
  Client("c1", "echo");
  EXPECT_EQ(transport_.Pop().peer, "w1");
  Client("c2", "echo");
  const Sent second = transport_.Pop();
  EXPECT_EQ(second.peer, "w2");
  ReplyFrom("w2", second.request_id);
  transport_.Pop();
  // w3 has been idle longest, then w2 (just back); w1 is busy.
  Client("c3", "echo");
  EXPECT_EQ(transport_.Pop().peer, "w3");
  Client("c4", "echo");
  EXPECT_EQ(transport_.Pop().peer, "w2");
}

TEST_F(ServiceTableTest, RequestsQueueUntilAWorkerIsFree) {
  Ready("w1", "echo");
  Client("c1", "echo", {"1"});
  Client("c2", "echo", {"2"});
  Client("c3", "echo", {"3"});
  const Sent first = transport_.Pop();
  EXPECT_TRUE(transport_.log.empty());
  ReplyFrom("w1", first.request_id);
  EXPECT_EQ(transport_.Pop().peer, "c1");
  const Sent second = transport_.Pop();
  EXPECT_EQ(second.kind, "request");
  EXPECT_EQ(second.body[0], "2");  // FIFO
}

TEST_F(ServiceTableTest, UnknownServiceIsRejectedAtOnce) {
  Client("c1", "nosuch");
  const Sent sent = transport_.Pop();
  EXPECT_EQ(sent.kind, "client");
  EXPECT_EQ(sent.service, "nosuch");
  EXPECT_EQ(Code(sent), "404");
  EXPECT_EQ(table_->stats().unknown_service, 1U);
}

TEST_F(ServiceTableTest, UnknownServiceQueuesWhenConfigured) {
  TableSettings settings = Defaults();
  settings.unknown_service = config::UnknownService::kQueue;
  Build(settings);
  Client("c1", "later");
  EXPECT_TRUE(transport_.log.empty());
  Ready("w1", "later");
  EXPECT_EQ(transport_.Pop().kind, "request");
}

TEST_F(ServiceTableTest, DeclaredServiceWithoutWorkersTimesOutWith503) {
  TableSettings settings = Defaults();
  settings.services["billing"] = {};
  Build(settings);
  Client("c1", "billing");
  EXPECT_TRUE(transport_.log.empty());
  Advance(milliseconds(999));
  EXPECT_TRUE(transport_.log.empty());
  Advance(milliseconds(1));
  const Sent sent = transport_.Pop();
  EXPECT_EQ(Code(sent), "503");
  EXPECT_EQ(sent.peer, "c1");
  EXPECT_EQ(table_->stats().no_worker, 1U);
  EXPECT_EQ(table_->LiveRequests(), 0U);
}

TEST_F(ServiceTableTest, SlowWorkerTimesOutWith504AndItsLateReplyIsDropped) {
  Ready("w1", "echo");
  Client("c1", "echo");
  const Sent request = transport_.Pop();
  Advance(milliseconds(1000));
  const Sent timeout = transport_.Pop();
  EXPECT_EQ(Code(timeout), "504");
  EXPECT_EQ(table_->stats().timeouts, 1U);
  // The worker is still busy: a new request waits.
  Client("c2", "echo");
  EXPECT_TRUE(transport_.log.empty());
  ReplyFrom("w1", request.request_id);  // late
  EXPECT_EQ(table_->stats().late_replies, 1U);
  const Sent next = transport_.Pop();
  EXPECT_EQ(next.kind, "request");  // c2's request, nothing sent to c1
  EXPECT_EQ(table_->stats().replies, 0U);
}

TEST_F(ServiceTableTest, ForgedRequestIdReachesNoClient) {
  Ready("w1", "echo");
  Ready("w2", "echo");
  Client("c1", "echo");
  const Sent to_w1 = transport_.Pop();
  Client("c2", "echo");
  transport_.Pop();
  // w2 replies with the id given to w1: dropped, and w2 stays busy.
  ReplyFrom("w2", to_w1.request_id, {"stolen"});
  EXPECT_TRUE(transport_.log.empty());
  EXPECT_EQ(table_->stats().malformed_worker, 1U);
  ReplyFrom("w1", std::string("\x01\x02", 2));  // garbage id
  EXPECT_EQ(table_->stats().malformed_worker, 2U);
  EXPECT_TRUE(transport_.log.empty());
  // Both workers still deliver their real replies to the right clients.
  ReplyFrom("w1", to_w1.request_id, {"one"});
  EXPECT_EQ(transport_.Pop().peer, "c1");
  EXPECT_EQ(table_->stats().replies, 1U);
}

TEST_F(ServiceTableTest, HeartbeatsAndExpiry) {
  TableSettings settings = Defaults();
  settings.heartbeat_interval = milliseconds(100);
  settings.heartbeat_liveness = 3;
  Build(settings);
  Ready("w1", "echo");
  Advance(milliseconds(100));
  EXPECT_EQ(transport_.Pop().kind, "heartbeat");
  Worker("w1", Make({"", "MDPW01", "\x04"}));  // worker heartbeat refreshes expiry
  Advance(milliseconds(100));
  EXPECT_EQ(transport_.Pop().kind, "heartbeat");
  Advance(milliseconds(100));
  EXPECT_EQ(transport_.Pop().kind, "heartbeat");
  Advance(milliseconds(100));  // 300 ms of silence since the last heartbeat
  const Sent sent = transport_.Pop();
  EXPECT_EQ(sent.kind, "disconnect");
  EXPECT_EQ(table_->WorkerCount(), 0U);
  EXPECT_EQ(table_->stats().workers_expired, 1U);
}

TEST_F(ServiceTableTest, WorkerLostMidRequestGets502) {
  Ready("w1", "echo");
  Client("c1", "echo");
  transport_.Pop();
  Worker("w1", Make({"", "MDPW01", "\x05"}));  // DISCONNECT
  const Sent sent = transport_.Pop();
  EXPECT_EQ(Code(sent), "502");
  EXPECT_EQ(sent.peer, "c1");
  EXPECT_EQ(table_->stats().worker_lost, 1U);
}

TEST_F(ServiceTableTest, RedispatchSendsOnceMoreThenGivesUp) {
  TableSettings settings = Defaults();
  settings.services["jobs"].redispatch = true;
  Build(settings);
  Ready("w1", "jobs");
  Ready("w2", "jobs");
  Ready("w3", "jobs");
  Client("c1", "jobs", {"payload"});
  EXPECT_EQ(transport_.Pop().peer, "w1");
  Worker("w1", Make({"", "MDPW01", "\x05"}));
  const Sent again = transport_.Pop();
  EXPECT_EQ(again.kind, "request");
  EXPECT_EQ(again.peer, "w2");
  EXPECT_EQ(again.body, std::vector<std::string>{"payload"});  // body kept for the retry
  Worker("w2", Make({"", "MDPW01", "\x05"}));
  const Sent lost = transport_.Pop();
  EXPECT_EQ(Code(lost), "502");  // only one redispatch
  EXPECT_EQ(table_->stats().redispatched, 1U);
}

TEST_F(ServiceTableTest, Mmi) {
  Ready("w1", "echo");
  Client("c1", "mmi.service", {"echo"});
  EXPECT_EQ(transport_.Pop().body, std::vector<std::string>{"200"});
  Client("c1", "mmi.service", {"nosuch"});
  EXPECT_EQ(transport_.Pop().body, std::vector<std::string>{"404"});
  Client("c1", "mmi.service", {});
  EXPECT_EQ(transport_.Pop().body, std::vector<std::string>{"400"});
  Client("c1", "mmi.other", {"x"});
  const Sent sent = transport_.Pop();
  EXPECT_EQ(sent.service, "mmi.other");
  EXPECT_EQ(sent.body, std::vector<std::string>{"501"});
}

TEST_F(ServiceTableTest, OversizeBodyGets413) {
  TableSettings settings = Defaults();
  settings.max_message_size = 8;
  Build(settings);
  Ready("w1", "echo");
  Client("c1", "echo", {"12345", "6789"});
  EXPECT_EQ(Code(transport_.Pop()), "413");
  Client("c1", "echo", {"1234", "5678"});
  EXPECT_EQ(transport_.Pop().kind, "request");
}

TEST_F(ServiceTableTest, FullQueueGets429) {
  TableSettings settings = Defaults();
  settings.services["echo"].max_queued_requests = 2;
  Build(settings);
  Client("c1", "echo");
  Client("c2", "echo");
  EXPECT_TRUE(transport_.log.empty());
  Client("c3", "echo");
  EXPECT_EQ(Code(transport_.Pop()), "429");
  EXPECT_EQ(table_->stats().busy, 1U);
}

TEST_F(ServiceTableTest, ReplyFromAnIdleWorkerDisconnectsIt) {
  Ready("w1", "echo");
  ReplyFrom("w1", EncodeRequestId(42));
  EXPECT_EQ(transport_.Pop().kind, "disconnect");
  EXPECT_EQ(table_->WorkerCount(), 0U);
}

TEST_F(ServiceTableTest, ServiceOutlivesABusyWorkerThatDied) {
  TableSettings settings = Defaults();
  settings.service_retention = milliseconds(500);
  Build(settings);
  Ready("w1", "temp");
  Client("c1", "temp");
  transport_.Pop();
  Advance(milliseconds(600));  // request still pending: the service is in use
  Worker("w1", Make({"", "MDPW01", "\x05"}));
  EXPECT_EQ(Code(transport_.Pop()), "502");
  Advance(milliseconds(1));
  EXPECT_NE(table_->FindService("temp"), nullptr);  // kept for the retention period
  Client("c2", "temp");
  EXPECT_TRUE(transport_.log.empty());  // queued, not 404
}

TEST_F(ServiceTableTest, ProtocolErrorsDisconnectTheWorker) {
  Ready("w1", "echo");
  Ready("w1", "echo");  // READY twice
  EXPECT_EQ(transport_.Pop().kind, "disconnect");
  EXPECT_EQ(table_->WorkerCount(), 0U);
  Ready("w2", "mmi.service");  // may not register under mmi.*
  EXPECT_EQ(transport_.Pop().kind, "disconnect");
  Worker("w3", Make({"", "MDPW01", "\x04"}));  // heartbeat before READY
  EXPECT_EQ(transport_.Pop().kind, "disconnect");
  ReplyFrom("w4", EncodeRequestId(1));  // reply before READY
  EXPECT_EQ(transport_.Pop().kind, "disconnect");
  EXPECT_EQ(table_->WorkerCount(), 0U);
}

TEST_F(ServiceTableTest, ShutdownRefusesNewAndAnswersQueued) {
  TableSettings settings = Defaults();
  settings.services["billing"] = {};
  Build(settings);
  Ready("w1", "echo");
  Client("c1", "billing");
  table_->StopAccepting();
  Client("c2", "echo");
  const Sent refused = transport_.Pop();
  EXPECT_EQ(Code(refused), "503");
  EXPECT_EQ(refused.body[2], "broker is shutting down");
  table_->FailAllAndDisconnect("broker is shutting down");
  EXPECT_EQ(Code(transport_.Pop()), "503");  // c1's queued request
  EXPECT_EQ(transport_.Pop().kind, "disconnect");
  EXPECT_EQ(table_->LiveRequests(), 0U);
}

TEST_F(ServiceTableTest, UndeclaredServicesAreForgottenAfterRetention) {
  TableSettings settings = Defaults();
  settings.service_retention = milliseconds(500);
  Build(settings);
  Ready("w1", "temp");
  Worker("w1", Make({"", "MDPW01", "\x05"}));
  ASSERT_NE(table_->FindService("temp"), nullptr);
  Advance(milliseconds(1));  // the timer notices the service is unused
  Advance(milliseconds(499));
  EXPECT_NE(table_->FindService("temp"), nullptr);
  Advance(milliseconds(1));
  EXPECT_EQ(table_->FindService("temp"), nullptr);
}

TEST_F(ServiceTableTest, RequestSlotsAreReusedWithNewIds) {
  TableSettings settings = Defaults();
  settings.request_timeout = milliseconds(10);
  Build(settings);
  Ready("w1", "echo");
  Client("c1", "echo");
  const Sent first = transport_.Pop();
  Advance(milliseconds(10));  // times out: the slot is freed, w1 stays busy
  EXPECT_EQ(Code(transport_.Pop()), "504");
  ReplyFrom("w1", first.request_id);  // late; w1 becomes idle
  EXPECT_EQ(table_->stats().late_replies, 1U);
  Client("c2", "echo");  // reuses the slot with a new generation
  const Sent second = transport_.Pop();
  EXPECT_NE(second.request_id, first.request_id);
  EXPECT_EQ(second.request_id.substr(0, 4), first.request_id.substr(0, 4));  // same slot
  ReplyFrom("w1", first.request_id);  // the stale id does not match the new request
  EXPECT_TRUE(transport_.log.empty());
  ReplyFrom("w1", second.request_id);
  EXPECT_EQ(transport_.Pop().peer, "c2");
}

// --- Connections own their state (a routing id is not an identity) ---

constexpr auth::Identity kAlice{"alice", "", "KEYALICE"};
constexpr auth::Identity kMallory{"mallory", "", "KEYMALLORY"};

TEST_F(ServiceTableTest, AClientThatDisconnectsLosesItsRequestsAndNobodyGetsTheReply) {
  Ready("w1", "echo");
  PeerFor(kClients, "c1", kAlice);
  Client("c1", "echo", {"secret"});
  const Sent request = transport_.Pop();
  ASSERT_EQ(request.kind, "request");
  Client("c1", "echo", {"queued"});  // waits behind the first: w1 is busy
  Close(kClients, "c1");
  EXPECT_EQ(table_->stats().client_gone, 2U);
  EXPECT_EQ(table_->LiveRequests(), 0U);
  // Another identity takes the routing id over; the worker's reply reaches nobody.
  PeerFor(kClients, "c1", kMallory);
  ReplyFrom("w1", request.request_id, {"for alice"});
  EXPECT_TRUE(transport_.log.empty());
  EXPECT_EQ(table_->stats().late_replies, 1U);
  // The worker is free again; the queued request of the gone client was not sent to it.
  Client("c2", "echo");
  EXPECT_EQ(transport_.Pop().peer, "w1");
}

TEST_F(ServiceTableTest, AWorkersRegistrationDiesWithItsConnection) {
  TableSettings settings = Defaults();
  settings.services["echo"].workers = {"user:alice"};
  settings.services["echo"].workers_set = true;
  Build(settings);
  PeerFor(kWorkers, "w1", kAlice);
  Ready("w1", "echo");
  Client("c1", "echo", {"one"});
  const Sent first = transport_.Pop();
  ASSERT_EQ(first.peer, "w1");
  Close(kWorkers, "w1");
  EXPECT_EQ(Code(transport_.Pop()), "502");  // its request is answered, not left hanging
  EXPECT_EQ(table_->WorkerCount(), 0U);
  // mallory reuses the routing id: no registration to inherit, and she may not serve echo.
  PeerFor(kWorkers, "w1", kMallory);
  Worker("w1", Make({"", "MDPW01", "\x04"}));  // HEARTBEAT
  EXPECT_EQ(transport_.Pop().kind, "disconnect");
  EXPECT_EQ(table_->stats().unregistered_workers, 1U);
  Client("c1", "echo", {"two"});
  EXPECT_TRUE(transport_.log.empty());  // queued: nobody to send it to
  ReplyFrom("w1", first.request_id);    // an old request id from the new connection
  EXPECT_EQ(transport_.Pop().kind, "disconnect");
  Ready("w1", "echo");
  EXPECT_EQ(transport_.Pop().kind, "disconnect");  // refused by the workers rule
  EXPECT_EQ(table_->stats().unauthorized_workers, 1U);
}

// --- Bounds on what a peer can make the broker hold ---

TEST_F(ServiceTableTest, TooManyBodyFramesGet413) {
  TableSettings settings = Defaults();
  settings.max_frames = 2;
  Build(settings);
  Ready("w1", "echo");
  Client("c1", "echo", {"a", "b", "c"});
  const Sent refused = transport_.Pop();
  EXPECT_EQ(Code(refused), "413");
  EXPECT_NE(refused.body[2].find("max_frames"), std::string::npos);
  // Frames the Router discarded still count: 2 kept, 1000 on the wire.
  Frames frames = Make({"c1", "", "MDPC01", "echo", "a", "b"});
  const auto msg = proto::DecodeClientMessage(frames);
  table_->OnClientMessage(PeerFor(kClients, "c1"), frames, msg, now_, 1000);
  EXPECT_EQ(Code(transport_.Pop()), "413");
  Client("c1", "echo", {"a", "b"});
  EXPECT_EQ(transport_.Pop().kind, "request");
}

TEST_F(ServiceTableTest, ServiceNamesOver255BytesAreRefused) {
  const std::string long_name(256, 's');
  Ready("w1", long_name);
  EXPECT_EQ(transport_.Pop().kind, "disconnect");
  EXPECT_EQ(table_->stats().refused_services, 1U);
  EXPECT_EQ(table_->FindService(long_name), nullptr);
  Client("c1", long_name);
  EXPECT_EQ(Code(transport_.Pop()), "400");
  Ready("w2", std::string(255, 's'));
  EXPECT_TRUE(transport_.log.empty());
  EXPECT_EQ(table_->WorkerCount(), 1U);
}

TEST_F(ServiceTableTest, UndeclaredServicesCanBeDenied) {
  TableSettings settings = Defaults();
  settings.undeclared_services = config::UndeclaredServices::kDeny;
  settings.unknown_service = config::UnknownService::kQueue;
  settings.services["echo"] = {};
  Build(settings);
  Ready("w1", "made-up");
  EXPECT_EQ(transport_.Pop().kind, "disconnect");
  Ready("w2", "echo");
  EXPECT_TRUE(transport_.log.empty());
  Client("c1", "made-up");  // not even queued
  EXPECT_EQ(Code(transport_.Pop()), "404");
  EXPECT_EQ(table_->UndeclaredServiceCount(), 0U);
}

TEST_F(ServiceTableTest, UndeclaredServicesAreCapped) {
  TableSettings settings = Defaults();
  settings.max_undeclared_services = 2;
  settings.service_retention = milliseconds(10);
  Build(settings);
  Ready("w1", "one");
  Ready("w2", "two");
  Ready("w3", "three");
  EXPECT_EQ(transport_.Pop().kind, "disconnect");
  EXPECT_EQ(table_->UndeclaredServiceCount(), 2U);
  // Once a service is forgotten there is room again.
  Close(kWorkers, "w1");
  Advance(milliseconds(1));
  Advance(milliseconds(10));
  EXPECT_EQ(table_->FindService("one"), nullptr);
  Ready("w4", "three");
  EXPECT_TRUE(transport_.log.empty());
  EXPECT_NE(table_->FindService("three"), nullptr);
}

// --- Revocation ---

TEST_F(ServiceTableTest, RevokingWorkersNeverRedispatchesToAnotherRevokedOne) {
  TableSettings settings = Defaults();
  settings.services["echo"].redispatch = true;
  Build(settings);
  const auth::Identity doomed{"doomed", "", "KEYDOOMED"};
  PeerFor(kWorkers, "w1", doomed);
  PeerFor(kWorkers, "w2", doomed);
  PeerFor(kWorkers, "w3", kAlice);
  Ready("w1", "echo");
  Client("c1", "echo", {"work"});
  ASSERT_EQ(transport_.Pop().peer, "w1");
  Ready("w2", "echo");
  const std::size_t revoked =
      table_->Revoke([](const Peer& peer) { return peer.key == "KEYDOOMED"; });
  EXPECT_EQ(revoked, 2U);
  // Both go; the request waits for a worker that stays, and goes to w3 when it comes.
  EXPECT_EQ(transport_.Pop().kind, "disconnect");
  EXPECT_EQ(transport_.Pop().kind, "disconnect");
  EXPECT_TRUE(transport_.log.empty());
  Ready("w3", "echo");
  const Sent resent = transport_.Pop();
  EXPECT_EQ(resent.kind, "request");
  EXPECT_EQ(resent.peer, "w3");
  EXPECT_EQ(resent.body, std::vector<std::string>{"work"});
}

TEST_F(ServiceTableTest, RevokedClientsGet403ForQueuedAndInFlightRequests) {
  Ready("w1", "echo");
  PeerFor(kClients, "c1", kMallory);
  Client("c1", "echo", {"in flight"});
  const Sent in_flight = transport_.Pop();
  Client("c1", "echo", {"queued"});
  EXPECT_EQ(table_->Revoke([](const Peer& peer) { return peer.user == "mallory"; }), 1U);
  EXPECT_EQ(Code(transport_.Pop()), "403");
  EXPECT_EQ(Code(transport_.Pop()), "403");
  EXPECT_EQ(table_->LiveRequests(), 0U);
  ReplyFrom("w1", in_flight.request_id);  // dropped, not passed on
  EXPECT_TRUE(transport_.log.empty());
  Client("c2", "echo", {"next"});
  const Sent next = transport_.Pop();
  EXPECT_EQ(next.peer, "w1");
  EXPECT_EQ(next.body, std::vector<std::string>{"next"});  // never the revoked "queued"
}

TEST_F(ServiceTableTest, ACallThatIsNotAllowedLooksLikeAnUnknownService) {
  TableSettings settings = Defaults();
  settings.services["billing"].clients = {"role:finance"};
  settings.services["billing"].clients_set = true;
  Build(settings);
  Ready("w1", "billing");
  Client("c1", "billing");
  const Sent refused = transport_.Pop();
  EXPECT_EQ(Code(refused), "404");
  EXPECT_EQ(refused.body[2], "unknown service");
  Client("c1", "nosuch");
  const Sent unknown = transport_.Pop();
  EXPECT_EQ(unknown.body, refused.body);  // byte for byte the same answer
  EXPECT_EQ(table_->stats().unauthorized, 1U);
  Client("c1", "mmi.service", {"billing"});
  EXPECT_EQ(transport_.Pop().body, std::vector<std::string>{"404"});
}

}  // namespace
}  // namespace zguard
