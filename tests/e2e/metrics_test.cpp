// Prometheus metrics scraped over real HTTP from a running broker: after a
// scripted sequence (n admitted, m refused, k requests, one timeout), the
// counters say exactly n, m, k and 1, with the right labels; /healthz and
// /readyz answer.
#include <gtest/gtest.h>

#include <sstream>

#include "broker_fixture.hpp"

namespace zguard::testing {
namespace {

using std::chrono::milliseconds;
using Outcome = proto::CallResult::Outcome;

// The value of the sample `name{labels}` whose labels include all of
// `labels` ("k=\"v\"" strings); -1 when there is no such sample.
double Sample(const std::string& text, const std::string& name,
              const std::vector<std::string>& labels) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(name + "{", 0) != 0 && line.rfind(name + " ", 0) != 0) continue;
    bool all = true;
    for (const auto& label : labels) all = all && line.find(label) != std::string::npos;
    if (all) return std::stod(line.substr(line.rfind(' ') + 1));
  }
  return -1;
}

TEST(Metrics, ScrapedCountersMatchAScriptedSequence) {
  const std::string yaml = R"(broker:
  request_timeout: 300ms
log: { level: warn }
metrics: { listen: "127.0.0.1:0" }
endpoints:
  - { name: public, bind: "tcp://127.0.0.1:*", role: clients, profile: strawhouse,
      allow: [127.0.0.0/8] }
  - { name: closed, bind: "tcp://127.0.0.1:*", role: clients, profile: strawhouse,
      deny: [127.0.0.0/8] }
  - { name: workers, bind: "tcp://127.0.0.1:*", role: workers, profile: grasslands }
services:
  echo: {}
  slow: {}
)";
  RunningBroker broker(yaml);
  const int port = broker.broker().metrics_port();
  ASSERT_GT(port, 0);
  EXPECT_NE(HttpGet(port, "/healthz").find("200 OK"), std::string::npos);
  EXPECT_NE(HttpGet(port, "/readyz").find("200 OK"), std::string::npos);

  zmq::context_t context;
  WorkerThread echo(context, broker.workers(), "echo");
  WorkerThread slow(context, broker.workers(), "slow",
                    [](auto&) { std::this_thread::sleep_for(milliseconds(600)); });
  constexpr int kAdmitted = 3;  // clients (one handshake each)
  constexpr int kRequests = 4;  // echo requests per client
  for (int c = 0; c < kAdmitted; ++c) {
    proto::Client client(context, broker.clients());
    for (int i = 0; i < kRequests; ++i) {
      ASSERT_EQ(client.Call("echo", {"x"}, milliseconds(3000)).outcome, Outcome::kOk);
    }
  }
  constexpr int kRefused = 2;
  for (int i = 0; i < kRefused; ++i) {
    proto::Client client(context, broker.broker().Endpoint("closed"));
    EXPECT_EQ(client.Call("echo", {"x"}, milliseconds(300)).outcome, Outcome::kTimeout);
  }
  proto::Client client(context, broker.clients());
  EXPECT_EQ(client.Call("slow", {"x"}, milliseconds(3000)).code, 504);
  EXPECT_EQ(client.Call("nosuch", {"x"}, milliseconds(3000)).code, 404);

  const std::string text = HttpGet(port, "/metrics");
  ASSERT_NE(text.find("200 OK"), std::string::npos) << text;
  const std::string auth = "zguard_auth_decisions_total";
  EXPECT_EQ(Sample(text, auth,
                   {R"(endpoint="public")", R"(decision="allowed")", R"(mechanism="NULL")",
                    R"(reason="ok")"}),
            kAdmitted + 1);  // + the client for slow/nosuch
  EXPECT_EQ(Sample(text, auth,
                   {R"(endpoint="closed")", R"(decision="denied")", R"(reason="address_denied")"}),
            kRefused);
  EXPECT_EQ(Sample(text, "zguard_requests_total", {R"(service="echo")", R"(outcome="ok")"}),
            kAdmitted * kRequests);
  EXPECT_EQ(Sample(text, "zguard_requests_total", {R"(service="slow")", R"(outcome="timeout")"}),
            1);
  EXPECT_EQ(Sample(text, "zguard_requests_total",
                   {R"(service="_unknown")", R"(outcome="unknown_service")"}),
            1);
  EXPECT_EQ(Sample(text, "zguard_request_duration_seconds_count", {R"(service="echo")"}),
            kAdmitted * kRequests);
  EXPECT_EQ(Sample(text, "zguard_workers", {R"(service="echo")", R"(state="idle")"}), 1);
  EXPECT_EQ(Sample(text, "zguard_messages_total", {R"(endpoint="public")", R"(direction="in")"}),
            kAdmitted * kRequests + 2);
  EXPECT_GE(
      Sample(text, "zguard_handshake_failures_total", {R"(endpoint="closed")", R"(reason="auth")"}),
      kRefused);
  EXPECT_EQ(Sample(text, "zguard_build_info", {"version="}), 1);
  // Every family has HELP and TYPE lines.
  for (const char* family : {"zguard_auth_decisions_total", "zguard_requests_total",
                             "zguard_request_duration_seconds", "zguard_connections",
                             "zguard_config_reloads_total", "zguard_authenticator_queue_seconds"}) {
    const std::string name(family);
    const std::string base = name.size() > 6 && name.compare(name.size() - 6, 6, "_total") == 0
                                 ? name.substr(0, name.size() - 6)
                                 : name;
    EXPECT_NE(text.find("# HELP " + base), std::string::npos) << family;
  }
}

