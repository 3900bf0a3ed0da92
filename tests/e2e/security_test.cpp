// Every security profile end to end, over real sockets and real CURVE and
// PLAIN handshakes on 127.0.0.1: the right credentials get through, each kind
// of wrong one is refused with the right reason, and a refused client's
// request never reaches a worker.
#include <gtest/gtest.h>

#include "tests/support/temp_dir.hpp"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <mutex>

#include "broker/auth/password_file.hpp"
#include "broker_fixture.hpp"
#include "proto/zpl.hpp"

namespace zguard::testing {
namespace {

using std::chrono::milliseconds;
using Outcome = proto::CallResult::Outcome;

// How long a refused client waits before we call it refused. A refused
// handshake never carries a request, so a refusal shows as a timeout.
constexpr milliseconds kRefused{700};
constexpr milliseconds kAccepted{5000};

proto::Certificate MakeCert(const std::string& dir, const std::string& name,
                            std::vector<std::pair<std::string, std::string>> meta = {}) {
  proto::Certificate cert = proto::GenerateCertificate();
  cert.metadata = std::move(meta);
  const auto problem = proto::WriteCertificatePair(dir, name, cert);
  EXPECT_FALSE(problem.has_value()) << *problem;
  return cert;
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string& dir = tmp_.path();
    mkdir((dir + "/keys").c_str(), 0700);
    mkdir((dir + "/store").c_str(), 0755);
    broker_cert_ = MakeCert(dir + "/keys", "broker");
    alice_ = MakeCert(dir + "/keys", "alice", {{"name", "alice"}, {"roles", "ops,billing"}});
    mallory_ = MakeCert(dir + "/keys", "mallory");  // never in the store
    revoked_ = MakeCert(dir + "/keys", "revoked", {{"name", "revoked"}});
    billing_worker_ = MakeCert(dir + "/keys", "billing-worker", {{"name", "billing-worker"}});
    intruder_ = MakeCert(dir + "/keys", "intruder", {{"name", "intruder"}});
    expired_ = MakeCert(dir + "/keys", "expired",
                        {{"name", "expired"}, {"expires-at", "2020-01-01T00:00:00Z"}});
    // The store holds public certificates only.
    for (const auto* name : {"alice", "revoked", "expired", "billing-worker", "intruder"}) {
      std::ifstream in(dir + "/keys/" + name + ".key");
      std::ofstream out(dir + "/store/" + name + ".key");
      out << in.rdbuf();
    }
    std::ofstream(dir + "/revoked.txt") << "# revoked keys\n" << revoked_.public_key << "\n";
    ASSERT_FALSE(
        auth::SetPassword(dir + "/passwd", "admin", "s3cret", std::vector<std::string>{"ops"}));

    const std::string yaml = R"(broker:
  request_timeout: 3s
  handshake_timeout: 1s
log: { level: warn }
metrics: { listen: "127.0.0.1:0" }
keys:
  broker: keys/broker.key_secret
endpoints:
  - { name: grass, bind: "tcp://127.0.0.1:*", role: clients, profile: grasslands }
  - { name: straw, bind: "tcp://127.0.0.1:*", role: clients, profile: strawhouse,
      allow: [127.0.0.0/8] }
  - { name: straw-deny, bind: "tcp://127.0.0.1:*", role: clients, profile: strawhouse,
      deny: ["127.0.0.1"] }
  - { name: wood, bind: "tcp://127.0.0.1:*", role: clients, profile: woodhouse,
      passwords: passwd }
  - { name: stone, bind: "tcp://127.0.0.1:*", role: clients, profile: stonehouse,
      revoked: revoked.txt }
  - { name: iron, bind: "tcp://127.0.0.1:*", role: clients, profile: ironhouse,
      certificates: store, revoked: revoked.txt }
  - { name: workers, bind: "tcp://127.0.0.1:*", role: workers, profile: grasslands }
  - { name: iron-workers, bind: "tcp://127.0.0.1:*", role: workers, profile: ironhouse,
      certificates: store }
services:
  echo: {}
  billing: { clients: ["role:billing"], workers: ["user:billing-worker"] }
  whoami: { forward_identity: true, workers: ["*"] }
)";
    auto loaded = config::LoadConfigString(yaml, "security.yaml", dir);
    ASSERT_TRUE(loaded.config.has_value()) << loaded.errors.at(0).ToString();
    broker_ = std::make_unique<Broker>(std::move(*loaded.config));
    const auto problems = broker_->Start();
    ASSERT_TRUE(problems.empty()) << problems[0];
    thread_ = std::thread([this] { broker_->Run(); });
    worker_ = std::make_unique<WorkerThread>(context_, broker_->Endpoint("workers"), "echo");
  }

