// The routing poll loop; see router.hpp.
#include "router.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "broker/config/units.hpp"
#include "proto/mdp.hpp"

namespace zguard {
namespace {

// Messages read from one socket before the loop looks at the others.
constexpr int kBatch = 256;
// frames_ keeps at most this much capacity between messages.
constexpr std::size_t kKeptFrames = 256;
// The largest frame kept to anchor a connection's metadata (see Router::Connection).
constexpr std::size_t kAnchorBytes = 256;
// A Sync() with the monitor thread takes microseconds; this is only a bound.
constexpr std::chrono::milliseconds kSyncTimeout{200};

// libzmq's ZMQ_ZAP_ENFORCE_DOMAIN (a draft option in 4.3, accepted by the
// Debian build): without it a ZAP-checked socket admits everyone when no
// handler answers. With it, a stalled authenticator fails closed.
constexpr int kZapEnforceDomain = 93;

void ApplySecurity(zmq::socket_t& socket, const config::EndpointConfig& endpoint,
                   const auth::ServerKey& key) {
  if (endpoint.bind.find('[') != std::string::npos) socket.set(zmq::sockopt::ipv6, 1);
  // Every endpoint asks the authenticator, grasslands too (it admits everyone): so that every
  // connection has an identity, and because libzmq then refuses ZMTP 1.0/2.0 peers at once,
  // which would otherwise bypass the handshake (no metadata, no descriptor) and be dropped
  // after handshake_timeout.
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
      break;  // grasslands, strawhouse: NULL with the ZAP domain set
  }
}

const char* ProtocolErrorText(std::uint32_t code) {
  switch (code) {
    case ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
      return "security mechanism mismatch (the peer does not use this endpoint's profile)";
    case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
      return "CURVE decryption failed (the peer may have a wrong server key)";
    case ZMQ_PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE:
      return "CURVE key exchange failed";
    case ZMQ_PROTOCOL_ERROR_ZMTP_INVALID_METADATA:
      return "invalid handshake metadata";
    case ZMQ_PROTOCOL_ERROR_ZMTP_UNEXPECTED_COMMAND:
    case ZMQ_PROTOCOL_ERROR_ZMTP_INVALID_SEQUENCE:
      return "unexpected handshake command";
    default:
      break;
  }
  if ((code & 0xff000000U) == ZMQ_PROTOCOL_ERROR_ZAP_UNSPECIFIED) return "bad ZAP reply";
  return "malformed handshake";
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
  silent_closes_.assign(config.endpoints.size(), 0);
  handshake_failures_.assign(config.endpoints.size(), 0);
  frame_limit_ = static_cast<std::size_t>(config.broker.max_frames) + proto::kMaxHeaderFrames + 1;
  TableSettings settings = TableSettings::From(config);
  settings.metrics = metrics;
  table_ = std::make_unique<ServiceTable>(std::move(settings), *this);
  std::vector<zmq::socket_t*> monitored;
  for (auto& socket : sockets_) monitored.push_back(&socket);
  events_ = std::make_unique<ConnectionEvents>(context, monitored);
}

Router::~Router() {
  events_.reset();  // stops the monitor thread before the sockets close
  if (stop_fd_ >= 0) close(stop_fd_);
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
  items.push_back({nullptr, events_->fd(), ZMQ_POLLIN, 0});
  items.push_back({nullptr, stop_fd_, ZMQ_POLLIN, 0});
  const std::size_t events_item = sockets_.size();
  Clock::time_point drain_deadline{};

  while (true) {
    auto now = Clock::now();
    if (stopping_ && (table_->LiveRequests() == 0 || now >= drain_deadline)) break;
    auto next = std::min(table_->NextTimer(), next_log_flush_);
    if (stopping_) next = std::min(next, drain_deadline);
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - now);
    zmq::poll(items.data(), items.size(),
              std::max(std::chrono::milliseconds(0), wait + std::chrono::milliseconds(1)));
    now = Clock::now();
    try {
      RefreshPolicy();  // one relaxed load unless a reload happened
      if ((items.back().revents & ZMQ_POLLIN) != 0 && !stopping_) {
        std::uint64_t count = 0;
        [[maybe_unused]] const auto got = read(stop_fd_, &count, sizeof count);
        BeginShutdown();
        drain_deadline = now + config_.broker.shutdown_grace;
      }
      // Connections that closed go first: nothing more is sent on their behalf.
      if ((items[events_item].revents & ZMQ_POLLIN) != 0) HandleEvents();
      for (std::size_t i = 0; i < sockets_.size(); ++i) {
        if ((items[i].revents & ZMQ_POLLIN) != 0) {
          HandleReadable(static_cast<std::uint16_t>(i), now);
        }
      }
      if (now >= table_->NextTimer()) table_->OnTimer(now);
      if (now >= next_log_flush_) FlushLogs(now);
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) throw;
      Contain(0, e.what());
    } catch (const std::exception& e) {
      Contain(0, e.what());
    }
  }
  if (table_->LiveRequests() > 0) {
    spdlog::warn("shutdown grace expired with {} request(s) unanswered; answering 503",
                 table_->LiveRequests());
  }
  table_->FailAllAndDisconnect("broker is shutting down");
  spdlog::info("routing loop stopped");
}