// Replies the broker cannot hand over are counted, and nobody else waits for them: a client
// that went away (its request ends as client_gone and the worker's reply is dropped as late),
// and a client that never reads while its queue, send_queue messages deep, is full
// (queue_full). ROUTER_MANDATORY makes the second visible.
TEST(Metrics, UndeliverableRepliesAreCountedAndBlockNobody) {
  const std::string yaml = TestConfigYaml("  request_timeout: 5s\n  send_queue: 4\n",
                                          "metrics: { listen: \"127.0.0.1:0\" }\n"
                                          "services:\n  echo: {}\n  slow: {}\n");
  RunningBroker broker(yaml);
  const int port = broker.broker().metrics_port();
  zmq::context_t context;
  WorkerThread echo(context, broker.workers(), "echo");
  WorkerThread slow(context, broker.workers(), "slow",
                    [](auto&) { std::this_thread::sleep_for(milliseconds(300)); });

  // 1. The client closes its socket while the slow worker holds its request: the broker
  // learns of the disconnect, ends the request and drops the worker's reply.
  {
    zmq::socket_t gone(context, zmq::socket_type::dealer);
    gone.set(zmq::sockopt::linger, 1000);
    gone.connect(broker.clients());
    gone.send(zmq::str_buffer("MDPC01"), zmq::send_flags::sndmore);
    gone.send(zmq::str_buffer("slow"), zmq::send_flags::sndmore);
    gone.send(zmq::str_buffer("bye"), zmq::send_flags::none);
    std::this_thread::sleep_for(milliseconds(100));  // the request reaches the worker
  }
  ASSERT_TRUE(WaitFor([&] {
    const std::string text = HttpGet(port, "/metrics");
    return Sample(text, "zguard_requests_total",
                  {R"(service="slow")", R"(outcome="client_gone")"}) == 1 &&
           Sample(text, "zguard_late_replies_total", {R"(service="slow")"}) == 1;
  })) << HttpGet(port, "/metrics");
  EXPECT_EQ(Sample(HttpGet(port, "/metrics"), "zguard_dropped_messages_total",
                   {R"(endpoint="public")", R"(reason="peer_gone")"}),
            0);

  // 2. queue_full: 64 KiB replies to a client that reads nothing, until the kernel buffers
  // and its queue are full; meanwhile another client is answered as usual.
  zmq::socket_t deaf(context, zmq::socket_type::dealer);
  deaf.set(zmq::sockopt::rcvhwm, 1);
  deaf.set(zmq::sockopt::linger, 0);
  deaf.connect(broker.clients());
  const std::string big(64 * 1024, 'x');
  constexpr int kFlood = 400;
  for (int i = 0; i < kFlood; ++i) {
    deaf.send(zmq::str_buffer("MDPC01"), zmq::send_flags::sndmore);
    deaf.send(zmq::str_buffer("echo"), zmq::send_flags::sndmore);
    deaf.send(zmq::buffer(big), zmq::send_flags::none);
  }
  proto::Client other(context, broker.clients());
  ASSERT_TRUE(WaitFor(
      [&] {
        return Sample(HttpGet(port, "/metrics"), "zguard_dropped_messages_total",
                      {R"(endpoint="public")", R"(reason="queue_full")"}) > 0;
      },
      milliseconds(10000)))
      << HttpGet(port, "/metrics");
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(other.Call("echo", {"still here"}, milliseconds(3000)).outcome, Outcome::kOk);
  EXPECT_LT(std::chrono::steady_clock::now() - started, milliseconds(2000));
  // Every reply is either delivered or counted as dropped (the last ones may still be on
  // their way from the worker when the flood's requests have all been answered).
  std::string text;
  const bool all_accounted = WaitFor(
      [&] {
        text = HttpGet(port, "/metrics");
        const double dropped = Sample(text, "zguard_dropped_messages_total",
                                      {R"(endpoint="public")", R"(reason="queue_full")"});
        const double delivered =
            Sample(text, "zguard_messages_total", {R"(endpoint="public")", R"(direction="out")"});
        return dropped + delivered == kFlood + 1;
      },
      milliseconds(20000));
  EXPECT_TRUE(all_accounted) << text;
  EXPECT_EQ(echo.answered(), kFlood + 1);
}