  void TearDown() override {
    worker_.reset();
    if (broker_) broker_->Stop();
    if (thread_.joinable()) thread_.join();
    broker_.reset();
  }

  proto::CallResult Call(const std::string& endpoint, const proto::Security& security,
                         milliseconds timeout, const std::string& service = "echo") {
    proto::ClientOptions options;
    options.security = security;
    proto::Client client(context_, broker_->Endpoint(endpoint), options);
    return client.Call(service, {"hello"}, timeout);
  }

  void ExpectAccepted(const std::string& endpoint, const proto::Security& security) {
    const auto result = Call(endpoint, security, kAccepted);
    ASSERT_EQ(result.outcome, Outcome::kOk) << endpoint << ": " << result.reason;
    EXPECT_EQ(result.body, std::vector<std::string>{"hello"});
  }

  // Refused, and the worker saw nothing.
  void ExpectRefused(const std::string& endpoint, const proto::Security& security) {
    const int before = worker_->answered();
    const auto result = Call(endpoint, security, kRefused);
    EXPECT_EQ(result.outcome, Outcome::kTimeout) << endpoint << ": got a reply";
    EXPECT_EQ(worker_->answered(), before) << endpoint << ": a refused request reached a worker";
  }

  std::uint64_t Count(const std::string& key) {
    const auto counts = broker_->authenticator().DecisionCounts();
    const auto it = counts.find(key);
    return it == counts.end() ? 0 : it->second;
  }

  proto::Security Curve(const proto::Certificate& client) const {
    return proto::Security{broker_cert_.public_key, client.public_key, client.secret_key, "", ""};
  }
  proto::Security Plain(const std::string& user, const std::string& password) const {
    return proto::Security{"", "", "", user, password};
  }

  TempDir tmp_;
  zmq::context_t context_;
  proto::Certificate broker_cert_, alice_, mallory_, revoked_, expired_, billing_worker_, intruder_;
  std::unique_ptr<Broker> broker_;
  std::thread thread_;
  std::unique_ptr<WorkerThread> worker_;
};

TEST_F(SecurityTest, Grasslands) { ExpectAccepted("grass", {}); }

TEST_F(SecurityTest, StrawhouseAllowsListedAddressesOnly) {
  ExpectAccepted("straw", {});
  EXPECT_GE(Count("straw/allowed/ok"), 1U);
  ExpectRefused("straw-deny", {});
  EXPECT_GE(Count("straw-deny/denied/address_denied"), 1U);
}

TEST_F(SecurityTest, WoodhouseChecksUserAndPassword) {
  ExpectAccepted("wood", Plain("admin", "s3cret"));
  ExpectRefused("wood", Plain("admin", "wrong"));
  EXPECT_TRUE(WaitFor([&] { return Count("wood/denied/bad_password") >= 1; }));
  ExpectRefused("wood", Plain("nobody", "s3cret"));
  EXPECT_TRUE(WaitFor([&] { return Count("wood/denied/unknown_user") >= 1; }));
  ExpectRefused("wood", {});  // NULL client on a PLAIN endpoint: no handshake at all
  EXPECT_EQ(Count("wood/allowed/ok"), 1U);
}

TEST_F(SecurityTest, StonehouseAdmitsAnyKeyThatKnowsTheServer) {
  ExpectAccepted("stone", Curve(mallory_));
  ExpectAccepted("stone", proto::Security{broker_cert_.public_key, "", "", "", ""});  // ephemeral
  proto::Certificate other = proto::GenerateCertificate();
  ExpectRefused("stone", proto::Security{other.public_key, "", "", "", ""});  // wrong server key
  ExpectRefused("stone", Curve(revoked_));
  EXPECT_GE(Count("stone/denied/revoked"), 1U);
  ExpectRefused("stone", Plain("admin", "s3cret"));  // PLAIN client on a CURVE endpoint
  ExpectRefused("stone", {});
}

