// The ZAP handler thread and its password verifiers; see authenticator.hpp.
// Every request gets exactly one 7-frame reply; nothing a request contains
// can make this thread throw or stop.
#include "broker/auth/authenticator.hpp"

#include <sodium.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "proto/mdp.hpp"

namespace zguard::auth {
namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
constexpr std::size_t kMaxQueuedVerifications = 1024;

void AppendProperty(std::string& out, std::string_view name, std::string_view value) {
  out.push_back(static_cast<char>(name.size()));
  out.append(name);
  const auto size = static_cast<std::uint32_t>(value.size());
  out.push_back(static_cast<char>((size >> 24) & 0xff));
  out.push_back(static_cast<char>((size >> 16) & 0xff));
  out.push_back(static_cast<char>((size >> 8) & 0xff));
  out.push_back(static_cast<char>(size & 0xff));
  out.append(value);
}

// Failures are counted per endpoint and address: one misbehaving client does
// not lock the same host out of the other endpoints.
std::string LimiterKey(std::string_view domain, std::string_view address) {
  std::string key(domain);
  key += '\0';
  key.append(address);
  return key;
}

// Printable form of a peer-supplied value for logs: bounded, no control bytes.
std::string Printable(std::string_view text) {
  std::string out;
  for (const char c : text.substr(0, 128)) {
    out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  }
  if (text.size() > 128) out += "...";
  return out;
}

}  // namespace