// Oversize input: a body over max_message_size gets 413 and is counted as too_large; a frame
// over the transport limit (ZMQ_MAXMSGSIZE, 2 x max_message_size + 64 KiB) makes libzmq drop
// the connection before the broker sees it. Either way others are served as usual.
TEST(Metrics, OversizeMessagesAreRefusedAndCounted) {
  const std::string yaml = TestConfigYaml("  max_message_size: 1KiB\n",
                                          "metrics: { listen: \"127.0.0.1:0\" }\n"
                                          "services:\n  echo: {}\n");
  RunningBroker broker(yaml);
  const int port = broker.broker().metrics_port();
  zmq::context_t context;
  WorkerThread echo(context, broker.workers(), "echo");
  proto::Client client(context, broker.clients());
  const auto refused = client.Call("echo", {std::string(2048, 'x')}, milliseconds(3000));
  EXPECT_EQ(refused.code, 413);
  EXPECT_EQ(Sample(HttpGet(port, "/metrics"), "zguard_requests_total",
                   {R"(service="echo")", R"(outcome="too_large")"}),
            1);
  EXPECT_EQ(echo.answered(), 0);

  zmq::socket_t huge(context, zmq::socket_type::dealer);
  huge.set(zmq::sockopt::linger, 0);
  huge.connect(broker.clients());
  huge.send(zmq::str_buffer("MDPC01"), zmq::send_flags::sndmore);
  huge.send(zmq::str_buffer("echo"), zmq::send_flags::sndmore);
  const std::string body(200 * 1024, 'y');
  huge.send(zmq::buffer(body), zmq::send_flags::none);
  zmq::pollitem_t item{huge.handle(), 0, ZMQ_POLLIN, 0};
  EXPECT_EQ(zmq::poll(&item, 1, milliseconds(1000)), 0) << "a reply to an over-limit frame";
  EXPECT_EQ(echo.answered(), 0);
  EXPECT_EQ(client.Call("echo", {"small"}, milliseconds(3000)).outcome, Outcome::kOk);
}

TEST(Metrics, OffUnlessConfigured) {
  RunningBroker broker(TestConfigYaml());
  EXPECT_EQ(broker.broker().metrics_port(), 0);
}

}  // namespace
}  // namespace zguard::testing