void Router::Contain(std::uint16_t endpoint, const char* what) {
  // Something failed inside the broker while handling one message (an allocation, a send):
  // that message is lost, the loop goes on. A multipart send it left half done is ended
  // with an empty frame so that the next message starts clean.
  if (mid_message_) {
    mid_message_ = false;
    zmq::message_t last;
    try {
      (void)sockets_[sending_endpoint_].send(last, zmq::send_flags::dontwait);
    } catch (const zmq::error_t&) {
    }
  }
  dropping_ = false;
  pending_bytes_out_ = 0;
  if (metrics_ != nullptr) metrics_->endpoint(endpoint).Refused(Refusal::kInternalError);
  LogLimited(spdlog::level::err, "endpoint " + Name(endpoint) +
                                     ": handling a message failed, message dropped: " + what);
}

void Router::LogLimited(spdlog::level::level_enum level, const std::string& line) {
  if (log_limiter_.Admit(line, Clock::now())) spdlog::log(level, "{}", line);
}

void Router::HandleReadable(std::uint16_t endpoint, Clock::time_point now) {
  auto& socket = sockets_[endpoint];
  const bool workers = config_.endpoints[endpoint].role == config::Role::kWorkers;
  for (int n = 0; n < kBatch; ++n) {
    // A worker's message may be the reply to a client that just disconnected: apply the
    // disconnects reported so far first (one relaxed load when there are none).
    if (workers && events_->waiting()) HandleEvents();
    const std::size_t count = proto::ReceiveBounded(socket, frames_, frame_limit_, true);
    if (count == 0) break;
    if (metrics_ != nullptr) {
      std::uint64_t bytes = 0;
      for (const auto& frame : frames_) bytes += frame.size();
      const EndpointMetrics& m = metrics_->endpoint(endpoint);
      m.messages_in->Increment();
      m.bytes_in->Increment(static_cast<double>(bytes));
    }
    try {
      HandleMessage(endpoint, count, now);
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) throw;
      Contain(endpoint, e.what());
    } catch (const std::exception& e) {
      Contain(endpoint, e.what());
    }
  }
  if (frames_.capacity() > kKeptFrames) Frames().swap(frames_);
}

