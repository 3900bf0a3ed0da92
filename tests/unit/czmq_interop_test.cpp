// CURVE certificates shared with CZMQ: what zcert_save writes (DIR/NAME public, DIR/NAME_secret
// secret) loads in zguard with its keys and metadata, fills an ironhouse certificate store, and
// authenticates a client through a real broker; and zcert_load reads what zguard writes. CZMQ is
// driven through tests/interop/czmq_certgen.c, whose path the build passes as
// ZGUARD_CZMQ_CERTGEN.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <zmq.h>
#include "tests/support/temp_dir.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "broker/auth/policy.hpp"
#include "broker/broker.hpp"
#include "broker/config/config.hpp"
#include "proto/client.hpp"
#include "proto/worker.hpp"
#include "proto/zpl.hpp"

#ifndef ZGUARD_CZMQ_CERTGEN
#error "ZGUARD_CZMQ_CERTGEN must name the czmq_certgen program (see tests/CMakeLists.txt)"
#endif

namespace zguard::auth {
namespace {

using std::chrono::milliseconds;
using Outcome = proto::CallResult::Outcome;

using zguard::testing::TempDir;

std::string ShellQuote(const std::string& text) {
  std::string out = "'";
  for (const char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

struct ProgramOutput {
  bool ok = false;  // exited with status 0
  std::string out;  // stdout; stderr goes to the test's own stderr
};

// Runs czmq_certgen with `args`.
ProgramOutput RunCertgen(const std::vector<std::string>& args) {
  std::string command = ShellQuote(ZGUARD_CZMQ_CERTGEN);
  for (const auto& arg : args) command += " " + ShellQuote(arg);
  ProgramOutput result;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  std::array<char, 256> buffer{};
  std::size_t got = 0;
  while ((got = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) {
    result.out.append(buffer.data(), got);
  }
  const int status = pclose(pipe);
  result.ok = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return result;
}

// zcert_new + zcert_set_meta + zcert_save(DIR/NAME); returns the public key CZMQ printed, or ""
// after reporting a failure.
std::string ZcertSave(const std::string& dir, const std::string& name,
                      const std::vector<std::string>& metadata = {}) {
  std::vector<std::string> args{dir, name};
  args.insert(args.end(), metadata.begin(), metadata.end());
  const auto result = RunCertgen(args);
  if (!result.ok || result.out.size() != 41 || result.out.back() != '\n') {
    ADD_FAILURE() << "czmq_certgen " << dir << " " << name << " failed; stdout: " << result.out;
    return "";
  }
  return result.out.substr(0, 40);
}

// What zcert_load made of a file.
struct ZcertLoaded {
  std::string public_key;
  std::string name;          // metadata `name`
  std::string secret_state;  // matches, absent or mismatch
};

std::optional<ZcertLoaded> ZcertLoad(const std::string& file) {
  const auto result = RunCertgen({"--load", file});
  if (!result.ok) {
    ADD_FAILURE() << "czmq_certgen --load " << file << " failed; stdout: " << result.out;
    return std::nullopt;
  }
  std::istringstream lines(result.out);
  std::array<std::string, 3> values;
  const std::array<std::string, 3> labels{"public-key: ", "name: ", "secret-key: "};
  for (std::size_t i = 0; i < labels.size(); ++i) {
    std::string line;
    if (!std::getline(lines, line) || line.compare(0, labels[i].size(), labels[i]) != 0) {
      ADD_FAILURE() << "unexpected czmq_certgen --load output: " << result.out;
      return std::nullopt;
    }
    values[i] = line.substr(labels[i].size());
  }
  return ZcertLoaded{values[0], values[1], values[2]};
}

std::string Z85Decode(const std::string& key) {
  std::string binary(32, '\0');
  if (zmq_z85_decode(reinterpret_cast<std::uint8_t*>(binary.data()), key.c_str()) == nullptr) {
    return "";
  }
  return binary;
}

const std::vector<std::string> kAliceMetadata{"name=alice", "roles=ops,dev",
                                              "expires-at=2099-01-01"};
// 2099-01-01T00:00:00Z
const SystemClock::time_point kAliceExpiry = SystemClock::from_time_t(4070908800);

TEST(CzmqInterop, LoadsBothFilesZcertSaveWrites) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string key = ZcertSave(dir.path(), "alice", kAliceMetadata);
  ASSERT_TRUE(proto::IsZ85Key(key)) << key;

  const auto public_result = proto::LoadCertificateFile(dir.File("alice"));
  ASSERT_TRUE(public_result.certificate.has_value())
      << public_result.line << ": " << public_result.error;
  const auto secret_result = proto::LoadCertificateFile(dir.File("alice_secret"));
  ASSERT_TRUE(secret_result.certificate.has_value())
      << secret_result.line << ": " << secret_result.error;
  const proto::Certificate& public_cert = *public_result.certificate;
  const proto::Certificate& secret_cert = *secret_result.certificate;

  EXPECT_EQ(public_cert.public_key, key);
  EXPECT_EQ(public_cert.secret_key, "");
  EXPECT_EQ(secret_cert.public_key, key);
  ASSERT_TRUE(proto::IsZ85Key(secret_cert.secret_key));
  // libzmq's own derivation agrees with the libsodium check the parser made.
  std::array<char, 41> derived{};
  ASSERT_EQ(zmq_curve_public(derived.data(), secret_cert.secret_key.c_str()), 0);
  EXPECT_EQ(std::string(derived.data()), key);

  // CZMQ writes the metadata into both files (in its hash order, so no order is checked).
  for (const proto::Certificate* cert : {&public_cert, &secret_cert}) {
    EXPECT_EQ(cert->metadata.size(), 3U);
    EXPECT_EQ(cert->Meta("name"), "alice");
    EXPECT_EQ(cert->Meta("roles"), "ops,dev");
    EXPECT_EQ(cert->Meta("expires-at"), "2099-01-01");
  }
  // CZMQ creates the secret file owner-only, so zguard accepts it as a server key.
  EXPECT_EQ(proto::CheckSecretFilePermissions(dir.File("alice_secret")), std::nullopt);
}

TEST(CzmqInterop, CertificateStoreTakesThePublicFileAndSkipsTheSecretOne) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string key = ZcertSave(dir.path(), "alice", kAliceMetadata);
  ASSERT_TRUE(proto::IsZ85Key(key));

  auto store = LoadCertificateStore(dir.path());
  EXPECT_FALSE(store.error.has_value());
  ASSERT_EQ(store.certificates.size(), 1U);
  const auto found = store.certificates.find(key);
  ASSERT_NE(found, store.certificates.end());
  EXPECT_EQ(found->second.name, "alice");
  EXPECT_EQ(found->second.roles, "ops,dev");
  ASSERT_TRUE(found->second.expires_at.has_value());
  EXPECT_EQ(*found->second.expires_at, kAliceExpiry);
  EXPECT_EQ(found->second.file, dir.File("alice"));

  ASSERT_EQ(store.warnings.size(), 1U);
  EXPECT_EQ(store.warnings[0].file, dir.File("alice_secret"));
  EXPECT_NE(store.warnings[0].message.find("secret certificate"), std::string::npos)
      << store.warnings[0].message;

  // The ZAP decision for that key: admitted as alice with her roles until expires-at.
  Policy policy;
  EndpointPolicy endpoint;
  endpoint.name = "iron";
  endpoint.profile = config::Profile::kIronhouse;
  endpoint.certificates = std::move(store.certificates);
  policy.endpoints.emplace(endpoint.name, std::move(endpoint));
  const std::string binary = Z85Decode(key);
  ASSERT_EQ(binary.size(), 32U);
  const ZapRequest request{"iron", "127.0.0.1", "CURVE", {binary}};
  const Decision allowed = Decide(policy, request, SystemClock::now());
  EXPECT_EQ(allowed.status, 200) << allowed.reason;
  EXPECT_EQ(allowed.user_id, "alice");
  EXPECT_EQ(allowed.roles, "ops,dev");
  EXPECT_EQ(allowed.key, key);
  const Decision expired = Decide(policy, request, kAliceExpiry + std::chrono::seconds(1));
  EXPECT_EQ(expired.status, 400);
  EXPECT_STREQ(expired.reason, "expired");
}

TEST(CzmqInterop, ZcertLoadReadsCertificatesZguardWrites) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  proto::Certificate certificate = proto::GenerateCertificate();
  certificate.metadata = {{"name", "from zguard"}, {"roles", "ops"}};
  ASSERT_EQ(proto::WriteCertificatePair(dir.path(), "zg", certificate), std::nullopt);

  // zcert_load(FILE) reads FILE_secret when there is one: here zg.key_secret.
  auto loaded = ZcertLoad(dir.File("zg.key"));
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->public_key, certificate.public_key);
  EXPECT_EQ(loaded->name, "from zguard");
  EXPECT_EQ(loaded->secret_state, "matches");

