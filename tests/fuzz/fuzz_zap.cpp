// Fuzz target: ZAP request handling (RFC 27), the authenticator's parse of the request frames
// and the policy decision for every profile (broker/auth/authenticator.hpp, policy.hpp).
// The policy is built once, from a config with one endpoint per profile and real files in a
// temporary folder. Input: frames as in fuzz_input.hpp, laid out as the ZAP socket receives
// them ([routing id] [empty] ["1.0"] [request id] [domain] [address] [identity] [mechanism]
// [credentials...]). Password hashes are not checked (Decision::verify is a slow, separate
// step that only ever sees the stored hash and the peer's password).
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "broker/auth/authenticator.hpp"
#include "broker/auth/password_file.hpp"
#include "broker/auth/policy.hpp"
#include "broker/config/config.hpp"
#include "proto/zpl.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace {

std::shared_ptr<const zguard::auth::Policy> g_policy;

void Fail(const std::string& what) {
  std::cerr << "fuzz_zap setup: " << what << '\n';
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  char folder[] = "/tmp/zguard-fuzz-zap-XXXXXX";
  if (mkdtemp(folder) == nullptr) Fail("mkdtemp");
  const std::string dir = folder;
  const auto broker = zguard::proto::GenerateCertificate();
  if (auto error = zguard::proto::WriteCertificatePair(dir, "broker", broker)) Fail(*error);
  if (mkdir((dir + "/store").c_str(), 0700) != 0) Fail("mkdir store");
  const auto alice = zguard::proto::GenerateCertificate();
  if (auto error = zguard::proto::WriteCertificatePair(dir + "/store", "alice", alice)) {
    Fail(*error);
  }
  unlink((dir + "/store/alice.key_secret").c_str());
  if (auto error = zguard::auth::SetPassword(dir + "/passwd", "admin", "s3cret",
                                             std::vector<std::string>{"ops"})) {
    Fail(*error);
  }
  std::ofstream(dir + "/revoked.txt") << "# none\n";
  const std::string yaml = R"(keys: { broker: broker.key_secret }
endpoints:
  - { name: grass, bind: "tcp://127.0.0.1:1", role: clients, profile: grasslands }
  - { name: straw, bind: "tcp://127.0.0.1:2", role: clients, profile: strawhouse,
      allow: ["127.0.0.0/8", "::1"], deny: ["127.0.0.9"] }
  - { name: wood, bind: "tcp://127.0.0.1:3", role: clients, profile: woodhouse,
      passwords: passwd, deny: ["10.0.0.0/8"] }
  - { name: stone, bind: "tcp://127.0.0.1:4", role: clients, profile: stonehouse,
      revoked: revoked.txt }
  - { name: iron, bind: "tcp://127.0.0.1:5", role: workers, profile: ironhouse,
      certificates: store, revoked: revoked.txt }
)";
  const auto loaded = zguard::config::LoadConfigString(yaml, "fuzz.yaml", dir);
  if (!loaded.config) Fail(loaded.errors.empty() ? "config" : loaded.errors[0].ToString());
  auto security = zguard::auth::LoadSecurity(*loaded.config);
  if (!security.errors.empty()) Fail(security.errors[0].ToString());
  g_policy = security.policy;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto frames = zguard::fuzz::SplitFrames(data, size);
  const auto parsed = zguard::auth::ParseZapFrames(frames);
  if (parsed.kind == zguard::auth::ZapFrames::Kind::kRequest) {
    const auto decision =
        zguard::auth::Decide(*g_policy, parsed.request, zguard::auth::SystemClock::now());
    // Allowed means a known endpoint; NULL is never allowed where credentials are required.
    if (decision.status == 200 && parsed.request.mechanism == "NULL" &&
        parsed.request.domain != "grass" && parsed.request.domain != "straw") {
      std::abort();
    }
  }
  return 0;
}