void Router::HandleMessage(std::uint16_t endpoint, std::size_t frame_count, Clock::time_point now) {
  if (frames_.size() < 2) return;  // a ROUTER always prepends the routing id
  if (frames_[0].size() > proto::kMaxRoutingId) {
    // RFC 23 allows 255 bytes; libzmq 4.3 passes longer ids through. Nothing of such a peer
    // is kept, so its id cannot be copied into the broker's state again and again.
    if (metrics_ != nullptr) metrics_->endpoint(endpoint).Refused(Refusal::kRoutingIdTooLong);
    LogLimited(spdlog::level::warn, "endpoint " + Name(endpoint) +
                                        ": refused a message from a peer whose routing id is " +
                                        std::to_string(frames_[0].size()) +
                                        " bytes (the limit is 255)");
    return;
  }
  Peer* peer = ResolvePeer(endpoint);
  if (peer == nullptr) return;
  if (config_.endpoints[endpoint].role == config::Role::kClients) {
    const auto msg = proto::DecodeClientMessage(frames_);
    if (msg.error != nullptr) {
      ++table_->mutable_stats().malformed_client;
      if (metrics_ != nullptr) metrics_->endpoint(endpoint).malformed->Increment();
      spdlog::debug("endpoint {}: dropped malformed client message: {}", Name(endpoint), msg.error);
      return;
    }
    if (peer->revoked) {
      table_->OnRevokedClient(*peer, frames_, msg);
      return;
    }
    table_->OnClientMessage(*peer, frames_, msg, now, frame_count);
    return;
  }
  if (peer->revoked) {
    table_->OnRevokedWorker(*peer);
    return;
  }
  const auto msg = proto::DecodeWorkerMessage(frames_);
  if (msg.error != nullptr) {
    spdlog::debug("endpoint {}: dropped malformed worker message: {}", Name(endpoint), msg.error);
    if (metrics_ != nullptr) metrics_->endpoint(endpoint).malformed->Increment();
    table_->OnMalformedWorkerMessage(*peer);
    return;
  }
  table_->OnWorkerMessage(*peer, frames_, msg, now, frame_count);
}

Peer* Router::PeerAt(int fd) const {
  if (fd < 0 || static_cast<std::size_t>(fd) >= connections_.size()) return nullptr;
  return connections_[static_cast<std::size_t>(fd)].peer;
}

Peer* Router::ResolvePeer(std::uint16_t endpoint) {
  // Read from the message itself: libzmq attaches the connection's descriptor and what the
  // authenticator said (User-Id, and the Roles and Key properties it always sets) to every
  // frame of a connection but the routing id. Nothing the peer put in its frames is trusted.
  auto* message = frames_[1].handle();
  const char* fd_text = zmq_msg_gets(message, "__fd");
  int fd = -1;
  if (fd_text != nullptr) {
    const std::string_view text(fd_text);
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), fd);
    if (ec != std::errc() || ptr != text.data() + text.size()) fd = -1;
  }
  const Connection* known = nullptr;
  if (fd >= 0 && static_cast<std::size_t>(fd) < connections_.size()) {
    known = &connections_[static_cast<std::size_t>(fd)];
    // The same metadata object as the connection's first message: the same connection.
    if (known->peer != nullptr && known->fd_property == fd_text) return known->peer;
  }
  const char* user = zmq_msg_gets(message, "User-Id");
  if (fd < 0 || user == nullptr) {
    // Every connection of a tcp:// or ipc:// endpoint has both; refuse what has not.
    if (metrics_ != nullptr) metrics_->endpoint(endpoint).Refused(Refusal::kNoConnection);
    return nullptr;
  }
  const std::string_view routing_id = proto::View(frames_[0]);
  const char* key_text = zmq_msg_gets(message, auth::kKeyProperty);
  const std::string_view key = key_text != nullptr ? key_text : "";
  if (known != nullptr && known->peer != nullptr && known->fd_property == nullptr) {
    // A peer without an anchor (its first message had no small frame): compare each field.
    const Peer& peer = *known->peer;
    if (peer.endpoint == endpoint && peer.routing_id == routing_id && peer.user == user &&
        peer.key == key) {
      return known->peer;
    }
  }
  // A connection not seen before, or a descriptor whose last connection's end has not been
  // applied yet: first apply every disconnect libzmq has reported, so that a later event for
  // this descriptor can only be about this connection.
  SyncEvents();
  if (Peer* stale = PeerAt(fd)) {
    // The descriptor belongs to a new connection, yet its previous one was never reported
    // closed: that one is gone all the same, and so is all it owned.
    spdlog::info("endpoint {}: connection {} was replaced without a disconnect event",
                 Name(stale->endpoint), fd);
    ClosePeerAt(fd, "connection replaced");
  }
  const char* roles = zmq_msg_gets(message, auth::kRolesProperty);
  Peer& opened = table_->OpenPeer(endpoint, routing_id,
                                  auth::Identity{user, roles != nullptr ? roles : "", key});
  opened.revoked = KeyRevoked(endpoint, opened.key);
  if (static_cast<std::size_t>(fd) >= connections_.size()) {
    connections_.resize(static_cast<std::size_t>(fd) + 1);
  }
  Connection& connection = connections_[static_cast<std::size_t>(fd)];
  connection.peer = &opened;
  // Keep a small frame of this first message (every MDP message has one: its header or
  // delimiter): it shares the connection's metadata and pins at most kAnchorBytes.
  for (std::size_t i = 1; i < frames_.size(); ++i) {
    if (frames_[i].size() <= kAnchorBytes) {
      connection.anchor.copy(frames_[i]);
      connection.fd_property = zmq_msg_gets(connection.anchor.handle(), "__fd");
      break;
    }
  }
  return &opened;
}

