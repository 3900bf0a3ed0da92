// End-to-end routing through a real broker over TCP on 127.0.0.1: our client
// and worker library, raw REQ/DEALER sockets, dying workers, bad frames.
#include <gtest/gtest.h>

#include <map>
#include <mutex>

#include <unistd.h>

#include "broker_fixture.hpp"
#include "proto/mdp.hpp"

namespace zguard::testing {
namespace {

using std::chrono::milliseconds;
using Outcome = proto::CallResult::Outcome;

const std::string kServices = "services:\n  echo: {}\n";

std::vector<std::string> Strings(const std::vector<zmq::message_t>& frames, std::size_t from = 0) {
  std::vector<std::string> out;
  for (std::size_t i = from; i < frames.size(); ++i) out.emplace_back(proto::View(frames[i]));
  return out;
}

// Receives one multipart message with a deadline; empty on timeout.
std::vector<zmq::message_t> Receive(zmq::socket_t& socket,
                                    milliseconds timeout = milliseconds(3000)) {
  std::vector<zmq::message_t> frames;
  zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) > 0) proto::ReceiveMultipart(socket, frames, false);
  return frames;
}

void Send(zmq::socket_t& socket, std::initializer_list<std::string_view> parts) {
  std::size_t i = 0;
  for (const auto part : parts) {
    socket.send(proto::Frame(part),
                ++i < parts.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
}

class RoutingTest : public ::testing::Test {
 protected:
  zmq::context_t context_;
};

TEST_F(RoutingTest, RoundTripWithMultiFrameBinaryBody) {
  RunningBroker broker(TestConfigYaml("", kServices));
  WorkerThread worker(context_, broker.workers(), "echo");
  proto::Client client(context_, broker.clients());
  const std::string binary("\x00\x01\xff zero", 8);
  const auto result = client.Call("echo", {"hello", binary, ""}, milliseconds(3000));
  ASSERT_EQ(result.outcome, Outcome::kOk) << result.reason;
  EXPECT_EQ(result.body, (std::vector<std::string>{"hello", binary, ""}));
}

TEST_F(RoutingTest, LargeBodyRoundTrip) {
  RunningBroker broker(TestConfigYaml("", kServices));
  WorkerThread worker(context_, broker.workers(), "echo");
  proto::Client client(context_, broker.clients());
  std::string big(512 * 1024, 'x');
  big[1000] = 'y';
  const auto result = client.Call("echo", {big}, milliseconds(3000));
  ASSERT_EQ(result.outcome, Outcome::kOk) << result.reason;
  ASSERT_EQ(result.body.size(), 1U);
  EXPECT_EQ(result.body[0], big);
}

TEST_F(RoutingTest, ManyClientsManyWorkersEveryReplyReachesItsClient) {
  RunningBroker broker(TestConfigYaml("", kServices));
  std::vector<std::unique_ptr<WorkerThread>> workers;
  for (int w = 0; w < 4; ++w) {
    workers.push_back(std::make_unique<WorkerThread>(context_, broker.workers(), "echo"));
  }
  constexpr int kClients = 8;
  constexpr int kRequests = 100;
  std::atomic<int> good{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      proto::Client client(context_, broker.clients());
      for (int i = 0; i < kRequests; ++i) {
        const std::string body = "client " + std::to_string(c) + " request " + std::to_string(i);
        const auto result = client.Call("echo", {body}, milliseconds(5000));
        if (result.outcome == Outcome::kOk && result.body == std::vector<std::string>{body}) {
          ++good;
        }
      }
    });
  }
  for (auto& thread : clients) thread.join();
  EXPECT_EQ(good, kClients * kRequests);
  int answered = 0;
  for (const auto& worker : workers) {
    EXPECT_GT(worker->answered(), 0) << "a worker got no work: dispatch is not fair";
    answered += worker->answered();
  }
  EXPECT_EQ(answered, kClients * kRequests);
}

TEST_F(RoutingTest, ReqClientFromTheZguideWorksUnchanged) {
  RunningBroker broker(TestConfigYaml("", kServices));
  WorkerThread worker(context_, broker.workers(), "echo");
  zmq::socket_t req(context_, zmq::socket_type::req);
  req.set(zmq::sockopt::linger, 0);
  req.connect(broker.clients());
  Send(req, {"MDPC01", "echo", "ping"});
  const auto reply = Receive(req);
  EXPECT_EQ(Strings(reply), (std::vector<std::string>{"MDPC01", "echo", "ping"}));
}