TEST_F(SecurityTest, IronhouseAdmitsOnlyStoredCurrentUnrevokedKeys) {
  ExpectAccepted("iron", Curve(alice_));
  ExpectRefused("iron", Curve(mallory_));
  EXPECT_GE(Count("iron/denied/unknown_key"), 1U);
  ExpectRefused("iron", Curve(revoked_));
  EXPECT_GE(Count("iron/denied/revoked"), 1U);
  ExpectRefused("iron", Curve(expired_));
  EXPECT_GE(Count("iron/denied/expired"), 1U);
  EXPECT_EQ(Count("iron/allowed/ok"), 1U);
}

TEST_F(SecurityTest, PasswordChecksDoNotStallOtherHandshakes) {
  // A burst of PLAIN logins (each an argon2id hash) must not delay a CURVE
  // client on another endpoint by more than a fraction of the burst.
  std::vector<std::thread> logins;
  for (int i = 0; i < 6; ++i) {
    logins.emplace_back([this] { Call("wood", Plain("admin", "wrong"), kRefused); });
  }
  const auto start = std::chrono::steady_clock::now();
  ExpectAccepted("iron", Curve(alice_));
  const auto took = std::chrono::steady_clock::now() - start;
  for (auto& login : logins) login.join();
  EXPECT_LT(took, milliseconds(1500));
}

TEST_F(SecurityTest, ServiceRulesDecideWhoMayCallAndWhoMayServe) {
  proto::WorkerOptions legit;
  legit.security = Curve(billing_worker_);
  WorkerThread billing(context_, broker_->Endpoint("iron-workers"), "billing", {}, legit);
  // alice has role billing; a stonehouse client with a fresh key has no roles.
  const auto allowed = Call("iron", Curve(alice_), kAccepted, "billing");
  ASSERT_EQ(allowed.outcome, Outcome::kOk) << allowed.code << " " << allowed.reason;
  const auto refused = Call("stone", Curve(mallory_), kAccepted, "billing");
  ASSERT_EQ(refused.outcome, Outcome::kError);
  // Answered like a service that does not exist (as mmi.service does).
  EXPECT_EQ(refused.code, 404);
  EXPECT_EQ(refused.reason, "unknown service");
  EXPECT_EQ(billing.answered(), 1);
}

TEST_F(SecurityTest, AWorkerMayNotServeAServiceItIsNotAllowedTo) {
  // "intruder" is in the store (admitted by the endpoint) but not allowed to
  // serve billing: its READY is refused, so requests wait for the real one.
  std::atomic<int> stolen{0};
  proto::WorkerOptions bad;
  bad.security = Curve(intruder_);
  WorkerThread intruder(
      context_, broker_->Endpoint("iron-workers"), "billing", [&](auto&) { ++stolen; }, bad);
  const auto waiting = Call("iron", Curve(alice_), milliseconds(500), "billing");
  EXPECT_EQ(waiting.outcome, Outcome::kTimeout);
  proto::WorkerOptions legit;
  legit.security = Curve(billing_worker_);
  WorkerThread billing(context_, broker_->Endpoint("iron-workers"), "billing", {}, legit);
  const auto served = Call("iron", Curve(alice_), kAccepted, "billing");
  ASSERT_EQ(served.outcome, Outcome::kOk) << served.code << " " << served.reason;
  EXPECT_EQ(stolen, 0);
  EXPECT_GE(billing.answered(), 1);
}

TEST_F(SecurityTest, ForwardIdentityTellsTheWorkerWhoAsks) {
  std::vector<std::string> seen;
  std::mutex mutex;
  WorkerThread whoami(context_, broker_->Endpoint("workers"), "whoami", [&](auto& body) {
    std::lock_guard<std::mutex> lock(mutex);
    for (const auto& frame : body) seen.emplace_back(proto::View(frame));
  });
  const auto result = Call("iron", Curve(alice_), kAccepted, "whoami");
  ASSERT_EQ(result.outcome, Outcome::kOk) << result.reason;
  std::lock_guard<std::mutex> lock(mutex);
  EXPECT_EQ(seen, (std::vector<std::string>{"zguard.identity", "alice", "ops,billing", "hello"}));
}