Authenticator::Authenticator(zmq::context_t& context, std::shared_ptr<const Policy> policy,
                             FailureLimits limits, Metrics* metrics, int verifier_threads)
    : context_(context),
      policy_(std::move(policy)),
      verifier_count_(std::max(1, verifier_threads)),
      results_endpoint_("inproc://zguard.auth.results." +
                        std::to_string(reinterpret_cast<std::uintptr_t>(this))),
      metrics_(metrics),
      limiter_(limits) {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  // Make the dummy hash now, not on the first unknown user (which would stall
  // the ZAP thread for one hash).
  for (const auto& [name, endpoint] : policy_->endpoints) {
    if (endpoint.profile == config::Profile::kWoodhouse) {
      DummyPasswordEntry();
      break;
    }
  }
  stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (stop_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
}

Authenticator::~Authenticator() {
  Stop();
  if (stop_fd_ >= 0) close(stop_fd_);
}

void Authenticator::SetPolicy(std::shared_ptr<const Policy> policy) {
  std::atomic_store(&policy_, std::move(policy));
  version_.fetch_add(1, std::memory_order_acq_rel);
}

std::shared_ptr<const Policy> Authenticator::policy() const { return std::atomic_load(&policy_); }

void Authenticator::Start() {
  zap_ = zmq::socket_t(context_, zmq::socket_type::router);
  zap_.set(zmq::sockopt::linger, 0);
  zap_.bind(kZapEndpoint);
  zmq::socket_t results(context_, zmq::socket_type::pull);
  results.set(zmq::sockopt::linger, 0);
  results.bind(results_endpoint_);
  for (int i = 0; i < verifier_count_; ++i) {
    verifiers_.emplace_back([this, i] { RunVerifier(i); });
  }
  running_ = true;
  thread_ = std::thread([this, results = std::move(results)]() mutable {
    try {
      std::vector<zmq::message_t> frames;
      zmq::pollitem_t items[] = {{zap_.handle(), 0, ZMQ_POLLIN, 0},
                                 {results.handle(), 0, ZMQ_POLLIN, 0},
                                 {nullptr, stop_fd_, ZMQ_POLLIN, 0}};
      while (true) {
        // Wake at least every second to write the summaries of suppressed denials.
        zmq::poll(items, 3, std::chrono::milliseconds(1000));
        FlushDenialSummaries(std::chrono::steady_clock::now());
        if ((items[2].revents & ZMQ_POLLIN) != 0) break;
        if ((items[0].revents & ZMQ_POLLIN) != 0) {
          while (proto::ReceiveMultipart(zap_, frames, true)) HandleRequest(frames);
        }
        if ((items[1].revents & ZMQ_POLLIN) != 0) {
          // A finished verification: a complete reply, forwarded as is.
          while (proto::ReceiveMultipart(results, frames, true)) {
            proto::SendMultipart(zap_, frames);
          }
        }
      }
    } catch (const zmq::error_t& e) {
      if (e.num() != ETERM) spdlog::critical("authenticator stopped: {}", e.what());
    }
    zap_.close();
    running_ = false;
  });
}

void Authenticator::Stop() {
  {
    std::lock_guard<std::mutex> lock(jobs_mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  jobs_ready_.notify_all();
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto written = write(stop_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  for (auto& verifier : verifiers_) verifier.join();
  verifiers_.clear();
}

void Authenticator::SendReply(zmq::socket_t& socket, std::string_view routing_id,
                              std::string_view request_id, int status, std::string_view text,
                              std::string_view user_id, std::string_view roles,
                              std::string_view key) {
  std::string metadata;
  AppendProperty(metadata, kRolesProperty, roles);
  AppendProperty(metadata, kKeyProperty, key);
  const std::string code = std::to_string(status);
  const std::array<std::string_view, 8> frames = {routing_id, "",   "1.0",   request_id,
                                                  code,       text, user_id, metadata};
  for (std::size_t i = 0; i < frames.size(); ++i) {
    socket.send(proto::Frame(frames[i]),
                i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
}

void Authenticator::FlushDenialSummaries(std::chrono::steady_clock::time_point now) {
  std::vector<std::pair<std::string, std::uint64_t>> due;
  {
    std::lock_guard<std::mutex> lock(decisions_mutex_);
    for (auto it = denial_log_.begin(); it != denial_log_.end();) {
      if (now - it->second.since < kDenialLogWindow) {
        ++it;
        continue;
      }
      if (it->second.suppressed > 0) due.emplace_back(it->first, it->second.suppressed);
      it = denial_log_.erase(it);
    }
  }
  for (auto& [key, count] : due) {
    // key: endpoint \n reason \n address \n identity
    std::replace(key.begin(), key.end(), '\n', ' ');
    spdlog::info("auth denied (endpoint reason address identity: {}): {} more in the last {} s",
                 key, count,
                 std::chrono::duration_cast<std::chrono::seconds>(kDenialLogWindow).count());
  }
}

std::map<std::string, std::uint64_t> Authenticator::DecisionCounts() const {
  std::lock_guard<std::mutex> lock(decisions_mutex_);
  return decisions_;
}

void Authenticator::Record(const Decision& decision, std::string_view domain,
                           std::string_view mechanism, std::string_view address) {
  if (decision.status == 400 &&
      limiter_.RecordFailure(LimiterKey(domain, address), FailureLimiter::Clock::now())) {
    spdlog::warn("auth: address {} failed too often; refusing it without checks for a while",
                 Printable(address));
  }
  if (metrics_ != nullptr) {
    metrics_->CountAuthDecision(Printable(domain), Printable(mechanism), decision.status == 200,
                                decision.reason);
  }
  {
    // Handshakes, not messages: a lock and a small map are fine here. The
    // domain is bounded (libzmq only sends configured endpoint names).
    std::string key = Printable(domain);
    key += decision.status == 200 ? "/allowed/" : "/denied/";
    key += decision.reason;
    std::lock_guard<std::mutex> lock(decisions_mutex_);
    ++decisions_[key];
  }
  if (decision.status == 200) {
    counters_.allowed.fetch_add(1, std::memory_order_relaxed);
    spdlog::info("auth allowed: endpoint={} mechanism={} address={} identity={}", domain, mechanism,
                 Printable(address), Printable(decision.user_id));
  } else {
    counters_.denied.fetch_add(1, std::memory_order_relaxed);
    const std::string identity = decision.user_id.empty() ? "-" : Printable(decision.user_id);
    // A flood of identical denials (a client retrying forever) is one line,
    // then a summary: "... and N more in the last 10 s".
    std::string key = Printable(domain);
    key += '\n';
    key += decision.reason;
    key += '\n';
    key += Printable(address);
    key += '\n';
    key += identity;
    const auto now = std::chrono::steady_clock::now();
    std::uint64_t suppressed = 0;
    {
      std::lock_guard<std::mutex> lock(decisions_mutex_);
      if (denial_log_.size() > kMaxDenialKeys) denial_log_.clear();
      auto [entry, fresh] = denial_log_.try_emplace(key, DenialLog{now, 0});
      if (!fresh && now - entry->second.since < kDenialLogWindow) {
        ++entry->second.suppressed;
        return;
      }
      suppressed = entry->second.suppressed;
      entry->second = DenialLog{now, 0};
    }
    if (suppressed > 0) {
      spdlog::info(
          "auth denied: endpoint={} address={} identity={} reason={}: {} more in the "
          "last {} s",
          Printable(domain), Printable(address), identity, decision.reason, suppressed,
          std::chrono::duration_cast<std::chrono::seconds>(kDenialLogWindow).count());
    }
    spdlog::info("auth denied: endpoint={} mechanism={} address={} identity={} reason={}",
                 Printable(domain), Printable(mechanism), Printable(address), identity,
                 decision.reason);
  }
}

ZapFrames ParseZapFrames(const std::vector<zmq::message_t>& frames) {
  ZapFrames parsed;
  const bool addressed = frames.size() >= 4 && frames[1].empty();
  if (addressed) {
    parsed.routing_id = proto::View(frames[0]);
    parsed.request_id = proto::View(frames[3]);
  }
  if (frames.size() < 8 || !frames[1].empty()) {
    parsed.kind = addressed ? ZapFrames::Kind::kBadReply : ZapFrames::Kind::kDrop;
    parsed.reason = "malformed request";
    return parsed;
  }
  if (proto::View(frames[2]) != "1.0") {
    parsed.kind = ZapFrames::Kind::kBadReply;
    parsed.reason = "unsupported ZAP version";
    return parsed;
  }
  parsed.kind = ZapFrames::Kind::kRequest;
  parsed.request.domain = proto::View(frames[4]);
  parsed.request.address = proto::View(frames[5]);
  parsed.request.mechanism = proto::View(frames[7]);
  for (std::size_t i = 8; i < frames.size(); ++i) {
    parsed.request.credentials.push_back(proto::View(frames[i]));
  }
  return parsed;
}

void Authenticator::HandleRequest(std::vector<zmq::message_t>& frames) {
  ZapFrames parsed = ParseZapFrames(frames);
  if (parsed.kind != ZapFrames::Kind::kRequest) {
    counters_.malformed.fetch_add(1, std::memory_order_relaxed);
    if (parsed.kind == ZapFrames::Kind::kDrop) {
      spdlog::warn("ZAP: dropped a request with {} frames", frames.size());
    } else {
      SendReply(zap_, parsed.routing_id, parsed.request_id, 500, parsed.reason, "", "", "");
    }
    return;
  }
  const std::string_view routing_id = parsed.routing_id;
  const std::string_view request_id = parsed.request_id;
  const ZapRequest& request = parsed.request;
  if (limiter_.Blocked(LimiterKey(request.domain, request.address), FailureLimiter::Clock::now())) {
    // Cooling down: no hash, no store look-up.
    counters_.rate_limited.fetch_add(1, std::memory_order_relaxed);
    Decision limited;
    limited.status = 300;
    limited.reason = "rate_limited";
    Record(limited, request.domain, request.mechanism, request.address);
    SendReply(zap_, routing_id, request_id, 300, "rate_limited", "", "", "");
    return;
  }
  const auto policy = this->policy();
  Decision decision = Decide(*policy, request, SystemClock::now());
  if (decision.verify == nullptr) {
    if (metrics_ != nullptr) metrics_->ObserveAuthQueue(0.0);  // answered on arrival
    Record(decision, request.domain, request.mechanism, request.address);
    SendReply(zap_, routing_id, request_id, decision.status, decision.reason, decision.user_id,
              decision.roles, decision.key);
    return;
  }
  // PLAIN: check the hash on a verifier thread.
  Job job;
  job.routing_id = std::string(routing_id);
  job.request_id = std::string(request_id);
  job.domain = std::string(request.domain);
  job.address = std::string(request.address);
  job.user_id = std::move(decision.user_id);
  job.roles = std::move(decision.roles);
  job.hash = decision.verify->hash;
  job.queued_at = std::chrono::steady_clock::now();
  job.deny_reason = decision.status == 200 ? nullptr : decision.reason;
  job.plaintext = decision.verify->plaintext;
  job.password = std::string(request.credentials[1]);
  {
    std::lock_guard<std::mutex> lock(jobs_mutex_);
    if (jobs_.size() < kMaxQueuedVerifications) {
      jobs_.push_back(std::move(job));
      jobs_ready_.notify_one();
      return;
    }
  }
  // Too many hashes pending: a temporary failure costs the client a retry,
  // not us a hash.
  sodium_memzero(job.password.data(), job.password.size());
  counters_.busy.fetch_add(1, std::memory_order_relaxed);
  Decision busy;
  busy.status = 300;
  busy.reason = "busy";
  busy.user_id = job.user_id;
  Record(busy, request.domain, request.mechanism, request.address);
  SendReply(zap_, routing_id, request_id, 300, "busy", "", "", "");
}

void Authenticator::RunVerifier(int /*index*/) {
  // Hashing is the one CPU-heavy job in the broker: run it at a lower
  // priority so that routing, I/O and other handshakes are not starved by a
  // burst of logins (measured by bench/zguard-profile-bench, "Stall").
  if (setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19) != 0) {
    spdlog::debug("verifier: could not lower its priority: {}", std::strerror(errno));
  }
  zmq::socket_t results(context_, zmq::socket_type::push);
  results.set(zmq::sockopt::linger, 0);
  // Never block for good: once the authenticator thread has stopped, nobody
  // reads the results any more.
  results.set(zmq::sockopt::sndtimeo, 200);
  results.connect(results_endpoint_);
  while (true) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(jobs_mutex_);
      jobs_ready_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    if (metrics_ != nullptr) {
      metrics_->ObserveAuthQueue(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - job.queued_at).count());
    }
    PasswordEntry entry;
    entry.hash = std::move(job.hash);
    entry.plaintext = job.plaintext;
    const bool match = VerifyPassword(entry, job.password);
    sodium_memzero(job.password.data(), job.password.size());
    const bool ok = match && job.deny_reason == nullptr;
    Decision decision;
    decision.status = ok ? 200 : 400;
    decision.reason = ok ? "ok" : (job.deny_reason != nullptr ? job.deny_reason : "bad_password");
    decision.user_id = job.user_id;
    Record(decision, job.domain, "PLAIN", job.address);
    try {
      SendReply(results, job.routing_id, job.request_id, decision.status, decision.reason,
                ok ? job.user_id : "", ok ? job.roles : "", "");
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) return;
      spdlog::error("verifier: {}", e.what());
    }
  }
}

}  // namespace zguard::auth
