// The config loader: a valid file becomes typed values; every kind of mistake
// is reported with file, line, column and key, and all of them at once.
#include "broker/config/config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

namespace zguard::config {
namespace {

using ::testing::HasSubstr;

constexpr const char* kEndpoints = R"(
endpoints:
  - name: public
    bind: tcp://127.0.0.1:5555
    role: clients
    profile: grasslands
  - name: workers
    bind: ipc:///tmp/zguard-workers
    role: workers
    profile: grasslands
)";

LoadResult Load(const std::string& yaml) { return LoadConfigString(yaml, "test.yaml"); }

// Finds the error reported for `key`; fails the test if there is none.
const Diagnostic* ErrorFor(const LoadResult& result, const std::string& key) {
  for (const auto& error : result.errors) {
    if (error.key == key) return &error;
  }
  std::string all;
  for (const auto& error : result.errors) all += "\n  " + error.ToString();
  ADD_FAILURE() << "no error for key " << key << "; errors:" << all;
  return nullptr;
}

TEST(Config, ShippedDefaultConfigIsValid) {
  const auto result = LoadConfigFile(std::string(ZGUARD_SOURCE_DIR) + "/config/zguard.yaml");
  ASSERT_TRUE(result.config.has_value())
      << (result.errors.empty() ? "" : result.errors[0].ToString());
  EXPECT_TRUE(result.warnings.empty());
  const Config& config = *result.config;
  ASSERT_EQ(config.endpoints.size(), 2U);
  EXPECT_EQ(config.endpoints[0].name, "public");
  EXPECT_EQ(config.endpoints[0].role, Role::kClients);
  EXPECT_EQ(config.endpoints[1].role, Role::kWorkers);
  EXPECT_TRUE(IsLoopbackBind(config.endpoints[0].bind));
  EXPECT_EQ(config.services.count("echo"), 1U);
}

TEST(Config, ReadsEveryKey) {
  const auto result = Load(std::string(R"(
broker:
  io_threads: 4
  heartbeat_interval: 500ms
  heartbeat_liveness: 5
  request_timeout: 30s
  max_message_size: 64KiB
  shutdown_grace: 2s
  unknown_service: queue
  max_queued_requests: 50
  send_queue: 1000
log: { level: debug, format: json }
services:
  echo: {}
  billing:
    redispatch: true
    request_timeout: 2s
    max_queued_requests: 7
)") + kEndpoints);
  ASSERT_TRUE(result.config.has_value()) << result.errors[0].ToString();
  const Config& config = *result.config;
  EXPECT_EQ(config.broker.io_threads, 4);
  EXPECT_EQ(config.broker.heartbeat_interval, Duration(500));
  EXPECT_EQ(config.broker.heartbeat_liveness, 5);
  EXPECT_EQ(config.broker.request_timeout, Duration(30'000));
  EXPECT_EQ(config.broker.max_message_size, 65536U);
  EXPECT_EQ(config.broker.shutdown_grace, Duration(2000));
  EXPECT_EQ(config.broker.unknown_service, UnknownService::kQueue);
  EXPECT_EQ(config.broker.max_queued_requests, 50U);
  EXPECT_EQ(config.broker.send_queue, 1000U);
  EXPECT_EQ(config.log.level, "debug");
  EXPECT_EQ(config.log.format, LogFormat::kJson);
  const ServiceConfig& billing = config.services.at("billing");
  EXPECT_TRUE(billing.redispatch);
  EXPECT_EQ(billing.request_timeout, Duration(2000));
  EXPECT_EQ(billing.max_queued_requests, 7U);
  EXPECT_FALSE(config.services.at("echo").redispatch);
  EXPECT_FALSE(config.services.at("echo").request_timeout.has_value());
}

TEST(Config, DefaultsApplyWhenSectionsAreMissing) {
  const auto result = Load(kEndpoints);
  ASSERT_TRUE(result.config.has_value());
  const BrokerOptions defaults;
  EXPECT_EQ(result.config->broker.request_timeout, defaults.request_timeout);
  EXPECT_EQ(result.config->broker.max_message_size, 1U << 20);
  EXPECT_EQ(result.config->log.level, "info");
}

TEST(Config, UnknownKeyNamesFileLineAndKey) {
  const auto result = Load(std::string("broker:\n  io_thread: 2\n") + kEndpoints);
  ASSERT_FALSE(result.config.has_value());
  const Diagnostic* error = ErrorFor(result, "broker.io_thread");
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(error->file, "test.yaml");
  EXPECT_EQ(error->line, 2);
  EXPECT_EQ(error->column, 3);
  EXPECT_THAT(error->message, HasSubstr("unknown key"));
  EXPECT_THAT(error->message, HasSubstr("io_threads"));  // suggests the valid keys
  EXPECT_EQ(error->ToString(), "test.yaml:2:3: broker.io_thread: " + error->message);
}

TEST(Config, UnknownTopLevelAndEndpointKeys) {
  const auto result = Load(std::string("metricz: {}\n") + kEndpoints +
                           "  - name: x\n    bind: tcp://127.0.0.1:1\n    role: clients\n"
                           "    profile: grasslands\n    colour: red\n");
  ASSERT_FALSE(result.config.has_value());
  EXPECT_EQ(ErrorFor(result, "metricz")->line, 1);
  EXPECT_EQ(ErrorFor(result, "endpoints[2].colour")->line, 16);
}

TEST(Config, WrongTypesAndValues) {
  const auto result = Load(std::string(R"(broker:
  io_threads: many
  heartbeat_interval: 10
  heartbeat_liveness: 0
  request_timeout: [1, 2]
  max_message_size: 1 TiB
  unknown_service: ignore
  max_queued_requests: -3
log:
  level: loud
  format: xml
)") + kEndpoints);
  ASSERT_FALSE(result.config.has_value());
  EXPECT_EQ(ErrorFor(result, "broker.io_threads")->line, 2);
  EXPECT_THAT(ErrorFor(result, "broker.io_threads")->message, HasSubstr("\"many\""));
  EXPECT_THAT(ErrorFor(result, "broker.heartbeat_interval")->message,
              HasSubstr("expected a duration"));
  EXPECT_THAT(ErrorFor(result, "broker.heartbeat_liveness")->message,
              HasSubstr("between 1 and 100"));
  EXPECT_THAT(ErrorFor(result, "broker.request_timeout")->message, HasSubstr("a list"));
  EXPECT_THAT(ErrorFor(result, "broker.max_message_size")->message, HasSubstr("expected a size"));
  EXPECT_THAT(ErrorFor(result, "broker.unknown_service")->message, HasSubstr("reject | queue"));
  EXPECT_EQ(ErrorFor(result, "broker.max_queued_requests")->line, 8);
  EXPECT_EQ(ErrorFor(result, "log.level")->line, 10);
  EXPECT_THAT(ErrorFor(result, "log.format")->message, HasSubstr("text | json"));
  EXPECT_EQ(result.errors.size(), 9U);  // every problem, not just the first
}

TEST(Config, OutOfRangeValues) {
  const auto result = Load(std::string(R"(broker:
  io_threads: 65
  heartbeat_interval: 5ms
  max_message_size: 2GiB
  request_timeout: 0s
  send_queue: 3000000000
)") + kEndpoints);
  ASSERT_FALSE(result.config.has_value());
  EXPECT_THAT(ErrorFor(result, "broker.send_queue")->message, HasSubstr("at most 2147483647"));
  EXPECT_THAT(ErrorFor(result, "broker.io_threads")->message, HasSubstr("between 1 and 64"));
  EXPECT_THAT(ErrorFor(result, "broker.heartbeat_interval")->message,
              HasSubstr("between 10ms and 24h"));
  EXPECT_THAT(ErrorFor(result, "broker.max_message_size")->message, HasSubstr("1GiB"));
  EXPECT_THAT(ErrorFor(result, "broker.request_timeout")->message,
              HasSubstr("between 1ms and 24h"));
}

TEST(Config, DuplicateKeysAreReported) {
  const auto result = Load(std::string("broker:\n  io_threads: 1\n  io_threads: 2\n") + kEndpoints);
  ASSERT_FALSE(result.config.has_value());
  const Diagnostic* error = ErrorFor(result, "broker.io_threads");
  ASSERT_NE(error, nullptr);
  EXPECT_EQ(error->line, 3);
  EXPECT_THAT(error->message, HasSubstr("more than once"));
}

TEST(Config, EndpointRules) {
  const auto result = Load(R"(endpoints:
  - name: public
    bind: tcp://127.0.0.1:5555
    role: clients
    profile: grasslands
  - name: public
    bind: tcp://127.0.0.1:5555
    role: workers
    profile: grasslands
  - name: "bad name!"
    bind: localhost:80
    role: admins
    profile: bluehouse
  - bind: tcp://127.0.0.1:99999
  - name: v6
    bind: tcp://::1:5557
    role: workers
    profile: grasslands
  - just a string
)");
  ASSERT_FALSE(result.config.has_value());
  EXPECT_EQ(ErrorFor(result, "endpoints[1].name")->line, 6);
  EXPECT_THAT(ErrorFor(result, "endpoints[1].name")->message, HasSubstr("duplicate endpoint name"));
  EXPECT_THAT(ErrorFor(result, "endpoints[1].bind")->message, HasSubstr("duplicate bind"));
  EXPECT_THAT(ErrorFor(result, "endpoints[2].name")->message, HasSubstr("letters, digits"));
  EXPECT_THAT(ErrorFor(result, "endpoints[2].bind")->message,
              HasSubstr("expected tcp://HOST:PORT or ipc://PATH"));
  EXPECT_THAT(ErrorFor(result, "endpoints[2].role")->message, HasSubstr("clients | workers"));
  EXPECT_THAT(ErrorFor(result, "endpoints[2].profile")->message, HasSubstr("ironhouse"));
  EXPECT_THAT(ErrorFor(result, "endpoints[3].bind")->message, HasSubstr("port must be"));
  EXPECT_THAT(ErrorFor(result, "endpoints[3].name")->message, HasSubstr("missing required key"));
  EXPECT_NE(ErrorFor(result, "endpoints[3].role"), nullptr);
  EXPECT_THAT(ErrorFor(result, "endpoints[4].bind")->message, HasSubstr("brackets"));
  EXPECT_THAT(ErrorFor(result, "endpoints[5]")->message, HasSubstr("expected a mapping"));
}

TEST(Config, NeedsOneEndpointOfEachRole) {
  const auto result = Load(R"(endpoints:
  - name: public
    bind: tcp://127.0.0.1:5555
    role: clients
    profile: grasslands
)");
  ASSERT_FALSE(result.config.has_value());
  EXPECT_THAT(ErrorFor(result, "endpoints")->message, HasSubstr("role: workers"));
  const auto none = Load("broker: {}\n");
  EXPECT_THAT(ErrorFor(none, "endpoints")->message, HasSubstr("missing"));
}

TEST(Config, GrasslandsOnAPublicBindNeedsAllowInsecure) {
  const std::string yaml = R"(endpoints:
  - name: public
    bind: tcp://0.0.0.0:5555
    role: clients
    profile: grasslands
  - name: workers
    bind: tcp://127.0.0.1:5556
    role: workers
    profile: grasslands
)";
  const auto refused = Load(yaml);
  ASSERT_FALSE(refused.config.has_value());
  EXPECT_THAT(ErrorFor(refused, "endpoints[0].profile")->message, HasSubstr("allow_insecure"));

  std::string fixed = yaml;
  fixed.insert(fixed.find("  - name: workers"), "    allow_insecure: true\n");
  const auto ok = Load(fixed);
  ASSERT_TRUE(ok.config.has_value()) << ok.errors[0].ToString();
  ASSERT_EQ(ok.warnings.size(), 1U);
  EXPECT_THAT(ok.warnings[0].ToString(), HasSubstr("test.yaml:3:11: endpoints[0].bind"));
}

TEST(Config, OneErrorPerMistake) {
  // A bad profile on a public bind is one mistake, not two.
  const auto result = Load(R"(endpoints:
  - name: public
    bind: tcp://0.0.0.0:5555
    role: clients
    profile: fortress
  - name: workers
    bind: udp://127.0.0.1:5556
    role: workers
    profile: grasslands
)");
  ASSERT_EQ(result.errors.size(), 2U) << result.errors[0].ToString();
  EXPECT_EQ(result.errors[0].key, "endpoints[0].profile");
  EXPECT_THAT(result.errors[0].message, HasSubstr("expected grasslands | strawhouse"));
  EXPECT_EQ(result.errors[1].key, "endpoints[1].bind");
}

TEST(Config, ServiceRules) {
  const auto result = Load(std::string(R"(services:
  mmi.custom: {}
  "bad/name": {}
  slow:
    redispatch: maybe
    request_timeout: soon
    max_queued_requests: 0
    priority: high
)") + kEndpoints);
  ASSERT_FALSE(result.config.has_value());
  EXPECT_THAT(ErrorFor(result, "services.mmi.custom")->message, HasSubstr("reserved"));
  EXPECT_EQ(ErrorFor(result, "services.bad/name")->line, 3);
  EXPECT_THAT(ErrorFor(result, "services.slow.redispatch")->message, HasSubstr("true or false"));
  EXPECT_NE(ErrorFor(result, "services.slow.request_timeout"), nullptr);
  EXPECT_NE(ErrorFor(result, "services.slow.max_queued_requests"), nullptr);
  EXPECT_THAT(ErrorFor(result, "services.slow.priority")->message, HasSubstr("unknown key"));
}

// A rule on who may call a service, or forwarding the callers' identities to its workers,
// protects nothing while any worker on any workers endpoint may serve it.
TEST(Config, RestrictedServicesMustSayWhoServesThem) {
  const auto result = Load(std::string(R"(services:
  billing: { clients: ["role:finance"] }
  whoami: { forward_identity: true }
  open: { clients: ["*"], workers: ["*"] }
  hr: { clients: ["role:hr"], forward_identity: true, workers: ["role:hr-worker"] }
)") + kEndpoints);
  ASSERT_FALSE(result.config.has_value());
  ASSERT_EQ(result.errors.size(), 2U);
  const Diagnostic* billing = ErrorFor(result, "services.billing.workers");
  ASSERT_NE(billing, nullptr);
  EXPECT_EQ(billing->line, 2);
  EXPECT_THAT(billing->message, HasSubstr("has a clients: rule but no workers: rule"));
  EXPECT_THAT(billing->message, HasSubstr(R"(["*"] for any worker)"));
  const Diagnostic* whoami = ErrorFor(result, "services.whoami.workers");
  ASSERT_NE(whoami, nullptr);
  EXPECT_THAT(whoami->message, HasSubstr("see who calls it"));
}

TEST(Config, PeerLimits) {
  const auto result = Load(std::string(R"(broker:
  max_frames: 8
  undeclared_services: deny
  max_undeclared_services: 0
  service_retention: 5s
)") + kEndpoints);
  ASSERT_TRUE(result.config.has_value()) << result.errors.at(0).ToString();
  EXPECT_EQ(result.config->broker.max_frames, 8U);
  EXPECT_EQ(result.config->broker.undeclared_services, UndeclaredServices::kDeny);
  EXPECT_EQ(result.config->broker.max_undeclared_services, 0U);
  EXPECT_EQ(result.config->broker.service_retention, std::chrono::seconds(5));
  const auto defaults = Load(kEndpoints);
  ASSERT_TRUE(defaults.config.has_value());
  EXPECT_EQ(defaults.config->broker.max_frames, 64U);
  EXPECT_EQ(defaults.config->broker.undeclared_services, UndeclaredServices::kAllow);
  EXPECT_EQ(defaults.config->broker.max_undeclared_services, 1000U);
  const auto bad = Load(std::string(R"(broker:
  max_frames: 0
  undeclared_services: maybe
)") + kEndpoints);
  ASSERT_FALSE(bad.config.has_value());
  EXPECT_THAT(ErrorFor(bad, "broker.max_frames")->message, HasSubstr("at least 1"));
  EXPECT_THAT(ErrorFor(bad, "broker.undeclared_services")->message, HasSubstr("allow | deny"));
  const auto big = Load(std::string("broker:\n  max_frames: 70000\n") + kEndpoints);
  EXPECT_THAT(ErrorFor(big, "broker.max_frames")->message, HasSubstr("at most 65536"));
}

TEST(Config, SyntaxErrorHasALocation) {
  const auto result = Load("broker:\n  io_threads: [1, 2\n");
  ASSERT_FALSE(result.config.has_value());
  ASSERT_EQ(result.errors.size(), 1U);
  EXPECT_THAT(result.errors[0].message, HasSubstr("YAML syntax error"));
  EXPECT_GE(result.errors[0].line, 2);
}

TEST(Config, EmptyAndMissingFiles) {
  EXPECT_THAT(Load("").errors.at(0).message, HasSubstr("empty"));
  EXPECT_THAT(Load("- a\n- b\n").errors.at(0).message, HasSubstr("expected a mapping"));
  const auto missing = LoadConfigFile("/nonexistent/zguard.yaml");
  ASSERT_EQ(missing.errors.size(), 1U);
  EXPECT_EQ(missing.errors[0].ToString(), "/nonexistent/zguard.yaml: cannot read file");
}

TEST(Config, EveryFileInBadConfigDirFails) {
  // tests/data/bad_config/*.yaml each carry their expected first error in a
  // leading "# expect: KEY" comment.
  const std::string dir = std::string(ZGUARD_SOURCE_DIR) + "/tests/data/bad_config";
  int checked = 0;
  for (const char* name : {"no_workers.yaml", "tabs_and_types.yaml", "public_grasslands.yaml"}) {
    const std::string path = dir + "/" + name;
    std::ifstream in(path);
    std::string first_line;
    std::getline(in, first_line);
    ASSERT_EQ(first_line.rfind("# expect: ", 0), 0U) << path;
    const std::string key = first_line.substr(10);
    const auto result = LoadConfigFile(path);
    ASSERT_FALSE(result.config.has_value()) << path;
    const Diagnostic* error = ErrorFor(result, key);
    ASSERT_NE(error, nullptr) << path;
    EXPECT_EQ(error->file, path);
    EXPECT_GT(error->line, 0);
    ++checked;
  }
  EXPECT_EQ(checked, 3);
}

TEST(BindAddress, Checks) {
  EXPECT_FALSE(CheckBindAddress("tcp://127.0.0.1:5555").has_value());
  EXPECT_FALSE(CheckBindAddress("tcp://*:5555").has_value());
  EXPECT_FALSE(CheckBindAddress("tcp://127.0.0.1:*").has_value());
  EXPECT_FALSE(CheckBindAddress("tcp://[::1]:5555").has_value());
  EXPECT_FALSE(CheckBindAddress("tcp://eth0:5555").has_value());
  EXPECT_FALSE(CheckBindAddress("ipc:///run/zguard.sock").has_value());
  EXPECT_TRUE(CheckBindAddress("inproc://x").has_value());
  EXPECT_TRUE(CheckBindAddress("tcp://127.0.0.1").has_value());
  EXPECT_TRUE(CheckBindAddress("tcp://127.0.0.1:0x10").has_value());
  EXPECT_TRUE(CheckBindAddress("tcp://[::1:5555").has_value());
  EXPECT_TRUE(CheckBindAddress("ipc://").has_value());
  EXPECT_TRUE(CheckBindAddress("tcp://localhost:5555").has_value());  // libzmq cannot bind it
  EXPECT_TRUE(CheckBindAddress("tcp://LocalHost:5555").has_value());
  EXPECT_TRUE(IsLoopbackBind("tcp://127.0.0.1:1"));
  EXPECT_TRUE(IsLoopbackBind("tcp://[::1]:1"));
  EXPECT_TRUE(IsLoopbackBind("ipc:///tmp/x"));
  EXPECT_FALSE(IsLoopbackBind("tcp://*:1"));
  EXPECT_FALSE(IsLoopbackBind("tcp://10.0.0.1:1"));
  EXPECT_FALSE(IsLoopbackBind("tcp://localhost:1"));
}

}  // namespace
}  // namespace zguard::config
