// The routing poll loop; see router.hpp.
#include "router.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <cerrno>
#include <cstring>

#include "broker/config/units.hpp"
#include "proto/mdp.hpp"

namespace zguard {
namespace {

// Messages read from one socket before the loop looks at the others.
constexpr int kBatch = 256;

}  // namespace

namespace {

// libzmq's ZMQ_ZAP_ENFORCE_DOMAIN (a draft option in 4.3, accepted by the
// Debian build): without it a ZAP-checked socket admits everyone when no
// handler answers. With it, a stalled authenticator fails closed.
constexpr int kZapEnforceDomain = 93;

void ApplySecurity(zmq::socket_t& socket, const config::EndpointConfig& endpoint,
                   const auth::ServerKey& key) {
  if (endpoint.bind.find('[') != std::string::npos) socket.set(zmq::sockopt::ipv6, 1);
  if (!endpoint.UsesZap()) return;  // grasslands: NULL, no ZAP call
  socket.set(zmq::sockopt::zap_domain, endpoint.name);
  const int one = 1;
  if (zmq_setsockopt(socket.handle(), kZapEnforceDomain, &one, sizeof one) != 0) {
    throw zmq::error_t();
  }
  switch (endpoint.profile) {
    case config::Profile::kWoodhouse:
      socket.set(zmq::sockopt::plain_server, 1);
      break;
    case config::Profile::kStonehouse:
    case config::Profile::kIronhouse:
      socket.set(zmq::sockopt::curve_server, 1);
      socket.set(zmq::sockopt::curve_secretkey, key.secret_key);
      break;
    default:
      break;  // strawhouse: NULL with the ZAP domain set
  }
}

}  // namespace

Router::Router(zmq::context_t& context, const config::Config& config,
               const std::vector<auth::ServerKey>& server_keys,
               const auth::Authenticator* authenticator, Metrics* metrics)
    : config_(config), authenticator_(authenticator), metrics_(metrics) {
  stop_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (stop_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  // Frames above this are refused by libzmq itself (the connection is
  // dropped); bodies between max_message_size and this get a 413 reply.
  const auto transport_limit =
      static_cast<std::int64_t>(config.broker.max_message_size * 2 + 65536);
  for (std::size_t i = 0; i < config.endpoints.size(); ++i) {
    zmq::socket_t socket(context, zmq::socket_type::router);
    socket.set(zmq::sockopt::linger, 500);
    socket.set(zmq::sockopt::maxmsgsize, transport_limit);
    socket.set(zmq::sockopt::sndhwm, static_cast<int>(config.broker.send_queue));
    // Sends fail instead of vanishing, so that each undeliverable message is counted
    // (SendFrame); with ZMQ_DONTWAIT they never block the routing loop.
    socket.set(zmq::sockopt::router_mandatory, true);
    socket.set(zmq::sockopt::rcvhwm, 100'000);
    // Bounds a handshake the authenticator answered with 300 (rate limited,
    // busy): libzmq neither closes nor completes it on its own for 30 s.
    socket.set(zmq::sockopt::handshake_ivl,
               static_cast<int>(config.broker.handshake_timeout.count()));
    ApplySecurity(socket, config.endpoints[i],
                  i < server_keys.size() ? server_keys[i] : auth::ServerKey{});
    sockets_.push_back(std::move(socket));
  }
  bound_.resize(config.endpoints.size());
  TableSettings settings = TableSettings::From(config);
  settings.metrics = metrics;
  table_ = std::make_unique<ServiceTable>(std::move(settings), *this);
  if (metrics_ != nullptr) {
    // Connections and handshake failures come from libzmq's socket monitor.
    constexpr int kEvents = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                            ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                            ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    for (std::size_t i = 0; i < sockets_.size(); ++i) {
      const std::string address = "inproc://zguard.monitor." +
                                  std::to_string(reinterpret_cast<std::uintptr_t>(this)) + "." +
                                  std::to_string(i);
      if (zmq_socket_monitor(sockets_[i].handle(), address.c_str(), kEvents) != 0) {
        throw zmq::error_t();
      }
      zmq::socket_t monitor(context, zmq::socket_type::pair);
      monitor.set(zmq::sockopt::linger, 0);
      monitor.connect(address);
      monitors_.push_back(std::move(monitor));
    }
    // The events are read on a thread of their own: polling them in the
    // routing loop would cost every request a few more poll items.
    monitor_thread_ = std::thread([this] { RunMonitors(); });
  }
}

Router::~Router() {
  monitor_stop_ = true;
  if (monitor_thread_.joinable()) monitor_thread_.join();
  if (stop_fd_ >= 0) close(stop_fd_);
}

void Router::RunMonitors() {
  std::vector<zmq::pollitem_t> items;
  for (auto& monitor : monitors_) items.push_back({monitor.handle(), 0, ZMQ_POLLIN, 0});
  try {
    while (!monitor_stop_) {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(100));
      for (std::size_t i = 0; i < items.size(); ++i) {
        if ((items[i].revents & ZMQ_POLLIN) != 0) HandleMonitor(static_cast<std::uint16_t>(i));
      }
    }
  } catch (const zmq::error_t& e) {
    if (e.num() != ETERM) spdlog::error("socket monitor stopped: {}", e.what());
  }
  for (auto& monitor : monitors_) monitor.close();
}

std::vector<std::string> Router::Bind() {
  std::vector<std::string> errors;
  for (std::size_t i = 0; i < sockets_.size(); ++i) {
    const auto& endpoint = config_.endpoints[i];
    try {
      sockets_[i].bind(endpoint.bind);
      bound_[i] = sockets_[i].get(zmq::sockopt::last_endpoint);
      spdlog::info("endpoint {} ({}, {}) listening on {}", endpoint.name,
                   config::ToString(endpoint.role), config::ToString(endpoint.profile), bound_[i]);
    } catch (const zmq::error_t& e) {
      errors.push_back("endpoint " + endpoint.name + ": cannot bind " + endpoint.bind + ": " +
                       e.what());
    }
  }
  return errors;
}

void Router::RequestStop() const {
  const std::uint64_t one = 1;
  // write(2) is async-signal-safe; a full counter still wakes the loop.
  [[maybe_unused]] const auto written = write(stop_fd_, &one, sizeof one);
}

void Router::BeginShutdown() {
  // Listeners stay bound: in libzmq, unbinding a listener also closes the
  // connections it accepted, and clients must still get their replies. New
  // requests are answered 503 "broker is shutting down" instead.
  stopping_ = true;
  table_->StopAccepting();
  spdlog::info("stopping: draining {} request(s) for up to {}", table_->LiveRequests(),
               config::FormatDuration(config_.broker.shutdown_grace));
}

void Router::Run() {
  std::vector<zmq::pollitem_t> items;
  for (auto& socket : sockets_) items.push_back({socket.handle(), 0, ZMQ_POLLIN, 0});
  items.push_back({nullptr, stop_fd_, ZMQ_POLLIN, 0});
  Clock::time_point drain_deadline{};

  while (true) {
    auto now = Clock::now();
    if (stopping_ && (table_->LiveRequests() == 0 || now >= drain_deadline)) break;
    auto next = table_->NextTimer();
    if (stopping_) next = std::min(next, drain_deadline);
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - now);
    zmq::poll(items.data(), items.size(),
              std::max(std::chrono::milliseconds(0), wait + std::chrono::milliseconds(1)));
    now = Clock::now();
    RefreshPolicy();  // one relaxed load unless a reload happened
    if ((items.back().revents & ZMQ_POLLIN) != 0 && !stopping_) {
      std::uint64_t count = 0;
      [[maybe_unused]] const auto got = read(stop_fd_, &count, sizeof count);
      BeginShutdown();
      drain_deadline = now + config_.broker.shutdown_grace;
    }
    for (std::size_t i = 0; i < sockets_.size(); ++i) {
      if ((items[i].revents & ZMQ_POLLIN) != 0) {
        HandleReadable(static_cast<std::uint16_t>(i), now);
      }
    }
    if (now >= table_->NextTimer()) table_->OnTimer(now);
  }
  if (table_->LiveRequests() > 0) {
    spdlog::warn("shutdown grace expired with {} request(s) unanswered; answering 503",
                 table_->LiveRequests());
  }
  table_->FailAllAndDisconnect("broker is shutting down");
  spdlog::info("routing loop stopped");
}

void Router::HandleReadable(std::uint16_t endpoint, Clock::time_point now) {
  auto& socket = sockets_[endpoint];
  const bool clients = config_.endpoints[endpoint].role == config::Role::kClients;
  for (int n = 0; n < kBatch; ++n) {
    if (!proto::ReceiveMultipart(socket, frames_, true)) return;
    if (metrics_ != nullptr) {
      std::uint64_t bytes = 0;
      for (const auto& frame : frames_) bytes += frame.size();
      const EndpointMetrics& m = metrics_->endpoint(endpoint);
      m.messages_in->Increment();
      m.bytes_in->Increment(static_cast<double>(bytes));
    }
    const auth::Identity who = IdentityOf(endpoint);
    const bool revoked = KeyRevoked(endpoint, who.key);
    if (clients) {
      const auto msg = proto::DecodeClientMessage(frames_);
      if (msg.error != nullptr) {
        ++table_->mutable_stats().malformed_client;
        if (metrics_ != nullptr) metrics_->endpoint(endpoint).malformed->Increment();
        spdlog::debug("endpoint {}: dropped malformed client message: {}",
                      config_.endpoints[endpoint].name, msg.error);
        continue;
      }
      if (revoked) {
        table_->OnRevokedClient(endpoint, frames_, msg);
        continue;
      }
      table_->OnClientMessage(endpoint, frames_, msg, now, who);
    } else {
      if (revoked) {
        table_->OnRevokedWorker(endpoint, proto::View(frames_[0]));
        continue;
      }
      const auto msg = proto::DecodeWorkerMessage(frames_);
      if (msg.error != nullptr) {
        spdlog::debug("endpoint {}: dropped malformed worker message: {}",
                      config_.endpoints[endpoint].name, msg.error);
        if (metrics_ != nullptr) metrics_->endpoint(endpoint).malformed->Increment();
        table_->OnMalformedWorkerMessage(endpoint, proto::View(frames_[0]), now);
        continue;
      }
      table_->OnWorkerMessage(endpoint, frames_, msg, now, who);
    }
  }
}

auth::Identity Router::IdentityOf(std::uint16_t endpoint) const {
  if (!config_.endpoints[endpoint].UsesZap() || frames_.size() < 2) {
    return ServiceTable::kAnonymous;  // grasslands: no ZAP, nobody vouched for anything
  }
  // Read from the message itself: libzmq attaches what the authenticator said
  // (User-Id, and the Roles/Key properties it always sets) to every frame of
  // the connection. Nothing the peer put in its frames is trusted.
  auto* message = const_cast<zmq::message_t&>(frames_[1]).handle();
  const char* user = zmq_msg_gets(message, "User-Id");
  const char* roles = zmq_msg_gets(message, auth::kRolesProperty);
  const char* key = zmq_msg_gets(message, auth::kKeyProperty);
  return auth::Identity{user != nullptr ? user : "", roles != nullptr ? roles : "",
                        key != nullptr ? key : ""};
}

void Router::RefreshPolicy() {
  if (authenticator_ == nullptr) return;
  const std::uint64_t version = authenticator_->policy_version();
  if (version == policy_version_) return;
  // A reload happened: look the endpoints up once in the new policy.
  policy_ = authenticator_->policy();
  policy_version_ = version;
  endpoint_policy_.assign(config_.endpoints.size(), nullptr);
  for (std::size_t i = 0; i < config_.endpoints.size(); ++i) {
    auto it = policy_->endpoints.find(config_.endpoints[i].name);
    if (it != policy_->endpoints.end()) endpoint_policy_[i] = &it->second;
  }
  // Registered workers whose key was revoked go now, before they are handed
  // another request; clients are refused on their next message.
  const std::size_t dropped = table_->DropWorkersIf(
      [this](std::uint16_t endpoint, std::string_view key) { return KeyRevoked(endpoint, key); });
  if (dropped > 0) spdlog::info("dropped {} worker(s) whose credentials were revoked", dropped);
}

bool Router::KeyRevoked(std::uint16_t endpoint, std::string_view key) const {
  if (authenticator_ == nullptr || !config_.endpoints[endpoint].UsesCurve()) return false;
  const auth::EndpointPolicy* policy = endpoint_policy_[endpoint];
  if (policy == nullptr) return true;  // fail closed
  if (!policy->revoked.empty() && policy->revoked.find(key) != policy->revoked.end()) {
    return true;
  }
  // Ironhouse: a key taken out of the store is no longer admitted either.
  return policy->profile == config::Profile::kIronhouse &&
         policy->certificates.find(key) == policy->certificates.end();
}

void Router::SendFrame(std::uint16_t endpoint, zmq::message_t& frame, bool more) {
  if (dropping_) {
    // The rest of a message whose first frame (the peer's routing id) was refused.
    if (!more) dropping_ = false;
    return;
  }
  // ROUTER_MANDATORY checks the peer at the routing-id frame only: EHOSTUNREACH when it is
  // gone, EAGAIN (with DONTWAIT) when broker.send_queue messages already wait for it. Later
  // frames follow the first; libzmq never refuses them.
  const bool first = !mid_message_;
  const auto flags =
      (more ? zmq::send_flags::sndmore : zmq::send_flags::none) | zmq::send_flags::dontwait;
  bool sent = false;
  try {
    sent = sockets_[endpoint].send(frame, flags).has_value();
  } catch (const zmq::error_t& e) {
    if (e.num() != EHOSTUNREACH || !first) throw;
    if (metrics_ != nullptr) metrics_->endpoint(endpoint).dropped_peer_gone->Increment();
    dropping_ = more;
    return;
  }
  if (!sent) {
    if (metrics_ != nullptr) metrics_->endpoint(endpoint).dropped_queue_full->Increment();
    dropping_ = more;
    mid_message_ = false;
    return;
  }
  mid_message_ = more;
  if (metrics_ != nullptr) {
    // One update per message, not per frame: the counters are atomics.
    pending_bytes_out_ += frame.size();
    if (!more) {
      const EndpointMetrics& m = metrics_->endpoint(endpoint);
      m.bytes_out->Increment(static_cast<double>(pending_bytes_out_));
      m.messages_out->Increment();
      pending_bytes_out_ = 0;
    }
  }
}

void Router::HandleMonitor(std::uint16_t endpoint) {
  std::vector<zmq::message_t>& frames = monitor_frames_;
  while (proto::ReceiveMultipart(monitors_[endpoint], frames, true)) {
    if (frames.empty() || frames[0].size() < 6) continue;
    std::uint16_t event = 0;
    std::memcpy(&event, frames[0].data(), sizeof event);
    const EndpointMetrics& m = metrics_->endpoint(endpoint);
    switch (event) {
      case ZMQ_EVENT_ACCEPTED:
        m.connections->Increment();
        break;
      case ZMQ_EVENT_DISCONNECTED:
        m.connections->Decrement();
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        metrics_->CountHandshakeFailure(endpoint, "no_detail");
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        metrics_->CountHandshakeFailure(endpoint, "protocol");
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        metrics_->CountHandshakeFailure(endpoint, "auth");
        break;
      default:
        break;
    }
  }
}

void Router::SendFrame(std::uint16_t endpoint, std::string_view bytes, bool more) {
  zmq::message_t frame(bytes.data(), bytes.size());
  SendFrame(endpoint, frame, more);
}

void Router::SendRequest(const Worker& worker, Request& request, bool keep_body) {
  const auto e = worker.endpoint;
  const std::string id = EncodeRequestId(request.id);
  SendFrame(e, worker.identity, true);
  SendFrame(e, std::string_view(), true);
  SendFrame(e, proto::kWorkerHeader, true);
  zmq::message_t command = proto::CommandFrame(proto::WorkerCommand::kRequest);
  SendFrame(e, command, true);
  SendFrame(e, id, true);
  const bool forward = request.service->forward_identity;
  SendFrame(e, std::string_view(), forward || !request.body.empty());
  if (forward) {
    SendFrame(e, proto::kIdentityMarker, true);
    SendFrame(e, request.user, true);
    SendFrame(e, request.roles, !request.body.empty());
  }
  for (std::size_t i = 0; i < request.body.size(); ++i) {
    const bool more = i + 1 < request.body.size();
    if (keep_body) {
      zmq::message_t copy;
      copy.copy(request.body[i]);  // reference-counted for large frames, no byte copy
      SendFrame(e, copy, more);
    } else {
      SendFrame(e, request.body[i], more);
    }
  }
  if (!keep_body) request.body.clear();
}

void Router::SendReply(const Request& request, Frames& frames, std::size_t body_begin) {
  const auto e = request.client.endpoint;
  SendFrame(e, request.client.routing_id, true);
  if (request.client.has_delimiter) SendFrame(e, std::string_view(), true);
  SendFrame(e, proto::kClientHeader, true);
  SendFrame(e, request.service->name, body_begin < frames.size());
  for (std::size_t i = body_begin; i < frames.size(); ++i) {
    SendFrame(e, frames[i], i + 1 < frames.size());
  }
}

void Router::SendToClient(const ClientAddress& client, std::string_view service,
                          std::initializer_list<std::string_view> body) {
  const auto e = client.endpoint;
  SendFrame(e, client.routing_id, true);
  if (client.has_delimiter) SendFrame(e, std::string_view(), true);
  SendFrame(e, proto::kClientHeader, true);
  SendFrame(e, service, body.size() != 0);
  std::size_t i = 0;
  for (const auto& frame : body) SendFrame(e, frame, ++i < body.size());
}

void Router::SendHeartbeat(const Worker& worker) {
  const auto e = worker.endpoint;
  SendFrame(e, worker.identity, true);
  SendFrame(e, std::string_view(), true);
  SendFrame(e, proto::kWorkerHeader, true);
  zmq::message_t command = proto::CommandFrame(proto::WorkerCommand::kHeartbeat);
  SendFrame(e, command, false);
}

void Router::SendDisconnect(std::uint16_t endpoint, std::string_view identity) {
  SendFrame(endpoint, identity, true);
  SendFrame(endpoint, std::string_view(), true);
  SendFrame(endpoint, proto::kWorkerHeader, true);
  zmq::message_t command = proto::CommandFrame(proto::WorkerCommand::kDisconnect);
  SendFrame(endpoint, command, false);
}

}  // namespace zguard
