// The ZAP handler (ZeroMQ RFC 27): one thread on inproc://zeromq.zap.01 that
// answers libzmq's authentication requests for every endpoint from the
// current Policy, plus a small pool of verifier threads for password hashes
// so that one slow argon2id check never stalls other handshakes.
//
// Lifetime: construct and Start() before any endpoint binds; Stop() (or the
// destructor) before the context closes. SetPolicy() may be called from any
// thread; the swap is atomic and requests in progress finish on the policy
// they started with.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <zmq.hpp>

#include "broker/auth/failure_limiter.hpp"
#include "broker/auth/policy.hpp"
#include "broker/metrics.hpp"

namespace zguard::auth {

// Counters, readable from any thread.
struct AuthCounters {
  std::atomic<std::uint64_t> allowed{0};
  std::atomic<std::uint64_t> denied{0};
  std::atomic<std::uint64_t> malformed{0};     // ZAP requests we could not parse
  std::atomic<std::uint64_t> busy{0};          // refused with 300: verifier queue full
  std::atomic<std::uint64_t> rate_limited{0};  // refused with 300: address cooling down
};

// One ZAP request as the handler's ROUTER socket receives it (RFC 27): [routing id] [empty]
// ["1.0"] [request id] [domain] [address] [identity] [mechanism] [credentials...]. Pure, so that
// it can be fuzzed; the views point into `frames`.
struct ZapFrames {
  enum class Kind {
    kRequest,   // `request` is filled in
    kBadReply,  // malformed, but with a routing and request id: answer status 500 `reason`
    kDrop,      // too malformed to answer at all
  };
  Kind kind = Kind::kDrop;
  std::string_view routing_id;
  std::string_view request_id;
  const char* reason = "";
  ZapRequest request;
};
ZapFrames ParseZapFrames(const std::vector<zmq::message_t>& frames);

class Authenticator {
 public:
  // `context` must outlive the Authenticator.
  // `metrics` (may be null) must outlive the Authenticator.
  Authenticator(zmq::context_t& context, std::shared_ptr<const Policy> policy,
                FailureLimits limits = {}, Metrics* metrics = nullptr, int verifier_threads = 2);

  // True while the ZAP thread runs (for /readyz).
  bool running() const { return running_.load(); }
  ~Authenticator();
  Authenticator(const Authenticator&) = delete;
  Authenticator& operator=(const Authenticator&) = delete;

  // Binds inproc://zeromq.zap.01 (throws zmq::error_t if another handler has
  // it) and starts the threads.
  void Start();
  void Stop();

  void SetPolicy(std::shared_ptr<const Policy> policy);
  std::shared_ptr<const Policy> policy() const;
  // Bumped by every SetPolicy(); a cheap way for other threads to notice a
  // new policy without touching the shared_ptr on every message.
  std::uint64_t policy_version() const { return version_.load(std::memory_order_acquire); }

  const AuthCounters& counters() const { return counters_; }

  // Decisions so far by "endpoint/allowed|denied/reason", e.g.
  // "public/denied/bad_password". Any thread.
  std::map<std::string, std::uint64_t> DecisionCounts() const;

 private:
  struct Job {
    std::string routing_id;
    std::string request_id;
    std::string domain;
    std::string address;
    std::string user_id;
    std::string roles;
    std::string hash;  // a copy of the entry: the policy may be swapped meanwhile
    bool plaintext = false;
    const char* deny_reason = nullptr;
    std::chrono::steady_clock::time_point
        queued_at;         // set: deny whatever the hash says (unknown user)
    std::string password;  // wiped after use
  };

  void Run();
  void RunVerifier(int index);
  void HandleRequest(std::vector<zmq::message_t>& frames);
  static void SendReply(zmq::socket_t& socket, std::string_view routing_id,
                        std::string_view request_id, int status, std::string_view text,
                        std::string_view user_id, std::string_view roles, std::string_view key);
  // Logs "N more" for denial keys whose window has passed; ZAP thread.
  void FlushDenialSummaries(std::chrono::steady_clock::time_point now);
  void Record(const Decision& decision, std::string_view domain, std::string_view mechanism,
              std::string_view address);

  zmq::context_t& context_;
  std::shared_ptr<const Policy> policy_;  // accessed with std::atomic_load/store
  int verifier_count_;
  std::string results_endpoint_;
  int stop_fd_ = -1;
  std::thread thread_;
  std::vector<std::thread> verifiers_;
  std::mutex jobs_mutex_;
  std::condition_variable jobs_ready_;
  std::deque<Job> jobs_;
  bool stopping_ = false;  // guarded by jobs_mutex_
  zmq::socket_t zap_;
  AuthCounters counters_;
  Metrics* metrics_;
  std::atomic<bool> running_{false};
  FailureLimiter limiter_;
  std::atomic<std::uint64_t> version_{1};
  mutable std::mutex decisions_mutex_;
  std::map<std::string, std::uint64_t> decisions_;
  // Log flood control for repeated identical denials (guarded by decisions_mutex_).
  struct DenialLog {
    std::chrono::steady_clock::time_point since;
    std::uint64_t suppressed = 0;
  };
  static constexpr std::chrono::seconds kDenialLogWindow{10};
  static constexpr std::size_t kMaxDenialKeys = 10'000;
  std::unordered_map<std::string, DenialLog> denial_log_;
};

// ZAP metadata property names carrying the client's roles and CURVE key, read
// by the routing core with zmq_msg_gets(). Always set (possibly empty) in
// every reply, so that a peer can never supply them through ZMTP metadata.
inline constexpr const char* kRolesProperty = "Roles";
inline constexpr const char* kKeyProperty = "Key";

}  // namespace zguard::auth