  // Named directly (there is no zg.key_secret_secret), the secret file reads the same.
  loaded = ZcertLoad(dir.File("zg.key_secret"));
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->public_key, certificate.public_key);
  EXPECT_EQ(loaded->name, "from zguard");
  EXPECT_EQ(loaded->secret_state, "matches");

  // A public certificate on its own: the keys and metadata, no secret. A value holding `"` is
  // single-quoted by zguard, and CZMQ's ZPL reader takes that too.
  certificate.metadata = {{"name", "say \"hi\""}};
  std::ofstream(dir.File("lonely.key")) << proto::FormatCertificate(certificate, false);
  loaded = ZcertLoad(dir.File("lonely.key"));
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(loaded->public_key, certificate.public_key);
  EXPECT_EQ(loaded->name, "say \"hi\"");
  EXPECT_EQ(loaded->secret_state, "absent");
}

// A worker for `service` on its own thread that answers every request with its body.
class EchoWorker {
 public:
  EchoWorker(zmq::context_t& context, const std::string& endpoint, const std::string& service)
      : thread_([this, &context, endpoint, service] {
          proto::Worker worker(context, endpoint, service);
          while (!stop_) {
            auto request = worker.Receive(milliseconds(50));
            if (request) worker.Reply(request->client, request->body);
          }
        }) {}
  ~EchoWorker() {
    stop_ = true;
    thread_.join();
  }
  EchoWorker(const EchoWorker&) = delete;
  EchoWorker& operator=(const EchoWorker&) = delete;

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A broker running on its own thread; stopped and joined on destruction.
class BrokerThread {
 public:
  explicit BrokerThread(std::unique_ptr<Broker> broker) : broker_(std::move(broker)) {
    thread_ = std::thread([this] { broker_->Run(); });
  }
  ~BrokerThread() {
    broker_->Stop();
    thread_.join();
  }
  BrokerThread(const BrokerThread&) = delete;
  BrokerThread& operator=(const BrokerThread&) = delete;
  Broker& operator*() { return *broker_; }
  Broker* operator->() { return broker_.get(); }