TEST_F(SecurityTest, NewKeyInTheStoreIsAdmittedWithoutRestart) {
  const auto newcomer = proto::GenerateCertificate();
  ExpectRefused("iron", Curve(newcomer));
  std::ofstream(tmp_.path() + "/store/newcomer.key") << proto::FormatCertificate(newcomer, false);
  // The reloader polls every 250 ms; a handshake after that sees the new store.
  ASSERT_TRUE(WaitFor(
      [&] { return Call("iron", Curve(newcomer), milliseconds(400)).outcome == Outcome::kOk; },
      milliseconds(3000)));
}

TEST_F(SecurityTest, RevocationReachesAConnectedClientWithinASecond) {
  proto::ClientOptions options;
  options.security = Curve(alice_);
  proto::Client client(context_, broker_->Endpoint("iron"), options);
  ASSERT_EQ(client.Call("echo", {"before"}, kAccepted).outcome, Outcome::kOk);
  std::ofstream(tmp_.path() + "/revoked.txt", std::ios::app) << alice_.public_key << "\n";
  const auto revoked_at = std::chrono::steady_clock::now();
  proto::CallResult result;
  ASSERT_TRUE(WaitFor(
      [&] {
        result = client.Call("echo", {"after"}, milliseconds(500));
        return result.outcome == Outcome::kError;
      },
      milliseconds(3000)));
  EXPECT_LT(std::chrono::steady_clock::now() - revoked_at, milliseconds(1500));
  EXPECT_EQ(result.code, 403);
  EXPECT_EQ(result.reason, "credentials revoked");
  ExpectRefused("iron", Curve(alice_));  // and a new connection is refused at the handshake
}

TEST_F(SecurityTest, AWorkerTakenOutOfTheStoreIsDroppedBeforeItGetsMoreWork) {
  proto::WorkerOptions legit;
  legit.security = Curve(billing_worker_);
  legit.heartbeat_interval = milliseconds(200);
  WorkerThread billing(context_, broker_->Endpoint("iron-workers"), "billing", {}, legit);
  ASSERT_EQ(Call("iron", Curve(alice_), kAccepted, "billing").outcome, Outcome::kOk);
  ASSERT_EQ(std::remove((tmp_.path() + "/store/billing-worker.key").c_str()), 0);
  // Once the reload lands the worker is dropped at once (not on its next
  // message), so the next request waits for a worker instead of reaching it.
  ASSERT_TRUE(WaitFor([&] {
    const auto counts = broker_->authenticator().policy()->endpoints.at("iron-workers");
    return counts.certificates.count(billing_worker_.public_key) == 0;
  }));
  std::this_thread::sleep_for(milliseconds(50));  // the router picks the policy up on its next loop
  const auto result = Call("iron", Curve(alice_), milliseconds(800), "billing");
  EXPECT_NE(result.outcome, Outcome::kOk);
  EXPECT_EQ(billing.answered(), 1);
}

TEST_F(SecurityTest, ABrokenReloadKeepsThePreviousPolicy) {
  std::ofstream(tmp_.path() + "/revoked.txt", std::ios::app) << "this is not a key\n";
  std::this_thread::sleep_for(milliseconds(600));  // two reload periods
  ExpectAccepted("iron", Curve(alice_));
  ExpectRefused("iron", Curve(revoked_));  // the old revocations still hold
}

