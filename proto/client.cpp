// Majordomo client: see client.hpp.
#include "client.hpp"

#include "mdp.hpp"

namespace zguard::proto {

Client::Client(zmq::context_t& context, std::string endpoint, ClientOptions options)
    : context_(context), endpoint_(std::move(endpoint)), options_(std::move(options)) {
  Connect();
}

void Client::Connect() {
  socket_ = zmq::socket_t(context_, zmq::socket_type::dealer);
  socket_.set(zmq::sockopt::linger, options_.linger_ms);
  // Sends on a DEALER without a live connection block; never for long.
  socket_.set(zmq::sockopt::sndtimeo, 1000);
  ApplySecurity(socket_, options_.security);
  if (options_.setup) options_.setup(socket_);
  socket_.connect(endpoint_);
}

CallResult Client::Call(std::string_view service, const std::vector<std::string>& body,
                        std::chrono::milliseconds timeout) {
  CallResult result;
  if (stale_) {
    Connect();
    stale_ = false;
  }
  if (!socket_.send(zmq::message_t(), zmq::send_flags::sndmore)) {
    // No live connection within the send timeout (e.g. the handshake was
    // refused): report it as a timeout and start over on a fresh socket.
    result.outcome = CallResult::Outcome::kTimeout;
    result.reason = "no connection to " + endpoint_ + " (refused or unreachable)";
    stale_ = true;
    return result;
  }
  socket_.send(Frame(kClientHeader), zmq::send_flags::sndmore);
  socket_.send(Frame(service), body.empty() ? zmq::send_flags::none : zmq::send_flags::sndmore);
  for (std::size_t i = 0; i < body.size(); ++i) {
    socket_.send(Frame(body[i]),
                 i + 1 < body.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }

  zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || zmq::poll(&item, 1, left) == 0) {
      result.outcome = CallResult::Outcome::kTimeout;
      result.reason = "no reply within " + std::to_string(timeout.count()) + "ms";
      stale_ = true;  // a late reply must not leak into the next call: new socket then
      return result;
    }
    ReceiveMultipart(socket_, frames_, false);
    const ParsedReply reply = ParseClientReply(frames_, service);
    if (reply.error != nullptr) {
      result.outcome = CallResult::Outcome::kMalformed;
      result.reason = reply.error;
      return result;
    }
    if (reply.is_error) {
      result.outcome = CallResult::Outcome::kError;
      result.code = reply.code;
      result.reason = reply.reason;
      return result;
    }
    result.outcome = CallResult::Outcome::kOk;
    result.code = 200;
    for (std::size_t i = reply.body; i < frames_.size(); ++i) {
      result.body.emplace_back(View(frames_[i]));
    }
    return result;
  }
}

}  // namespace zguard::proto