TEST_F(RoutingTest, DealerClientWithoutDelimiterGetsReplyWithoutDelimiter) {
  RunningBroker broker(TestConfigYaml("", kServices));
  WorkerThread worker(context_, broker.workers(), "echo");
  zmq::socket_t dealer(context_, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.connect(broker.clients());
  Send(dealer, {"MDPC01", "echo", "ping"});
  EXPECT_EQ(Strings(Receive(dealer)), (std::vector<std::string>{"MDPC01", "echo", "ping"}));
}

TEST_F(RoutingTest, UnknownServiceGets404) {
  RunningBroker broker(TestConfigYaml("", kServices));
  proto::Client client(context_, broker.clients());
  const auto result = client.Call("nosuch", {"x"}, milliseconds(3000));
  ASSERT_EQ(result.outcome, Outcome::kError);
  EXPECT_EQ(result.code, 404);
  EXPECT_EQ(result.reason, "unknown service");
}

TEST_F(RoutingTest, NoWorkerGets503AtTheDeadline) {
  RunningBroker broker(TestConfigYaml("  request_timeout: 200ms\n", kServices));
  proto::Client client(context_, broker.clients());
  const auto start = std::chrono::steady_clock::now();
  const auto result = client.Call("echo", {"x"}, milliseconds(3000));
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(result.outcome, Outcome::kError);
  EXPECT_EQ(result.code, 503);
  EXPECT_GE(waited, milliseconds(190));
}

TEST_F(RoutingTest, SlowWorkerGets504AndItsLateReplyIsDropped) {
  // The first request takes 600 ms against a 400 ms timeout; the second
  // (sent at ~400 ms) waits for the worker and is answered at ~600 ms.
  RunningBroker broker(TestConfigYaml("  request_timeout: 400ms\n", kServices));
  std::atomic<bool> slow{true};
  WorkerThread worker(context_, broker.workers(), "echo", [&](auto&) {
    if (slow.exchange(false)) std::this_thread::sleep_for(milliseconds(600));
  });
  proto::Client client(context_, broker.clients());
  const auto first = client.Call("echo", {"first"}, milliseconds(3000));
  ASSERT_EQ(first.outcome, Outcome::kError);
  EXPECT_EQ(first.code, 504);
  // The late reply to "first" must not be taken as the answer to "second".
  const auto second = client.Call("echo", {"second"}, milliseconds(3000));
  ASSERT_EQ(second.outcome, Outcome::kOk) << second.reason;
  EXPECT_EQ(second.body, std::vector<std::string>{"second"});
  broker.Stop();
  EXPECT_EQ(broker.broker().router().table().stats().late_replies, 1U);
}

// A worker that takes a request and vanishes without DISCONNECT.
TEST_F(RoutingTest, WorkerDyingMidRequestGets502) {
  RunningBroker broker(TestConfigYaml(
      "  heartbeat_interval: 50ms\n  heartbeat_liveness: 3\n  request_timeout: 5s\n", kServices));
  {
    zmq::socket_t raw(context_, zmq::socket_type::dealer);
    raw.set(zmq::sockopt::linger, 0);
    raw.connect(broker.workers());
    Send(raw, {"", "MDPW01", "\x01", "echo"});
    proto::Client client(context_, broker.clients());
    std::thread caller([&] {
      const auto result = client.Call("echo", {"x"}, milliseconds(3000));
      EXPECT_EQ(result.outcome, Outcome::kError);
      EXPECT_EQ(result.code, 502);
    });
    std::vector<zmq::message_t> request;
    do {
      request = Receive(raw);  // skip heartbeats until the REQUEST arrives
    } while (!request.empty() && proto::View(request[2]) != "\x02");
    ASSERT_FALSE(request.empty());
    raw.close();  // dies holding the request
    caller.join();
  }
}

TEST_F(RoutingTest, RedispatchGivesTheRequestToAnotherWorker) {
  RunningBroker broker(TestConfigYaml("  heartbeat_interval: 50ms\n  request_timeout: 5s\n",
                                      "services:\n  jobs: { redispatch: true }\n"));
  zmq::socket_t raw(context_, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.connect(broker.workers());
  Send(raw, {"", "MDPW01", "\x01", "jobs"});
  proto::Client client(context_, broker.clients());
  std::thread caller([&] {
    const auto result = client.Call("jobs", {"work"}, milliseconds(4000));
    ASSERT_EQ(result.outcome, Outcome::kOk) << result.code << " " << result.reason;
    EXPECT_EQ(result.body, std::vector<std::string>{"work"});
  });
  std::vector<zmq::message_t> request;
  do {
    request = Receive(raw);
  } while (!request.empty() && proto::View(request[2]) != "\x02");
  ASSERT_FALSE(request.empty());
  WorkerThread good(context_, broker.workers(), "jobs");
  Send(raw, {"", "MDPW01", "\x05"});  // DISCONNECT while holding the request
  caller.join();
  EXPECT_EQ(good.answered(), 1);
}

TEST_F(RoutingTest, Mmi) {
  RunningBroker broker(TestConfigYaml("", kServices));
  WorkerThread worker(context_, broker.workers(), "echo");
  proto::Client client(context_, broker.clients());
  ASSERT_TRUE(WaitFor([&] {
    return client.Call("mmi.service", {"echo"}, milliseconds(1000)).body ==
           std::vector<std::string>{"200"};
  }));
  EXPECT_EQ(client.Call("mmi.service", {"billing"}, milliseconds(1000)).body,
            std::vector<std::string>{"404"});
  EXPECT_EQ(client.Call("mmi.nosuch", {}, milliseconds(1000)).body,
            std::vector<std::string>{"501"});
}

TEST_F(RoutingTest, GarbageOnBothEndpointsIsDroppedAndTheBrokerKeepsWorking) {
  RunningBroker broker(TestConfigYaml("", kServices));
  WorkerThread worker(context_, broker.workers(), "echo");
  std::vector<zmq::socket_t> peers;
  for (const auto& endpoint : {broker.clients(), broker.workers()}) {
    for (int kind = 0; kind < 2; ++kind) {
      zmq::socket_t peer(context_, kind == 0 ? zmq::socket_type::dealer : zmq::socket_type::req);
      peer.set(zmq::sockopt::linger, 0);
      peer.connect(endpoint);
      peers.push_back(std::move(peer));
    }
  }
  const std::vector<std::vector<std::string_view>> garbage = {
      {"x"},
      {"", ""},
      {"MDPC01"},
      {"", "MDPW01"},
      {"", "MDPW01", "\x03", "not-an-id", ""},
      {"", "MDPW01", "\x07"},
      {"", "MDPW01", "\x01"},
      {"", "MDPC01", "", "body"},
      {"MDPX", "echo", "a", "b", "c"},
  };
  for (auto& peer : peers) {
    for (const auto& message : garbage) {
      for (std::size_t i = 0; i < message.size(); ++i) {
        peer.send(proto::Frame(message[i]),
                  i + 1 < message.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
      }
      if (peer.get(zmq::sockopt::type) == ZMQ_REQ) break;  // REQ waits for a reply
    }
  }
  proto::Client client(context_, broker.clients());
  const auto result = client.Call("echo", {"still alive"}, milliseconds(3000));
  ASSERT_EQ(result.outcome, Outcome::kOk) << result.reason;
  EXPECT_EQ(result.body, std::vector<std::string>{"still alive"});
  // A client with an empty service name gets a 400.
  const auto empty = client.Call("", {"x"}, milliseconds(3000));
  EXPECT_EQ(empty.code, 400);
  broker.Stop();
  EXPECT_GT(broker.broker().router().table().stats().malformed_client, 0U);
  EXPECT_GT(broker.broker().router().table().stats().malformed_worker, 0U);
}

TEST_F(RoutingTest, LongRoutingIdClientIsServed) {
  RunningBroker broker(TestConfigYaml("", kServices));
  WorkerThread worker(context_, broker.workers(), "echo");
  proto::ClientOptions options;
  options.setup = [](zmq::socket_t& socket) {
    socket.set(zmq::sockopt::routing_id, std::string(255, 'r'));
  };
  proto::Client client(context_, broker.clients(), options);
  const auto result = client.Call("echo", {"long id"}, milliseconds(3000));
  ASSERT_EQ(result.outcome, Outcome::kOk) << result.reason;
}

TEST_F(RoutingTest, OversizeRequestGets413) {
  RunningBroker broker(TestConfigYaml("  max_message_size: 1KiB\n", kServices));
  WorkerThread worker(context_, broker.workers(), "echo");
  proto::Client client(context_, broker.clients());
  const auto result = client.Call("echo", {std::string(1500, 'x')}, milliseconds(3000));
  ASSERT_EQ(result.outcome, Outcome::kError);
  EXPECT_EQ(result.code, 413);
  EXPECT_EQ(client.Call("echo", {std::string(1024, 'x')}, milliseconds(3000)).outcome,
            Outcome::kOk);
}

TEST_F(RoutingTest, WorkerReconnectsAfterBrokerDisconnectsIt) {
  RunningBroker broker(TestConfigYaml("  heartbeat_interval: 50ms\n", kServices));
  zmq::socket_t raw(context_, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.connect(broker.workers());
  Send(raw, {"", "MDPW01", "\x04"});  // heartbeat before READY: told to go away
  std::vector<zmq::message_t> reply;
  do {
    reply = Receive(raw);
  } while (!reply.empty() && proto::View(reply[2]) != "\x05");
  ASSERT_EQ(reply.size(), 3U);
  Send(raw, {"", "MDPW01", "\x01", "echo"});  // re-registers
  proto::Client client(context_, broker.clients());
  std::thread caller([&] { client.Call("echo", {"x"}, milliseconds(2000)); });
  std::vector<zmq::message_t> request;
  do {
    request = Receive(raw);
  } while (!request.empty() && proto::View(request[2]) != "\x02");
  caller.join();
  ASSERT_FALSE(request.empty());
  EXPECT_EQ(proto::View(request.back()), "x");
}

}  // namespace
}  // namespace zguard::testing

namespace zguard::testing {
namespace {

using std::chrono::milliseconds;
using Outcome = proto::CallResult::Outcome;

TEST(MultiEndpoint, ClientsAndWorkersOnSeveralEndpointsMeet) {
  const std::string ipc = "ipc:///tmp/zguard-e2e-" + std::to_string(getpid());
  const std::string yaml = R"(log: { level: warn }
endpoints:
  - { name: tcp-clients, bind: "tcp://127.0.0.1:*", role: clients, profile: grasslands }
  - { name: ipc-clients, bind: ")" +
                           ipc + R"(-c", role: clients, profile: grasslands }
  - { name: tcp-workers, bind: "tcp://127.0.0.1:*", role: workers, profile: grasslands }
  - { name: ipc-workers, bind: ")" +
                           ipc + R"(-w", role: workers, profile: grasslands }
services:
  echo: {}
)";
  auto loaded = config::LoadConfigString(yaml, "multi.yaml");
  ASSERT_TRUE(loaded.config.has_value()) << loaded.errors.at(0).ToString();
  Broker broker(std::move(*loaded.config));
  ASSERT_TRUE(broker.Start().empty());
  std::thread routing([&] { broker.Run(); });
  {
    zmq::context_t context;
    WorkerThread tcp_worker(context, broker.Endpoint("tcp-workers"), "echo");
    WorkerThread ipc_worker(context, broker.Endpoint("ipc-workers"), "echo");
    proto::Client tcp_client(context, broker.Endpoint("tcp-clients"));
    proto::Client ipc_client(context, broker.Endpoint("ipc-clients"));
    for (int i = 0; i < 20; ++i) {
      auto& client = i % 2 == 0 ? tcp_client : ipc_client;
      const std::string body = "request " + std::to_string(i);
      const auto result = client.Call("echo", {body}, milliseconds(3000));
      ASSERT_EQ(result.outcome, Outcome::kOk) << result.reason;
      EXPECT_EQ(result.body, std::vector<std::string>{body});
    }
    EXPECT_GT(tcp_worker.answered(), 0);
    EXPECT_GT(ipc_worker.answered(), 0);
  }
  broker.Stop();
  routing.join();
}

TEST(WorkerLibrary, ReconnectsAndReregistersAfterABrokerRestart) {
  // ipc endpoints: a TCP port freed by the first broker could be taken by a
  // parallel test before the second one binds it.
  const std::string base = "ipc:///tmp/zguard-restart-" + std::to_string(getpid());
  std::string yaml = TestConfigYaml("  heartbeat_interval: 50ms\n", "services:\n  echo: {}\n");
  yaml.replace(yaml.find("tcp://127.0.0.1:*"), 17, base + "-clients");
  yaml.replace(yaml.find("tcp://127.0.0.1:*"), 17, base + "-workers");
  auto first = std::make_unique<RunningBroker>(yaml);
  const std::string clients = first->clients();
  const std::string workers = first->workers();
  zmq::context_t context;
  proto::WorkerOptions options;
  options.heartbeat_interval = milliseconds(50);
  options.reconnect_delay = milliseconds(50);
  WorkerThread worker(context, workers, "echo", {}, options);
  {
    proto::Client client(context, clients);
    ASSERT_EQ(client.Call("echo", {"before"}, milliseconds(3000)).outcome, Outcome::kOk);
  }
  first.reset();  // broker gone; the worker hears nothing and reconnects
  RunningBroker second(yaml);
  proto::Client client(context, clients);
  const auto result = client.Call("echo", {"after"}, milliseconds(3000));
  ASSERT_EQ(result.outcome, Outcome::kOk) << result.code << " " << result.reason;
  EXPECT_EQ(result.body, std::vector<std::string>{"after"});
  EXPECT_EQ(worker.answered(), 2);
}

}  // namespace
}  // namespace zguard::testing