void Router::ClosePeerAt(int fd, std::string_view why) {
  Peer* peer = PeerAt(fd);
  if (peer == nullptr) return;
  Connection& connection = connections_[static_cast<std::size_t>(fd)];
  connection.peer = nullptr;
  connection.fd_property = nullptr;
  connection.anchor.rebuild();  // lets the connection's metadata go
  table_->ClosePeer(*peer, why);
}

void Router::SyncEvents() {
  if (!events_->Sync(kSyncTimeout)) {
    spdlog::warn("socket monitor did not answer within {} ms", kSyncTimeout.count());
  }
  HandleEvents();
}

void Router::HandleEvents() {
  event_batch_.clear();
  events_->Take(event_batch_);
  for (const ConnectionEvent& event : event_batch_) {
    if (event.endpoint >= sockets_.size()) continue;
    const EndpointMetrics* m = metrics_ != nullptr ? &metrics_->endpoint(event.endpoint) : nullptr;
    const auto fd = static_cast<int>(event.value);
    switch (event.type) {
      case ZMQ_EVENT_ACCEPTED:
        if (m != nullptr) m->connections->Increment();
        break;
      case ZMQ_EVENT_DISCONNECTED: {
        if (m != nullptr) m->connections->Decrement();
        const Peer* peer = PeerAt(fd);
        if (peer != nullptr && peer->endpoint == event.endpoint) {
          ClosePeerAt(fd, "disconnected");
        } else {
          ++silent_closes_[event.endpoint];
          if (m != nullptr) m->closed_silent->Increment();
        }
        break;
      }
      case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
      case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: {
        ++handshake_failures_[event.endpoint];
        const bool protocol = event.type == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL;
        const bool auth = event.type == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
        if (metrics_ != nullptr) {
          metrics_->CountHandshakeFailure(event.endpoint,
                                          protocol ? "protocol" : (auth ? "auth" : "no_detail"));
        }
        // AUTH: the authenticator logged why it said no. NO_DETAIL: the peer closed or
        // stalled during the handshake (a probe, a client that gave up): debug only.
        if (auth) break;
        if (!protocol) {
          spdlog::debug("endpoint {}: handshake did not complete: {}", Name(event.endpoint),
                        std::strerror(fd));
          break;
        }
        LogLimited(spdlog::level::info,
                   "endpoint " + Name(event.endpoint) +
                       ": handshake failed: " + ProtocolErrorText(event.value));
        break;
      }
      default:
        break;
    }
  }
}

