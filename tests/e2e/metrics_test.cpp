// Prometheus metrics scraped over real HTTP from a running broker: after a
// scripted sequence (n admitted, m refused, k requests, one timeout), the
// counters say exactly n, m, k and 1, with the right labels; /healthz and
// /readyz answer.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sstream>

#include "broker_fixture.hpp"

namespace zguard::testing {
namespace {

using std::chrono::milliseconds;
using Outcome = proto::CallResult::Outcome;

// A minimal HTTP/1.0 GET against 127.0.0.1:port; returns status line + body.
std::string HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      ssize_t n = 0;
      while ((n = read(fd, buffer, sizeof buffer)) > 0) response.append(buffer, n);
    }
  }
  close(fd);
  return response;
}

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

TEST(Metrics, OffUnlessConfigured) {
  RunningBroker broker(TestConfigYaml());
  EXPECT_EQ(broker.broker().metrics_port(), 0);
}

}  // namespace
}  // namespace zguard::testing