TEST(RateLimit, RepeatedFailuresAreRefusedWithoutChecksUntilTheCooldownEnds) {
  TempDir tmp;
  ASSERT_FALSE(auth::SetPassword(tmp.path() + "/passwd", "admin", "s3cret", std::nullopt));
  const std::string yaml = R"(broker:
  auth_failure_limit: 3
  auth_failure_window: 10s
  auth_cooldown: 1500ms
log: { level: warn }
endpoints:
  - { name: wood, bind: "tcp://127.0.0.1:*", role: clients, profile: woodhouse, passwords: passwd }
  - { name: workers, bind: "tcp://127.0.0.1:*", role: workers, profile: grasslands }
services:
  echo: {}
)";
  auto loaded = config::LoadConfigString(yaml, "limit.yaml", tmp.path());
  ASSERT_TRUE(loaded.config.has_value()) << loaded.errors.at(0).ToString();
  Broker broker(std::move(*loaded.config));
  ASSERT_TRUE(broker.Start().empty());
  std::thread routing([&] { broker.Run(); });
  {
    zmq::context_t context;
    WorkerThread worker(context, broker.Endpoint("workers"), "echo");
    auto call = [&](const std::string& password, milliseconds timeout) {
      proto::ClientOptions options;
      options.security = proto::Security{"", "", "", "admin", password};
      proto::Client client(context, broker.Endpoint("wood"), options);
      return client.Call("echo", {"x"}, timeout).outcome;
    };
    auto count = [&](const std::string& key) {
      const auto counts = broker.authenticator().DecisionCounts();
      return counts.count(key) != 0 ? counts.at(key) : 0;
    };
    for (int i = 0; i < 3; ++i) EXPECT_EQ(call("wrong", kRefused), Outcome::kTimeout);
    // Hashes run at low priority: on a busy machine the verdicts may lag.
    EXPECT_TRUE(WaitFor([&] { return count("wood/denied/bad_password") == 3U; }));
    // Cooling down: even the right password is refused, and nothing is hashed.
    EXPECT_EQ(call("s3cret", kRefused), Outcome::kTimeout);
    EXPECT_GE(count("wood/denied/rate_limited"), 1U);
    EXPECT_EQ(count("wood/denied/bad_password"), 3U);
    EXPECT_EQ(worker.answered(), 0);
    // After the cool-down the right password works again.
    EXPECT_TRUE(WaitFor([&] { return call("s3cret", milliseconds(500)) == Outcome::kOk; },
                        milliseconds(5000)));
  }
  broker.Stop();
  routing.join();
}

// Issue 6, authenticator faults: when the ZAP handler stalls or is gone, nobody gets in on a
// checked endpoint (fail closed), /readyz says unready, grasslands (no ZAP) and connections
// admitted before the fault keep working.
TEST_F(SecurityTest, AuthenticatorFaultsFailClosed) {
  proto::ClientOptions options;
  options.security = Curve(alice_);
  proto::Client admitted(context_, broker_->Endpoint("iron"), options);
  ASSERT_EQ(admitted.Call("echo", {"before"}, kAccepted).outcome, Outcome::kOk);
  const int port = broker_->metrics_port();
  ASSERT_GT(port, 0);
  EXPECT_NE(HttpGet(port, "/readyz").find(" 200 "), std::string::npos);

  // Every endpoint asks the authenticator, grasslands included.
  const std::vector<std::pair<std::string, proto::Security>> checked = {
      {"grass", proto::Security{}},
      {"straw", proto::Security{}},
      {"wood", Plain("admin", "s3cret")},
      {"stone", Curve(mallory_)},
      {"iron", Curve(alice_)}};

  // 1. The handler stalls: it is stopped, and a stand-in that never answers takes its address.
  broker_->authenticator().Stop();
  {
    zmq::socket_t silent(broker_->context(), zmq::socket_type::router);
    // libzmq frees an inproc name asynchronously once its socket is closed: retry the bind
    // for a while instead of failing on "Address already in use".
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    bool bound = false;
    while (!bound) {
      try {
        silent.bind("inproc://zeromq.zap.01");
        bound = true;
      } catch (const zmq::error_t& e) {
        ASSERT_EQ(e.num(), EADDRINUSE) << e.what();
        ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the ZAP address stayed taken";
        std::this_thread::sleep_for(milliseconds(10));
      }
    }
    EXPECT_NE(HttpGet(port, "/readyz").find(" 503 "), std::string::npos);
    for (const auto& [endpoint, security] : checked) ExpectRefused(endpoint, security);
    // libzmq did ask: the stand-in holds unanswered requests.
    zmq::message_t frame;
    EXPECT_TRUE(silent.recv(frame, zmq::recv_flags::dontwait).has_value());
    // A connection admitted before goes on working.
    EXPECT_EQ(admitted.Call("echo", {"during"}, kAccepted).outcome, Outcome::kOk);
    silent.set(zmq::sockopt::linger, 0);
  }
  // 2. The handler is gone: nothing listens on the ZAP address at all.
  for (const auto& [endpoint, security] : checked) ExpectRefused(endpoint, security);
  EXPECT_NE(HttpGet(port, "/readyz").find(" 503 "), std::string::npos);
  EXPECT_EQ(admitted.Call("echo", {"after"}, kAccepted).outcome, Outcome::kOk);
}

}  // namespace
}  // namespace zguard::testing