void Router::FlushLogs(Clock::time_point now) {
  // Every second: the summaries of lines held back whose own window has ended.
  for (const auto& [line, held] : log_limiter_.Due(now)) {
    spdlog::info("{} ({} more like it in the last {} s)", line, held,
                 log_limiter_.window().count());
  }
  next_log_flush_ = now + std::chrono::seconds(1);
  if (now < next_silent_summary_) return;
  for (std::size_t i = 0; i < silent_closes_.size(); ++i) {
    // Connections that closed without a message and without a handshake failure libzmq
    // reported: peers that gave up, probes, and peers that speak ZMTP 1.0 or 2.0, which
    // libzmq refuses at once without saying so.
    if (silent_closes_[i] > handshake_failures_[i]) {
      spdlog::info(
          "endpoint {}: {} connection(s) closed in the last {} s before sending anything, "
          "without a handshake error; peers that speak ZMTP 1.0/2.0 (libzmq 2.x/3.x, "
          "JeroMQ 0.3) are refused this way: zguard needs ZMTP 3.0 or later",
          config_.endpoints[i].name, silent_closes_[i] - handshake_failures_[i],
          log_limiter_.window().count());
    }
    silent_closes_[i] = 0;
    handshake_failures_[i] = 0;
  }
  next_silent_summary_ = now + log_limiter_.window();
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
  // Everything a revoked key holds ends now, in one step (see ServiceTable::Revoke).
  const std::size_t revoked =
      table_->Revoke([this](const Peer& peer) { return KeyRevoked(peer.endpoint, peer.key); });
  if (revoked > 0)
    spdlog::info("revoked {} connection(s) whose credentials were withdrawn", revoked);
}

bool Router::KeyRevoked(std::uint16_t endpoint, std::string_view key) const {
  if (authenticator_ == nullptr || !config_.endpoints[endpoint].UsesCurve()) return false;
  if (endpoint >= endpoint_policy_.size()) return false;  // no policy seen yet
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
  sending_endpoint_ = endpoint;
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

void Router::SendFrame(std::uint16_t endpoint, std::string_view bytes, bool more) {
  zmq::message_t frame(bytes.data(), bytes.size());
  SendFrame(endpoint, frame, more);
}

void Router::SendRequest(const Worker& worker, Request& request, bool keep_body) {
  const auto e = worker.peer->endpoint;
  const std::string id = EncodeRequestId(request.id);
  SendFrame(e, worker.peer->routing_id, true);
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
  const Peer& client = *request.client;
  const auto e = client.endpoint;
  SendFrame(e, client.routing_id, true);
  if (request.has_delimiter) SendFrame(e, std::string_view(), true);
  SendFrame(e, proto::kClientHeader, true);
  SendFrame(e, request.service->name, body_begin < frames.size());
  for (std::size_t i = body_begin; i < frames.size(); ++i) {
    SendFrame(e, frames[i], i + 1 < frames.size());
  }
}

void Router::SendToClient(const Peer& client, bool has_delimiter, std::string_view service,
                          std::initializer_list<std::string_view> body) {
  const auto e = client.endpoint;
  SendFrame(e, client.routing_id, true);
  if (has_delimiter) SendFrame(e, std::string_view(), true);
  SendFrame(e, proto::kClientHeader, true);
  SendFrame(e, service, body.size() != 0);
  std::size_t i = 0;
  for (const auto& frame : body) SendFrame(e, frame, ++i < body.size());
}

void Router::SendHeartbeat(const Worker& worker) {
  const auto e = worker.peer->endpoint;
  SendFrame(e, worker.peer->routing_id, true);
  SendFrame(e, std::string_view(), true);
  SendFrame(e, proto::kWorkerHeader, true);
  zmq::message_t command = proto::CommandFrame(proto::WorkerCommand::kHeartbeat);
  SendFrame(e, command, false);
}

void Router::SendDisconnect(std::uint16_t endpoint, std::string_view routing_id) {
  SendFrame(endpoint, routing_id, true);
  SendFrame(endpoint, std::string_view(), true);
  SendFrame(endpoint, proto::kWorkerHeader, true);
  zmq::message_t command = proto::CommandFrame(proto::WorkerCommand::kDisconnect);
  SendFrame(endpoint, command, false);
}

}  // namespace zguard