 private:
  std::unique_ptr<Broker> broker_;
  std::thread thread_;
};

std::uint64_t Count(Broker& broker, const std::string& key) {
  const auto counts = broker.authenticator().DecisionCounts();
  const auto it = counts.find(key);
  return it == counts.end() ? 0 : it->second;
}

// The whole path: a broker whose CURVE key CZMQ made, an ironhouse store holding a certificate
// CZMQ made (and its _secret file, which the store skips), and a client using that certificate's
// keys. The service admits role `dev` only and forwards the caller's identity, so the reply shows
// the User-Id and roles the broker took from CZMQ's metadata.
TEST(CzmqInterop, BrokerAuthenticatesAClientWithZcertCertificates) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string keys = dir.File("keys");
  const std::string store = dir.File("store");
  ASSERT_TRUE(std::filesystem::create_directory(keys));
  ASSERT_TRUE(std::filesystem::create_directory(store));
  const std::string server_key = ZcertSave(keys, "broker", {"name=broker"});
  const std::string alice_key = ZcertSave(store, "alice", kAliceMetadata);
  const std::string mallory_key = ZcertSave(keys, "mallory", {"name=mallory", "roles=dev"});
  ASSERT_TRUE(proto::IsZ85Key(server_key) && proto::IsZ85Key(alice_key) &&
              proto::IsZ85Key(mallory_key));
  const auto alice = proto::LoadCertificateFile(store + "/alice_secret");
  const auto mallory = proto::LoadCertificateFile(keys + "/mallory_secret");
  ASSERT_TRUE(alice.certificate && mallory.certificate);

  const std::string yaml = R"(broker:
  request_timeout: 3s
log: { level: warn }
keys:
  broker: )" + keys + R"(/broker_secret
endpoints:
  - { name: iron, bind: "tcp://127.0.0.1:*", role: clients, profile: ironhouse,
      certificates: store }
  - { name: workers, bind: "tcp://127.0.0.1:*", role: workers, profile: grasslands }
services:
  whoami: { forward_identity: true, clients: ["role:dev"], workers: ["*"] }
)";
  auto loaded = config::LoadConfigString(yaml, "czmq.yaml", dir.path());
  ASSERT_TRUE(loaded.config.has_value()) << loaded.errors.at(0).ToString();
  auto broker = std::make_unique<Broker>(std::move(*loaded.config));
  const auto problems = broker->Start();
  ASSERT_TRUE(problems.empty()) << problems[0];

  zmq::context_t context;
  BrokerThread running(std::move(broker));
  EchoWorker worker(context, running->Endpoint("workers"), "whoami");

  auto call = [&](const proto::Certificate& client, milliseconds timeout) {
    proto::ClientOptions options;
    options.security = proto::Security{server_key, client.public_key, client.secret_key, "", ""};
    proto::Client caller(context, running->Endpoint("iron"), options);
    return caller.Call("whoami", {"hello"}, timeout);
  };

  const auto result = call(*alice.certificate, milliseconds(5000));
  ASSERT_EQ(result.outcome, Outcome::kOk) << result.code << " " << result.reason;
  EXPECT_EQ(result.body,
            (std::vector<std::string>{"zguard.identity", "alice", "ops,dev", "hello"}));
  EXPECT_GE(Count(*running, "iron/allowed/ok"), 1U);

  // A CZMQ certificate that is not in the store gets no handshake, whatever its metadata says.
  const auto refused = call(*mallory.certificate, milliseconds(700));
  EXPECT_EQ(refused.outcome, Outcome::kTimeout) << "got a reply";
  EXPECT_GE(Count(*running, "iron/denied/unknown_key"), 1U);
}

}  // namespace
}  // namespace zguard::auth
