// Broker start-up and shutdown: bind failures are reported, not fatal to the
// process; a stop drains in-flight requests and answers everything else.
#include <gtest/gtest.h>

#include "broker_fixture.hpp"

namespace zguard::testing {
namespace {

using std::chrono::milliseconds;
using Outcome = proto::CallResult::Outcome;

TEST(Lifecycle, PortInUseIsAClearError) {
  RunningBroker first(TestConfigYaml());
  const std::string taken = first.clients();
  std::string yaml = TestConfigYaml();
  yaml.replace(yaml.find("tcp://127.0.0.1:*"), 17, taken);
  auto loaded = config::LoadConfigString(yaml, "second.yaml");
  ASSERT_TRUE(loaded.config.has_value());
  Broker second(std::move(*loaded.config));
  const auto problems = second.Start();
  ASSERT_EQ(problems.size(), 1U);
  EXPECT_NE(problems[0].find("endpoint public: cannot bind " + taken), std::string::npos)
      << problems[0];
  EXPECT_NE(problems[0].find("Address already in use"), std::string::npos) << problems[0];
}

TEST(Lifecycle, StopDrainsInFlightRequests) {
  RunningBroker broker(TestConfigYaml("  shutdown_grace: 3s\n", "services:\n  slow: {}\n"));
  zmq::context_t context;
  WorkerThread worker(context, broker.workers(), "slow",
                      [](auto&) { std::this_thread::sleep_for(milliseconds(300)); });
  proto::Client client(context, broker.clients());
  proto::CallResult result;
  std::thread caller([&] { result = client.Call("slow", {"x"}, milliseconds(3000)); });
  ASSERT_TRUE(WaitFor([&] { return broker.broker().router().table().LiveRequests() == 1; }));
  const auto start = std::chrono::steady_clock::now();
  broker.Stop();  // returns once drained
  caller.join();
  EXPECT_EQ(result.outcome, Outcome::kOk) << result.reason;
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(2500));
}

TEST(Lifecycle, GraceExpiryAnswersWhatIsLeft) {
  RunningBroker broker(TestConfigYaml("  shutdown_grace: 100ms\n  request_timeout: 10s\n",
                                      "services:\n  never: {}\n"));
  zmq::context_t context;
  proto::Client client(context, broker.clients());
  proto::CallResult result;
  std::thread caller([&] { result = client.Call("never", {"x"}, milliseconds(3000)); });
  ASSERT_TRUE(WaitFor([&] { return broker.broker().router().table().LiveRequests() == 1; }));
  broker.Stop();
  caller.join();
  ASSERT_EQ(result.outcome, Outcome::kError);
  EXPECT_EQ(result.code, 503);
  EXPECT_EQ(result.reason, "broker is shutting down");
}

}  // namespace
}  // namespace zguard::testing
